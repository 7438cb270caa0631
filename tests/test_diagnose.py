"""`forethought diagnose RUN_DIR`: a checkpoint's reward head, continuation head, critic and actor measured on
its own replay, and the discounted returns that followed each stored step."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from forethought.diagnose import diagnose, lane_streams, returns_to_go

ROOT = Path(__file__).resolve().parent.parent
FORETHOUGHT = Path(sys.executable).parent / "forethought"


def test_returns_to_go_stop_at_episode_ends_and_mark_the_unfinished_episode():
    # episode A: steps 0-3, reward 1 on arriving at step 2 and 2 at the terminal step 3; episode B: steps 4-5,
    # cut by the time limit (no terminal), then episode C from step 6, still running where the stream ends
    reward = np.array([0, 0, 1, 2, 0, 5, 0, 3, 0], np.float32)
    is_first = np.array([1, 0, 0, 0, 1, 0, 1, 0, 0], bool)
    is_terminal = np.array([0, 0, 0, 1, 0, 0, 0, 0, 0], bool)
    returns, complete = returns_to_go(reward, is_first, is_terminal, discount=0.5)
    np.testing.assert_allclose(returns[:6], [0 + 0.5 * 1 + 0.25 * 2, 1 + 0.5 * 2, 2, 0, 5, 0])
    assert complete[:6].all() and not complete[6:].any()


def test_lane_streams_put_a_wrapped_lane_back_in_write_order(tmp_path):
    from forethought.replay import Replay

    replay = Replay({"vector": ((1,), np.float32), "action": ((2,), np.float32), "reward": ((), np.float32),
                     "is_first": ((), bool), "is_terminal": ((), bool)}, capacity=4, lanes=1)
    values = np.arange(6, dtype=np.float32)
    replay.add("a", {"vector": values[:, None], "action": np.zeros((6, 2), np.float32), "reward": values,
                     "is_first": values == 0, "is_terminal": values < 0}, done=False)
    replay.save(tmp_path / "replay.npz")
    (stream,) = lane_streams(tmp_path / "replay.npz")
    np.testing.assert_array_equal(stream["reward"], [2, 3, 4, 5])  # the oldest two were overwritten


def test_diagnose_a_flat_run_on_the_command_line(trained_cartpole):
    result = subprocess.run([str(FORETHOUGHT), "diagnose", str(trained_cartpole)], capture_output=True, text=True,
                            cwd=ROOT, timeout=300, env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    assert result.returncode == 0, result.stderr
    newest = sorted((trained_cartpole / "checkpoints").glob("step_*"))[-1]
    report = json.loads((trained_cartpole / "diagnose" / f"{newest.name}.json").read_text())
    assert report["checkpoint"] == newest.name and "reward_head" in result.stdout
    replay = report["replay"]
    # CartPole pays 1 on every step but an episode's first: every episode's steps are stored
    assert replay["steps"] >= 384 and replay["rewarded_steps"] == replay["steps"] - replay["episodes_started"]
    assert replay["distinct_observations"] == replay["steps"]  # continuous observations never repeat
    assert report["reward_head"]["true_on_rewarded"] == 1.0
    for part in ("reward_head", "cont_head", "critic", "actor"):
        assert all(v is None or np.isfinite(v) for v in report[part].values()), report[part]
    assert 0 < report["actor"]["entropy"] <= report["actor"]["max_entropy"] == pytest.approx(np.log(2))
    # returns that followed real steps: positive, below the discounted sum of an endless episode
    assert 0 < report["critic"]["return_at_starts"] < 1 / (1 - report["discount"])


def test_an_older_checkpoint_and_a_folder_that_is_no_run(trained_cartpole, tmp_path):
    oldest = sorted((trained_cartpole / "checkpoints").glob("step_*"))[0]
    assert diagnose(trained_cartpole, int(oldest.name.removeprefix("step_")))["checkpoint"] == oldest.name
    result = subprocess.run([str(FORETHOUGHT), "diagnose", str(tmp_path)], capture_output=True, text=True, cwd=ROOT,
                            timeout=300, env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    assert result.returncode == 2 and result.stderr.startswith("forethought: error: ")
    assert "neither a run folder" in result.stderr and "Traceback" not in result.stderr
