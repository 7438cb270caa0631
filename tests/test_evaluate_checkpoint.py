"""`forethought eval RUN_DIR_OR_CHECKPOINT`: a trained agent from its checkpoint alone, on any seed, env or
number of Ray workers, and one sentence for every folder or file it cannot use."""

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import pytest

from forethought.evaluate_checkpoint import evaluate_checkpoint
from tests.conftest import train_briefly

ROOT = Path(__file__).resolve().parent.parent
FORETHOUGHT = Path(sys.executable).parent / "forethought"


def cli(*args):
    return subprocess.run([str(FORETHOUGHT), *args], capture_output=True, text=True, cwd=ROOT, timeout=600,
                          env={**os.environ, "RAY_AUTH_MODE": "disabled", "WANDB_MODE": "disabled"})


def kept_steps(run: Path) -> list[int]:
    return [int(p.name.removeprefix("step_")) for p in sorted((run / "checkpoints").glob("step_*"))]


@pytest.fixture
def flat_run(trained_cartpole):
    return trained_cartpole


def one_error_line(result, needle):
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("forethought: error: ") and needle in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_eval_of_a_run_folder_loads_its_newest_checkpoint_and_reports_it(flat_run):
    result = cli("eval", str(flat_run), "--episodes", "3", "--quiet")
    assert result.returncode == 0, result.stderr
    checkpoints = sorted((flat_run / "checkpoints").glob("step_*"))
    assert len(checkpoints) == 2
    path = flat_run / "eval" / f"{checkpoints[-1].name}_greedy_CartPole-v1_seed0.json"
    report = json.loads(path.read_text())
    assert report["checkpoint"] == str(checkpoints[-1]) and report["checkpoint_step"] == kept_steps(flat_run)[-1] >= 384
    assert report["policy"] == "greedy" and report["agent"] == "dreamer" and report["episodes"] == 3
    assert len(report["episode_returns"]) == 3 and report["env_steps"] == sum(report["episode_lengths"])
    assert f"checkpoint      {checkpoints[-1]}" in result.stdout and str(path) in result.stdout
    # no replay was read and nothing of the run changed
    assert not (flat_run / "eval.json").exists()


def test_a_chosen_checkpoint_seed_policy_and_env_with_the_same_spaces(flat_run):
    older = sorted((flat_run / "checkpoints").glob("step_*"))[0]
    by_step = evaluate_checkpoint(flat_run, [f"eval.step={kept_steps(flat_run)[0]}", "eval.episodes=4"],
                                  progress=False)
    by_folder = evaluate_checkpoint(older, ["eval.episodes=4"], progress=False)
    assert by_step["checkpoint"] == by_folder["checkpoint"] == str(older)
    assert by_step["episode_returns"] == by_folder["episode_returns"]  # each episode seeded: the same report
    sampled = [evaluate_checkpoint(flat_run, ["eval.policy=sampled", "eval.episodes=4", f"run.seed={seed}"],
                                   progress=False) for seed in (5, 5, 6)]
    assert sampled[0]["policy"] == "sampled" and sampled[0]["seed"] == 5
    assert sampled[0]["episode_lengths"] == sampled[1]["episode_lengths"]
    assert sampled[0]["episode_lengths"] != sampled[2]["episode_lengths"]
    # another env of the same spaces: here the same task with a shorter time limit
    short = evaluate_checkpoint(flat_run, ["env.time_limit=20", "eval.episodes=2"], progress=False)
    assert max(short["episode_lengths"]) <= 20 and short["trained_env"] == "CartPole-v1"


def test_ray_workers_play_the_same_episodes(flat_run, ray_session):
    here = evaluate_checkpoint(flat_run, ["eval.policy=sampled", "eval.episodes=5"], progress=False)
    spread = evaluate_checkpoint(flat_run, ["eval.policy=sampled", "eval.episodes=5", "eval.workers=2"],
                                 progress=False)
    assert spread["workers"] == 2
    assert (spread["episode_returns"], spread["episode_lengths"]) == (here["episode_returns"], here["episode_lengths"])


def test_director_video_shows_the_decoded_goal_beside_the_frame(tmp_path):
    run = train_briefly(tmp_path / "run", "keydoor_director")
    report = evaluate_checkpoint(run, ["eval.episodes=1", "eval.video=true"], progress=False)
    assert report["video_goals"] and Path(report["video"]).exists()
    frames = list(iio.imiter(report["video"]))
    assert len(frames) == report["episode_lengths"][0] + 1  # the reset frame and one per step
    height, width = frames[0].shape[:2]
    assert width == 2 * height  # the env's square frame, then the goal scaled to its height


def test_what_cannot_be_evaluated_is_refused_in_one_sentence(flat_run, tmp_path):
    one_error_line(cli("eval", str(tmp_path / "missing")), "does not exist")
    one_error_line(cli("eval", str(tmp_path)), "neither a run folder")
    one_error_line(cli("eval", "-c", "keydoor_vector"), "--random for the random baseline")
    steps = ", ".join(map(str, kept_steps(flat_run)))
    one_error_line(cli("eval", str(flat_run), "eval.step=7"), f"no checkpoint at env step 7; it keeps: {steps}")
    one_error_line(cli("eval", str(flat_run), "agent.world_model={units: 8}"), "agent.world_model cannot change")
    one_error_line(cli("eval", str(flat_run), "env.id=forethought/KeyDoorVector-v0"), "the checkpoint's agent was "
                   "trained on 'CartPole-v1'")
    broken = tmp_path / "broken"
    shutil.copytree(flat_run, broken, ignore=shutil.ignore_patterns("replay.npz", "wandb"))
    weights = sorted(broken.glob("checkpoints/*/algorithm/**/default_policy/module_state.pkl"))[-1]
    weights.write_bytes(b"not a pickle at all")
    one_error_line(cli("eval", str(broken)), "is not a forethought checkpoint's weights")
    weights.write_bytes(pickle.dumps(os.system))  # a foreign pickle: refused, never called
    one_error_line(cli("eval", str(broken)), "not only arrays")
