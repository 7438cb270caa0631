"""The real `forethought` CLI: the README's main command on a tiny budget, help, listings, bad input."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
FORETHOUGHT = Path(sys.executable).parent / "forethought"


def run(*args, check=True):
    result = subprocess.run([str(FORETHOUGHT), *args], capture_output=True, text=True, cwd=ROOT, timeout=300,
                            env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    if check:
        assert result.returncode == 0, result.stderr
    return result


def main_command() -> list[str]:
    """The arguments of the README's main command, read from the Makefile's `run` target."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    recipe = lines[lines.index(next(line for line in lines if line.startswith("run:"))) + 1]
    words = recipe.split()
    assert words[0].endswith("forethought") and words[1] == "train", recipe
    return words[1:]


def test_readme_main_command_on_a_tiny_budget(tmp_path):
    run_dir = tmp_path / "run"
    result = run(*main_command(), "-c", "debug", f"run.dir={run_dir}", "train.steps=256", "--quiet")
    # a short summary, not a dump of metrics; third-party notes went to the run's log file, not the console
    assert f"done        {json.loads((run_dir / 'metrics.jsonl').read_text().splitlines()[-1])['step']:,} env steps" \
        in result.stdout
    assert "greedy" in result.stdout and f"run folder  {run_dir}" in result.stdout
    assert '"world_model/loss"' not in result.stdout
    assert result.stderr.strip() == "", result.stderr[-2000:]
    assert "new API stack" in (run_dir / "logs" / "third_party.log").read_text()
    log = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert log[-1]["step"] >= 256
    report = json.loads((run_dir / "eval.json").read_text())
    assert report["episodes"] == 2 and report["policy"].startswith("agent")
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["env"]["id"] == "forethought/KeyDoorVector-v0" and config["run"]["dir"] == str(run_dir)


def test_eval_writes_report_and_video(tmp_path):
    run_dir = tmp_path / "run"
    result = run("eval", "-c", "debug", "--random", "--video", f"run.dir={run_dir}", "--quiet")
    assert "return" in result.stdout and str(run_dir / "eval.json") in result.stdout
    report = json.loads((run_dir / "eval.json").read_text())
    assert report["episodes"] == 2 and len(report["episode_returns"]) == 2
    assert report["episode_lengths"] == [200, 200]  # the debug preset's time limit
    assert report["env_steps"] == 400 and report["env_steps_per_s"] > 0
    assert set(report["return"]) == {"mean", "std", "ci_low", "ci_high", "min", "max"}
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["env"]["time_limit"] == 200 and config["run"]["dir"] == str(run_dir)
    frames = list(iio.imiter(report["video"]))
    assert len(frames) == 201 and frames[0].shape == (256, 256, 3)  # reset frame + 200 steps, enlarged


def test_same_seed_same_report_other_seed_differs(tmp_path):
    def returns(seed, name):
        run("eval", "-c", "keydoor_vector", "--random", "--quiet", "--episodes", "6", f"run.seed={seed}",
            f"run.dir={tmp_path / name}")
        report = json.loads((tmp_path / name / "eval.json").read_text())
        return report["episode_returns"], report["episode_lengths"]

    assert returns(1, "a") == returns(1, "b")
    assert returns(1, "a") != returns(2, "c")


def test_help_at_every_level():
    top = run("--help").stdout
    assert "envs" in top and "eval" in top
    assert "optional suites" in run("envs", "--help").stdout
    eval_help = run("eval", "--help").stdout
    assert "presets: " in eval_help and "debug" in eval_help
    assert re.search(r"eval\.episodes\s+10\s+Number of episodes", eval_help)


def test_envs_lists_builtin_tasks_and_suites():
    text = run("envs").stdout
    assert all(f"forethought/{name}-v0" in text for name in ("PinPad4", "KeyDoorVector", "KeyChainVector3"))
    listing = json.loads(run("envs", "--json").stdout)
    assert {"minigrid", "crafter"} == set(listing["suites"])
    assert len(listing["builtin"]) == 18  # Pin Pad 3-8 and key door, each from pixels and vectors; 2 key chains too


def test_print_config_shows_the_stacked_result():
    config = yaml.safe_load(run("eval", "-c", "keydoor", "debug", "eval.episodes=3", "--print-config").stdout)
    assert config["env"]["id"] == "forethought/KeyDoor-v0" and config["eval"]["episodes"] == 3
    misspelt = run("train", "-c", "keydoor_vector_planner", "agent.planner.sample=9", "--print-config", check=False)
    assert misspelt.returncode == 2 and "unknown config key 'agent.planner.sample'" in misspelt.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["env.id=forethought/PinPad-v0"], "closest known ids: forethought/PinPad"),
        (["env.id=CartPol-v1"], "CartPole-v1"),
        (["eval.episods=3"], "valid keys in 'eval': episodes"),
        (["eval.video_format=avi"], "'mp4' or 'gif'"),
        (["-c", "nope"], "available presets"),
        (["env.id=forethought/PinPad3-v0", "env.options={num_pads: 12}"], "from 3 to 8"),
        (["env.id=tests.toy_envs:NotAnEnv"], "gymnasium.Env subclass"),
        (["train", "agent.world_model={blocks: 3}"], "must split evenly into blocks"),
        (["train", "agent.world_model={detr: 3}"],
         "unknown config key 'agent.world_model.detr'; valid keys in 'agent.world_model': "),
        (["train", "train.replay_capacity=20"], "fewer than train.batch_length=16"),
        (["train", "env.id=forethought/KeyDoor-v0", "env.image_size=[48, 48]"], "power-of-two side"),
    ],
)
def test_bad_input_exits_nonzero_with_one_sentence(args, needle, tmp_path):
    command = ["train", "-c", "debug", *args[1:]] if args[:1] == ["train"] else ["eval", "--random", *args]
    result = run(*command, f"run.dir={tmp_path}", "--quiet", check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("forethought: error: ") and needle in lines[0]
    assert not (tmp_path / "eval.json").exists()
