"""`forethought plot`: curves grouped by a config field with a 95% interval, and a threshold table."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from forethought.config import ConfigError
from forethought.plot import band, expand, load, plot

ROOT = Path(__file__).resolve().parent.parent
FORETHOUGHT = Path(sys.executable).parent / "forethought"


def run_folder(root: Path, agent: str, seed: int, values: list[float], every: int = 1000) -> Path:
    """A run folder as `forethought train` writes it: config.yaml and metrics.jsonl with eval records."""
    folder = root / f"{agent}-seed{seed}"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"agent": {"name": agent}, "run": {"seed": seed}}))
    rows = []
    for i, value in enumerate(values):
        step = (i + 1) * every + 32 * seed  # records land a little past each multiple, differently per run
        rows.append({"step": step, "time_s": 2.0 * step / 1000, "episode/return": value / 2})
        rows.append({"step": step + 16, "time_s": 2.0 * (step + 16) / 1000, "eval/return": value})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_groups_mean_and_interval_over_seeds(tmp_path):
    for seed, values in enumerate([[0.0, 0.5, 1.0], [0.0, 0.3, 0.9], [0.1, 0.4, 0.8]]):
        run_folder(tmp_path, "dreamer", seed, values)
    run_folder(tmp_path, "director", 0, [0.0, 0.0, 0.2])
    curves = load(expand([str(tmp_path / "*")]), "eval/return", "agent.name")
    assert sorted(c.group for c in curves) == ["director", "dreamer", "dreamer", "dreamer"]
    flat = [c for c in curves if c.group == "dreamer"]
    grid, mean, low, high = band(flat, "env_steps")
    # where all three runs have a record of their own value, the mean and the t interval are the textbook ones
    at = np.searchsorted(grid, 2048)  # inside every run's own range
    values = np.array([np.interp(grid[at], c.steps, c.values) for c in flat])
    half = 4.302653 * values.std(ddof=1) / np.sqrt(3)  # t(0.975, df=2)
    assert mean[at] == pytest.approx(values.mean()) and high[at] - mean[at] == pytest.approx(half, rel=1e-5)
    assert np.all(low <= mean) and np.all(mean <= high)
    # the first x belongs to one run only: no interval there
    assert low[0] == mean[0] == high[0]


def test_the_command_writes_png_svg_and_the_threshold_table(tmp_path):
    for seed, values in enumerate([[0.2, 0.95, 1.0], [0.1, 0.5, 0.92], [0.0, 0.3, 0.6]]):
        run_folder(tmp_path / "runs", "dreamer", seed, values)
    out = tmp_path / "figures" / "keydoor.png"
    result = subprocess.run([str(FORETHOUGHT), "plot", str(tmp_path / "runs" / "*"), "--threshold", "0.9",
                             "--out", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=120,
                            env={**os.environ})
    assert result.returncode == 0, result.stderr
    assert Image.open(out).size[0] > 400 and out.with_suffix(".svg").read_text().lstrip().startswith("<?xml")
    rows = list(csv.DictReader(out.with_suffix(".csv").open()))
    assert [r["steps_to_threshold"] for r in rows] == ["2016", "3048", ""]  # seed 2 never reaches 0.9
    assert [float(r["final"]) for r in rows] == [1.0, 0.92, 0.6]
    table = out.with_suffix(".md").read_text()
    assert "not reached" in table and f"final eval/return {np.mean([1.0, 0.92, 0.6]):.4g} ± " in table
    assert table.strip() in result.stdout


def test_wall_time_axis_and_other_metrics_from_a_real_run(tmp_path, trained_cartpole):
    written = plot([str(trained_cartpole)], metric="episode/return", axis="wall", group="env.id",
                   threshold=1e9, out=tmp_path / "p.png")
    (row,) = written["rows"]
    assert row["group"] == "CartPole-v1" and row["steps_to_threshold"] is None and row["final"] > 0


def test_bad_input_is_refused_in_one_sentence(tmp_path):
    with pytest.raises(ConfigError, match="matches no run folder"):
        expand([str(tmp_path / "nothing-*")])
    folder = run_folder(tmp_path, "dreamer", 0, [0.1])
    with pytest.raises(ConfigError, match="no 'world_model/loss' records"):
        load([folder], "world_model/loss", "agent.name")
    with pytest.raises(ConfigError, match=r"config field 'agent\.size' is not in"):
        load([folder], "eval/return", "agent.size")


def test_a_glob_over_a_sweep_folder_takes_its_run_folders_only(tmp_path):
    runs = [run_folder(tmp_path, "dreamer", seed, [0.1]) for seed in (0, 1)]
    (tmp_path / "logs").mkdir()  # a sweep's folder also holds logs/ and tune/
    (tmp_path / "tune").mkdir()
    assert [path.resolve() for path in expand([f"{tmp_path}/*/"])] == [run.resolve() for run in runs]
    with pytest.raises(ConfigError, match="is not a run folder"):
        expand([str(tmp_path / "logs")])
