"""benchmarks/sample_efficiency.py: steps to threshold and final greedy return per seed, from real runs of the
flat agent and RLlib's PPO (debug-sized), and the summary's arithmetic on known records."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.sample_efficiency import summary, table

ROOT = Path(__file__).resolve().parent.parent


def record(seed, greedy, curve, threshold=0.9):
    return {"task": "keydoor_vector", "agent": "flat", "seed": seed, "budget": 15_000, "threshold": threshold,
            "greedy": greedy, "curve": curve, "wall_s": 60.0}


def test_steps_to_threshold_is_the_first_greedy_evaluation_at_or_above_it_and_final_is_the_last():
    runs = [record(0, [[2500, 0.1, 50.0], [5000, 0.9, 99.0], [7500, 0.5, 140.0], [15000, 1.0, 300.0]], [[15000, 0.4]]),
            record(1, [[2500, 0.0, 50.0], [15000, 0.7, 300.0]], [[15000, 0.3]]),
            record(2, [[2500, 0.0, 50.0], [15000, 0.4, 300.0]], [[15000, 0.2]])]
    (row,) = summary(runs)
    assert row["seeds"] == [0, 1, 2] and row["steps_to_threshold"] == [5000, None, None]
    assert row["seconds_to_threshold"] == [99.0, None, None]
    assert row["final_greedy"] == [1.0, 0.7, 0.4] and row["final_exploring"] == [0.4, 0.3, 0.2]
    text = table([row])
    assert "5,000, not reached, not reached" in text and "0.70 ± 0.30" in text  # std with ddof=1


def test_a_task_without_threshold_reports_none():
    (row,) = summary([record(0, [[30000, 0.0, 10.0]], [[30000, 7.0]], threshold=None)])
    assert row["steps_to_threshold"] == [None] and row["final_exploring"] == [7.0]


@pytest.mark.timeout(600)
def test_quick_grid_of_flat_and_ppo_writes_records_summary_and_figure(tmp_path):
    command = [sys.executable, "-m", "benchmarks.sample_efficiency", "--quick", "--tasks", "cartpole",
               "--results", str(tmp_path / "results"), "--work", str(tmp_path / "work")]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=580,
                            env={**os.environ, "RAY_AUTH_MODE": "disabled", "WANDB_MODE": "disabled"})
    assert result.returncode == 0, result.stderr[-3000:]
    folder = tmp_path / "results" / "sample_efficiency-quick"
    for agent in ("flat", "ppo"):
        run = json.loads((folder / f"cartpole-{agent}-seed0.json").read_text())
        steps = [point[0] for point in run["greedy"]]
        assert steps and steps[-1] >= 512 and steps == sorted(steps), run["greedy"]
        assert all(0 < point[1] <= 500 for point in run["greedy"])  # CartPole pays 1 per step, up to 500
    (summary_file,) = (tmp_path / "results").glob("sample_efficiency-quick-*.json")
    rows = json.loads(summary_file.read_text())["rows"]
    assert {row["agent"] for row in rows} == {"flat", "ppo"}
    for row in rows:
        assert row["task"] == "cartpole" and row["seeds"] == [0] and row["budget"] == 512
        assert row["threshold"] == 450.0 and len(row["steps_to_threshold"]) == len(row["final_greedy"]) == 1
    assert (folder / "greedy.png").stat().st_size > 0 and "| cartpole | ppo |" in result.stdout
