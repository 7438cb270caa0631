"""The run folder is the run: its resolved config, the checks that a resume has the same setup, and the
checkpoints (written atomically, found by env step).

A run folder holds ``config.yaml``, ``metrics.jsonl``, ``checkpoints/step_<N>/`` (RLlib's algorithm state with
the agent's weights and optimisers, plus the replay, counters and random state, and a ``complete`` file
written last), ``report/``, ``eval/`` and ``eval.json``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from forethought.config import Config, ConfigError

CHECKPOINTS = "checkpoints"
MODULE_STATE = Path("algorithm/learner_group/learner/rl_module/default_policy/module_state.pkl")
"""Where a checkpoint keeps the agent's weights (RLlib's module state)."""
#: config fields that may change when a run resumes: budgets, logging, speed settings, W&B metadata
RESUMABLE = {("train", "steps"), ("train", "log_every"), ("train", "checkpoint_every"), ("train", "eval_episodes"),
             ("train", "eval_every"), ("train", "report_every"), ("train", "compile"),
             ("scale", "address"), ("scale", "learner_threads"), ("scale", "env_runner_threads"),
             *(("run", key) for key in ("wandb", "project", "group", "tags", "name", "notes", "wandb_artifacts"))}


class CheckpointError(ValueError):
    """A run folder or checkpoint that cannot be loaded; the message names the path and why."""


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run folder, or None."""
    folder = run_dir / CHECKPOINTS
    done = sorted(p for p in folder.glob("step_*") if not p.name.endswith(".tmp") and (p / "complete").exists())
    return done[-1] if done else None


def checkpoint_step(checkpoint: Path) -> int:
    """The env step a checkpoint was written at (its folder's name)."""
    return int(checkpoint.name.removeprefix("step_"))


def find_checkpoint(target: Path, step: int | None = None) -> tuple[Path, Path]:
    """(run folder, checkpoint) of a run folder (its newest checkpoint, or the one of env step ``step``) or of
    a checkpoint folder ``<run>/checkpoints/step_<N>``."""
    if not target.exists():
        raise CheckpointError(f"'{target}' does not exist; give a run folder or one of its checkpoints/step_* folders")
    if (target / "complete").exists() and target.parent.name == CHECKPOINTS:
        return target.parent.parent, target
    if not (target / "config.yaml").exists():
        raise CheckpointError(f"'{target}' is neither a run folder (no config.yaml) nor a checkpoint folder "
                              "(checkpoints/step_<N> with a 'complete' file)")
    kept = sorted(p for p in (target / CHECKPOINTS).glob("step_*") if (p / "complete").exists())
    if not kept:
        raise CheckpointError(f"run folder '{target}' has no checkpoints yet (no complete checkpoints/step_* folder)")
    if step is None:
        return target, kept[-1]
    chosen = [p for p in kept if checkpoint_step(p) == step]
    if not chosen:
        steps = ", ".join(str(checkpoint_step(p)) for p in kept)
        raise CheckpointError(f"run folder '{target}' has no checkpoint at env step {step}; it keeps: {steps}")
    return target, chosen[0]


def save_checkpoint(algo: Any, run_dir: Path, step: int, keep: int = 2) -> Path:
    """Write a checkpoint into a temporary folder, then rename it: a crash never leaves half of one."""
    final = run_dir / CHECKPOINTS / f"step_{step:010d}"
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    algo.save_to_path(str((tmp / "algorithm").resolve()))
    algo.save_extra(tmp)
    (tmp / "complete").write_text(str(step))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in sorted(p for p in final.parent.glob("step_*") if not p.name.endswith(".tmp"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def check_resume(config: Config, run_dir: Path) -> None:
    """Refuse to resume a folder whose run had another setup; a longer budget is fine."""
    path = run_dir / "config.yaml"
    if not path.exists() or latest_checkpoint(run_dir) is None:  # nothing to resume: any setup may start
        return
    before = yaml.safe_load(path.read_text())
    now = config.model_dump(mode="json")
    diffs = [f"{section}.{key}: {before.get(section, {}).get(key)!r} -> {value!r}"
             for section in ("env", "agent", "train", "scale", "run") for key, value in now[section].items()
             if (section, key) not in RESUMABLE and before.get(section, {}).get(key) != value]
    if diffs:
        raise ConfigError(f"run folder '{run_dir}' holds a run with another setup ({'; '.join(diffs)}); "
                          "use another run.dir or the same settings")
