"""Learning tests (slow, `make test-slow`): the flat agent solves tasks on a CPU within stated budgets.

Budgets (2 cores): CartPole-v1 in 20,000 env steps (about 6 minutes); the key-door task in 50,000
env steps (about 11 minutes; with one-hot observations, seed 0, the exploring return passed 0.5 at
42,000 and the greedy evaluation after 50,000 scored 1.00). Each runs the real `forethought train`
on its shipped preset and reads the greedy evaluation the run writes at its end.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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
    report = train_and_evaluate("cartpole", tmp_path)
    assert report["return"]["mean"] >= 450, report["episode_returns"]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_flat_agent_solves_the_key_door_task(tmp_path):
    report = train_and_evaluate("keydoor_vector", tmp_path)
    # a random policy reaches the goal in about 12% of episodes; solved is 90%
    assert report["return"]["mean"] >= 0.9, report["episode_returns"]
