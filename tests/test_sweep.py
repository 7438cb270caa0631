"""Seeds as parallel trials and sweeps on Ray Tune: real `forethought train run.seeds=...` and `forethought tune`
runs on this machine's CPUs (each trial a debug-sized training run), an interruption and its resume, ASHA stopping
the worse trial, Optuna's search; the sweep file's checks before any Ray work."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from forethought.config import ConfigError
from forethought.sweep_spec import check_folder, make_sweep, read_sweep, trial_config
from tests.wandb_records import records, run_files

ROOT = Path(__file__).resolve().parent.parent
FORETHOUGHT = Path(sys.executable).parent / "forethought"
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "WANDB_MODE": "offline"}
TINY = ["scale.num_env_runners=0", "train.eval_episodes=1", "train.prefill=64"]


def forethought(*args, **popen):
    return subprocess.Popen([str(FORETHOUGHT), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, env=ENV, **popen)


def steps(run_dir: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_seeds_run_as_parallel_trials_stop_on_sigterm_and_resume(tmp_path):
    folder = tmp_path / "seeds"
    # no greedy evaluation before the end, so each trial's Tune step lasts its whole run, as with the presets'
    # evaluations thousands of env steps apart: a stop must not wait for the step's end (Tune would kill the trial)
    args = ["train", "-c", "keydoor_vector", "debug", "run.seeds=[0, 1]", f"run.dir={folder}", "train.steps=768",
            "train.eval_every=768", "train.checkpoint_every=128", *TINY, "--quiet"]
    first = forethought(*args)
    deadline = time.time() + 240
    while not any((folder / "seed0" / "checkpoints").glob("step_*/complete")) and time.time() < deadline:
        time.sleep(0.5)
    first.send_signal(signal.SIGTERM)
    out, err = first.communicate(timeout=240)
    assert first.returncode == 143, err[-3000:]
    assert "with 0 of 2 trials finished; run the same command to resume" in err
    stopped = {seed: steps(folder / f"seed{seed}") for seed in (0, 1) if (folder / f"seed{seed}").exists()}
    # seed 0 has a checkpoint, so records; seed 1 may have been stopped before its first record (a start on 2 cores
    # takes a while), and then its checkpoint is of step 0
    assert stopped.get(0) and all(not log or log[-1] < 768 for log in stopped.values())
    for seed, log in stopped.items():  # the stopped trial wrote a checkpoint where its records end
        newest = sorted((folder / f"seed{seed}" / "checkpoints").glob("step_*"))[-1]
        assert int(newest.name.split("_")[1]) == (log[-1] if log else 0)

    second = forethought(*args)
    out, err = second.communicate(timeout=400)
    assert second.returncode == 0, err[-3000:]
    assert "resuming sweep" in out
    for seed in (0, 1):
        run = folder / f"seed{seed}"
        log = steps(run)
        assert log == sorted(set(log)) and log[-1] == 768  # resumed, not restarted: no step twice
        if seed in stopped:
            assert log[: len(stopped[seed])] == stopped[seed]
        assert yaml.safe_load((run / "config.yaml").read_text())["run"]["seed"] == seed
        assert json.loads((run / "eval.json").read_text())["return"]["mean"] is not None
        (path, *_) = run_files(run)  # each seed its W&B run, all in one group
        wandb_run = next(r.run for r in records(path) if r.WhichOneof("record_type") == "run")
        assert (wandb_run.run_group, wandb_run.display_name) == ("seeds", f"seed{seed}")
    summary = json.loads((folder / "summary.json").read_text())
    (setting,) = summary["settings"]
    assert setting["seeds"] == [0, 1] and len(setting["finals"]) == 2 and setting["std"] is not None
    assert "| (one setting) | 2 |" in out and "0: " in out and "1: " in out


def write(path: Path, spec: dict) -> Path:
    path.write_text(yaml.safe_dump(spec))
    return path


def test_grid_sweep_asha_stops_the_worse_trial(tmp_path):
    # one trial at a time, so ASHA has the first trial's rungs when the second (fewer updates per env step)
    # reaches its grace period; perf/updates is the metric because it orders the trials without luck
    spec = write(tmp_path / "asha.yaml", {
        "name": "asha", "dir": str(tmp_path / "sweep"), "presets": ["keydoor_vector", "debug"],
        "overrides": {"train.steps": 512, "train.eval_episodes": 0, "scale.num_env_runners": 0, "train.prefill": 64},
        "parameters": {"train.train_ratio": {"values": [16, 4]}}, "search": "grid", "metric": "perf/updates",
        "max_concurrent": 1, "asha": {"grace_period": 128, "reduction_factor": 2}})
    process = forethought("tune", str(spec), "run.wandb=disabled", "--quiet")
    out, err = process.communicate(timeout=400)
    assert process.returncode == 0, err[-3000:]
    summary = json.loads((tmp_path / "sweep" / "summary.json").read_text())
    trials = {t["params"]["train.train_ratio"]: t for t in summary["trials"]}
    assert trials[16]["status"] == "finished" and trials[16]["env_steps"] == 512
    assert trials[4]["status"] == "stopped" and trials[4]["env_steps"] < 512
    assert steps(Path(trials[4]["run_dir"]))[-1] == trials[4]["env_steps"]
    assert "train_ratio=4: perf/updates" in out and "(stopped early by ASHA)" in out
    assert [row["setting"] for row in summary["settings"]] == [{"train.train_ratio": 16}, {"train.train_ratio": 4}]


def test_optuna_search_draws_within_the_ranges(tmp_path):
    pytest.importorskip("optuna")
    spec = write(tmp_path / "optuna.yaml", {
        "name": "optuna", "presets": ["keydoor_vector", "debug"],
        "overrides": {"train.steps": 192, "train.eval_every": 0, "scale.num_env_runners": 0, "train.prefill": 64,
                      "train.eval_episodes": 1},
        "parameters": {"agent.world_model.lr": {"loguniform": [1e-4, 1e-3]},
                       "train.batch_length": {"values": [8, 16]}},
        "search": "optuna", "samples": 2})
    process = forethought("tune", str(spec), "run.wandb=disabled", "--dir", str(tmp_path / "sweep"), "--quiet")
    _, err = process.communicate(timeout=400)
    assert process.returncode == 0, err[-3000:]
    summary = json.loads((tmp_path / "sweep" / "summary.json").read_text())
    assert len(summary["trials"]) == 2 and all(t["status"] == "finished" for t in summary["trials"])
    for trial in summary["trials"]:
        config = yaml.safe_load((Path(trial["run_dir"]) / "config.yaml").read_text())
        assert 1e-4 <= config["agent"]["world_model"]["lr"] <= 1e-3
        assert config["agent"]["world_model"]["lr"] == trial["params"]["agent.world_model.lr"]
        assert config["train"]["batch_length"] in (8, 16) and config["run"]["group"] == "optuna"


def test_random_search_draws_the_same_trials_from_the_same_seed():
    from ray.tune.search import BasicVariantGenerator

    from forethought.sweep import Trial, param_space

    sweep = make_sweep({"name": "r", "presets": ["keydoor_vector"], "search": "random", "samples": 6,
                        "parameters": {"agent.world_model.lr": {"loguniform": [1e-4, 1e-3]},
                                       "train.train_ratio": {"values": [16, 32]}, "run.seed": {"randint": [0, 3]}}})

    def draws(seed):
        generator = BasicVariantGenerator(random_state=seed)
        generator.add_configurations({"r": {"run": Trial, "config": param_space(sweep), "num_samples": sweep.samples}})
        trials = [generator.next_trial() for _ in range(sweep.samples)]
        return [trial.config for trial in trials]

    first = draws(0)
    assert first == draws(0) and first != draws(1)
    assert all(1e-4 <= c["agent.world_model.lr"] <= 1e-3 and c["train.train_ratio"] in (16, 32)
               and c["run.seed"] in (0, 1, 2) for c in first)


@pytest.mark.parametrize(("entry", "message"), [
    ({"parameters": {"agent.actor_critic.entropi": {"values": [1e-3]}}},
     "unknown config key 'agent.actor_critic.entropi'"),
    ({"parameters": {"train.steps": {"values": [-5]}}}, "bad value -5 for config field 'train.steps'"),
    ({"parameters": {"train.steps": {"values": [5], "uniform": [1, 2]}}}, "give exactly one of values, uniform"),
    ({"parameters": {"agent.world_model.lr": {"loguniform": [0, 1e-3]}}}, "loguniform needs low > 0"),
    ({"parameters": {}}, "bad sweep entry 'parameters'"),
    ({"search": "bayes"}, "bad sweep entry 'search'"),
    ({"overrides": {"train.steps": 100}, "parameters": {"train.steps": {"values": [100, 200]}}},
     "'train.steps' is both searched (parameters) and fixed (overrides)"),
])
def test_a_bad_sweep_is_refused_in_one_sentence(entry, message):
    data = {"name": "bad", "presets": ["keydoor_vector"], "parameters": {"train.steps": {"values": [100]}}, **entry}
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_sweep(data)


def test_the_example_sweeps_are_valid_and_their_folder_holds_one_sweep(tmp_path):
    examples = sorted((ROOT / "configs" / "sweeps").glob("*.yaml"))
    for path in [p for p in examples if not p.name.startswith("wandb")]:
        sweep = read_sweep(path)
        assert sweep.name == path.stem and sweep.parameters
    sweep = read_sweep(ROOT / "configs" / "sweeps" / "keydoor_entropy_grid.yaml")
    sweep = sweep.model_copy(update={"dir": str(tmp_path / "grid")})
    assert check_folder(sweep) is False and check_folder(sweep) is True
    config = trial_config(sweep, {"agent.actor_critic.entropy": 1e-3, "run.seed": 2}, "00004")
    assert config.run.dir == str(tmp_path / "grid" / "00004_entropy=0.001_seed=2")
    assert (config.run.group, config.run.seed, config.agent.actor_critic["entropy"]) == ("keydoor_entropy_grid", 2,
                                                                                        1e-3)
    other = sweep.model_copy(update={"samples": 2})
    with pytest.raises(ConfigError, match="holds another sweep \\(differs in: samples\\)"):
        check_folder(other)
    with pytest.raises(ConfigError, match="does not exist"):
        read_sweep(tmp_path / "missing.yaml")


def test_the_wandb_sweep_file_makes_commands_that_forethought_train_accepts(monkeypatch):
    from wandb.sdk.launch.sweeps.utils import create_sweep_command, create_sweep_command_args

    from forethought.cli import _resolve, build_parser

    spec = yaml.safe_load((ROOT / "configs" / "sweeps" / "wandb_keydoor_entropy.yaml").read_text())
    assert spec["metric"]["name"] == "eval/return" and spec["program"] == "forethought"
    monkeypatch.setenv("WANDB_RUN_ID", "abc123")
    for choice in (0, -1):  # the first and the last value of each parameter, as `wandb agent` passes them
        values = {name: p["values"][choice] if "values" in p else (p["min"], p["max"])[choice]
                  for name, p in spec["parameters"].items()}
        arguments = create_sweep_command_args({"args": {name: {"value": v} for name, v in values.items()}})
        command = []  # the agent's expansion of the command's macros
        for word in create_sweep_command(list(spec["command"])):
            command += arguments[word[2:-1]] if word.startswith("${") else [word]
        assert command[0] == "forethought"
        args = build_parser().parse_args(command[1:])
        config = _resolve(args, {})
        assert config.run.dir == "runs/wandb-sweeps/abc123" and config.run.wandb == "online"
        assert config.agent.actor_critic["entropy"] == values["agent.actor_critic.entropy"]
        assert config.agent.world_model["lr"] == values["agent.world_model.lr"]
        assert config.run.seed == values["run.seed"]
