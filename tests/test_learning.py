"""Learning tests (slow, `make test-slow`): agents solve tasks on a CPU within stated budgets.

Budgets (2 cores): CartPole-v1 within the preset's 8,000 env steps (issue 14's target: a greedy evaluation, every
2,000 env steps, at or above 450; about 4 to 6 minutes; half the replayed sequences around episode ends, without
which an AMD EPYC host passed none of seeds 0-2, README, Results); the key-door task in the preset's
15,000 env steps (train ratio 96, half the replayed sequences around rewarded steps; about 6 to 11 minutes by
host; over seeds 0-2 the greedy return was 1.0, 1.0 and 0.7 at 15,000 env steps, README, Results); Pendulum-v1
(continuous actions) in the preset's 10,000 env steps (about 7 minutes; -324.7 at
96a34fb, one of 10 starts never swung up; with the critic at 1e-3 since 2026-12-06, -169.4 +- 12.8 over seeds 0-5, every
seed above -200). Each runs the real `forethought train` on its shipped preset and reads the greedy evaluation the
run writes at its end (CartPole: its evaluations during the run). `make test-guard` (run by `.ci/run`) holds these
three: CartPole and Pendulum passed at three and six seeds with their own command, key door at two of three (README,
the learning tests' table).

The hierarchical agent against the flat one: both train on Pin Pad vector (three pads, 2,000-step
episodes, +10 per completed sequence) for the preset's 30,000 env steps with seeds 0, 1 and 2, each seed's two runs
side by side (about 20 minutes a seed); the test compares the means over the seeds of each run's final return (its 15
exploring episodes) and of its greedy evaluation (issue 15: the hierarchy's gain in the mean over three seeds, not on
one lucky seed).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.sample_efficiency import to_threshold
from forethought.stats import final_return
from forethought.tracking import read_metrics

ROOT = Path(__file__).resolve().parent.parent
FORETHOUGHT = Path(sys.executable).parent / "forethought"


def train_and_evaluate(preset: str, run_dir: Path) -> dict:
    result = subprocess.run(
        [str(FORETHOUGHT), "train", "-c", preset, f"run.dir={run_dir}", "run.wandb=disabled", "train.eval_episodes=10",
         "--quiet"],
        capture_output=True, text=True, cwd=ROOT, timeout=1800, env={**os.environ, "RAY_AUTH_MODE": "disabled"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((run_dir / "eval.json").read_text())


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_flat_agent_solves_cartpole(tmp_path):
    train_and_evaluate("cartpole", tmp_path)  # the preset evaluates every 2,000 env steps
    greedy = [[r["step"], r["eval/return"], r["time_s"]] for r in read_metrics(tmp_path)
              if r.get("eval/return") is not None]
    # "within 8,000 env steps" as sample_efficiency counts it: the first greedy evaluation at or above 450 (of 500);
    # the greedy policy still swings between evaluations once it has balanced (README, Results)
    steps, _ = to_threshold({"threshold": 450, "greedy": greedy})
    assert steps is not None and steps <= 8_000, greedy


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_flat_agent_solves_the_key_door_task(tmp_path):
    report = train_and_evaluate("keydoor_vector", tmp_path)
    # a random policy reaches the goal in about 12% of episodes; solved is 90%
    assert report["return"]["mean"] >= 0.9, report["episode_returns"]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_flat_agent_swings_up_the_pendulum(tmp_path):
    report = train_and_evaluate("pendulum", tmp_path)
    # continuous actions, learnt by backpropagation through the dynamics: a random policy scores about -1,200
    # to -1,500; issue 14's target is -200 within the preset's 10,000 env steps
    assert report["return"]["mean"] >= -200, report["episode_returns"]


def final_exploring_return(run_dir: Path) -> float | None:
    """The run's final return (``forethought.stats.final_return``): the last metrics record's episode/return."""
    return final_return([[r["step"], r["episode/return"]] for r in read_metrics(run_dir)
                         if r.get("episode/return") is not None])


@pytest.mark.slow
@pytest.mark.timeout(6 * 3600)
def test_director_beats_the_flat_agent_on_pin_pad_over_three_seeds(tmp_path):
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    exploring: dict[str, list[float | None]] = {"pinpad_vector": [], "pinpad_vector_director": []}
    greedy: dict[str, list[float]] = {preset: [] for preset in exploring}
    for seed in (0, 1, 2):
        runs = {preset: tmp_path / f"{preset}-seed{seed}" for preset in exploring}
        jobs = [subprocess.Popen([str(FORETHOUGHT), "train", "-c", preset, f"run.dir={run_dir}", f"run.seed={seed}",
                                  "run.wandb=disabled", "--quiet"], cwd=ROOT, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                for preset, run_dir in runs.items()]  # side by side: one core each
        for job in jobs:
            _, err = job.communicate(timeout=2 * 3600)
            assert job.returncode == 0, err[-3000:]
        for preset, run_dir in runs.items():
            exploring[preset].append(final_exploring_return(run_dir))
            greedy[preset].append(json.loads((run_dir / "eval.json").read_text())["return"]["mean"])
    assert all(v is not None for values in exploring.values() for v in values), f"no episode ended: {exploring}"
    flat, director = (sum(v) / 3 for v in exploring.values())  # type: ignore[arg-type]
    # over seeds 0-2 (README, Results) a random walk completes the sequence about once per 2,000-step episode (+10);
    # the flat agent's exploring return stays below that (6.0 to 8.0) and its greedy policy never completes it;
    # Director's exploring return was 14.0 (18.7, 17.3, 6.0) on one host and its greedy policy completed the
    # sequence on every seed (16, 4, 22)
    assert director >= 1.5 * flat, {"exploring": exploring, "greedy": greedy}
    assert sum(greedy["pinpad_vector_director"]) / 3 >= 2.0 > sum(greedy["pinpad_vector"]) / 3, greedy
