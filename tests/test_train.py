"""`forethought train` on the debug preset: metrics, checkpoints, a resume that continues, a refused mismatch."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.wandb_records import history, run_files

ROOT = Path(__file__).resolve().parent.parent
FORETHOUGHT = Path(sys.executable).parent / "forethought"


def train(*args, preset="keydoor_vector"):
    return subprocess.run([str(FORETHOUGHT), "train", "-c", preset, "debug", "--quiet", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=600,
                          env={**__import__("os").environ, "RAY_AUTH_MODE": "disabled"})


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_train_then_resume_continues_with_the_whole_replay(tmp_path):
    run_dir = tmp_path / "run"
    first = train(f"run.dir={run_dir}", "--steps", "320")
    assert first.returncode == 0, first.stderr[-3000:]
    log = records(run_dir)
    assert log[-1]["step"] >= 320
    assert log[-1]["perf/train_ratio"] == 8.0  # held at its configured value, and reported as such
    assert log[-1]["perf/updates"] == log[-1]["step"] * 8 / (4 * 16)
    assert {"episode/return", "world_model/loss", "actor_critic/actor_loss"} <= set(log[-1])
    checkpoint = sorted((run_dir / "checkpoints").glob("step_*"))[-1]
    assert (checkpoint / "complete").exists()
    # the same records went to W&B (offline), keyed by env steps
    rows = history(run_dir)
    assert [row["_step"] for row in rows] == [r["step"] for r in log]
    assert rows[-1]["world_model/loss"] == log[-1]["world_model/loss"]
    saved = np.load(checkpoint / "replay.npz")
    replay_steps = int(saved["filled"].sum())
    assert replay_steps > 0

    second = train(f"run.dir={run_dir}", "--steps", "640")
    assert second.returncode == 0, second.stderr[-3000:]
    step = log[-1]["step"]
    assert f"resumed from {checkpoint} at {step:,} env steps with {replay_steps:,} steps in replay" in second.stdout
    resumed = records(run_dir)[len(log):]
    assert resumed and resumed[0]["step"] > step and resumed[-1]["step"] >= 640
    assert resumed[-1]["perf/updates"] == resumed[-1]["step"] * 8 / (4 * 16)  # counters carried over
    # the resumed run continues the same W&B run
    files = run_files(run_dir)
    assert len(files) == 2 and files[0].name == files[1].name
    assert [row["_step"] for row in history(run_dir)] == [r["step"] for r in records(run_dir)]

    mismatch = train(f"run.dir={run_dir}", "train.batch_size=8")
    assert mismatch.returncode == 2
    assert "holds a run with another setup (train.batch_size: 4 -> 8)" in mismatch.stderr


def test_nan_training_stops_with_one_sentence(tmp_path):
    # a learning rate this large blows the weights up within a few updates
    result = train(f"run.dir={tmp_path / 'run'}", "agent.world_model={lr: 1.0e+30}")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("forethought: error: training stopped at env step") and "last checkpoint" in last


def test_hierarchical_agent_trains_reports_goals_and_evaluates(tmp_path):
    run_dir = tmp_path / "run"
    result = train(f"run.dir={run_dir}", "--steps", "320", preset="keydoor_vector_director")
    assert result.returncode == 0, result.stderr[-3000:]
    last = records(run_dir)[-1]
    assert last["perf/train_ratio"] == 8.0 and last["perf/updates"] == 40
    groups = {key.split("/")[0] for key in last if "/" in key}
    assert {"world_model", "manager", "worker", "goal_autoencoder"} <= groups and "actor_critic" not in groups
    assert all(np.isfinite(last[k]) for k in ("manager/actor_loss", "worker/goal_reward", "goal_autoencoder/recon"))
    report = np.load(run_dir / "report" / "report.npz")
    assert report["goals/vector"].shape == (4, 16, 58)  # 4 replayed sequences, the manager's goals decoded
    evaluation = json.loads((run_dir / "eval.json").read_text())
    assert evaluation["policy"] == "agent (director, greedy)" and evaluation["episodes"] == 2


def test_director_only_fields_are_refused_for_the_flat_agent(tmp_path):
    result = train(f"run.dir={tmp_path / 'run'}", "agent.hierarchy={every: 4}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "forethought: error: agent.hierarchy applies to agent.name=director only; agent.name is dreamer")


def test_sigterm_writes_a_checkpoint_and_the_same_command_resumes_from_it(tmp_path):
    import os
    import signal
    import time

    run_dir = tmp_path / "run"
    args = [str(FORETHOUGHT), "train", "-c", "keydoor_vector", "debug", "--quiet", f"run.dir={run_dir}",
            "train.checkpoint_every=100000"]  # no scheduled checkpoint: only the signal's
    with open(tmp_path / "out", "w") as out, open(tmp_path / "err", "w") as err:
        job = subprocess.Popen([*args, "--steps", "100000"], cwd=ROOT, stdout=out, stderr=err,
                               env={**os.environ, "RAY_AUTH_MODE": "disabled"})
        deadline = time.monotonic() + 300
        while job.poll() is None and time.monotonic() < deadline:  # mid-run: past the prefill, training
            if (run_dir / "metrics.jsonl").exists() and len(records(run_dir)) >= 3:
                break
            time.sleep(0.5)
        assert job.poll() is None, (tmp_path / "err").read_text()[-3000:]
        job.send_signal(signal.SIGTERM)
        assert job.wait(timeout=120) == 143
    message = (tmp_path / "err").read_text()
    checkpoint = sorted((run_dir / "checkpoints").glob("step_*"))[-1]
    step = int(checkpoint.name.split("_")[1])
    assert f"forethought: stopped by SIGTERM at env step {step:,}; checkpoint {checkpoint}; run the same command " \
           "to resume" in message
    assert (checkpoint / "complete").exists() and records(run_dir)[-1]["step"] == step > 200
    state = json.loads((checkpoint / "forethought_state.json").read_text())
    assert state["counters"]["env_steps"] == step
    replay_steps = int(np.load(checkpoint / "replay.npz")["filled"].sum())

    resumed = train(f"run.dir={run_dir}", "train.checkpoint_every=100000", "--steps", str(step + 64))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from {checkpoint} at {step:,} env steps with {replay_steps:,} steps in replay" in resumed.stdout
    last = records(run_dir)[-1]
    assert last["step"] >= step + 64 and last["perf/updates"] == last["step"] * 8 / (4 * 16)


def test_greedy_evaluations_during_training_are_recorded_and_change_nothing_else(tmp_path):
    evaluated, plain = tmp_path / "evaluated", tmp_path / "plain"
    for run_dir, every in ((evaluated, 128), (plain, 0)):
        result = train(f"run.dir={run_dir}", f"train.eval_every={every}", "train.eval_episodes=2", "run.wandb=disabled",
                       "--steps", "384")
        assert result.returncode == 0, result.stderr[-3000:]
    log = records(evaluated)
    graded = [r for r in log if "eval/return" in r]
    # every 128 env steps (at the first record past each multiple) and at the end: the last is the final return
    assert [r["step"] // 128 for r in graded[:-1]] == [1, 2] and graded[-1]["step"] == log[-1]["step"] >= 384
    assert all(0 < r["eval/length"] <= 200 and r["eval/return"] is not None for r in graded)
    report = json.loads((evaluated / "eval.json").read_text())
    assert report["env_step"] == log[-1]["step"] and report["return"]["mean"] == graded[-1]["eval/return"]
    assert report["first_seed"] == 1_000_000_000 + log[-1]["step"]  # never a training env's seed
    # evaluating leaves training alone: the same losses at every record as without the evaluations
    losses = {r["step"]: r["world_model/loss"] for r in records(plain) if "world_model/loss" in r}
    assert losses and all(r["world_model/loss"] == losses[r["step"]] for r in log if r["step"] in losses)
    assert "eval/return" in records(plain)[-1]  # the final evaluation happens either way
