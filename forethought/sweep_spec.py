"""What a sweep is: the YAML file of ``forethought tune`` (or the seeds of ``run.seeds``), checked before Ray starts.

A sweep names the presets and fixed overrides every trial shares, the config fields it searches and how (a list
of ``values``, or a ``uniform``, ``loguniform`` or ``randint`` range), the search (``grid``, ``random`` or
``optuna``), the metric it ranks trials by and, optionally, ASHA early stopping. Every value a trial can take is
validated against the config schema here, so a typo fails in one sentence rather than in a trial. The sweep's
folder holds one run folder per trial and Tune's state (``tune/``); the spec is saved as ``sweep.yaml`` there,
and a folder that holds another sweep is refused, as a run folder that holds another run is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, PositiveInt, ValidationError, model_validator

from forethought.config import Config, ConfigError, Section, load_config, numbers, split_override
from forethought.train import check_setup

SWEEP_DIR = Path("runs/sweeps")


class Parameter(Section):
    """How one config field varies: exactly one of values, uniform, loguniform, randint."""

    values: list[Any] | None = None
    """The values to try: each one in turn with search 'grid', one drawn per trial with 'random' and 'optuna'."""
    uniform: tuple[float, float] | None = None
    """A float drawn uniformly from [low, high] (random and optuna searches)."""
    loguniform: tuple[float, float] | None = None
    """A float drawn uniformly in log space from [low, high], both above 0 (e.g. learning rates)."""
    randint: tuple[int, int] | None = None
    """An integer drawn from low to high, high excluded."""

    @model_validator(mode="after")
    def _one_form(self) -> Parameter:
        given = [name for name in ("values", "uniform", "loguniform", "randint") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of values, uniform, loguniform, randint (got {given or 'none'})")
        if self.values is not None and not self.values:
            raise ValueError("values is empty")
        for name in ("uniform", "loguniform", "randint"):
            bounds = getattr(self, name)
            if bounds is not None and not bounds[0] < bounds[1]:
                raise ValueError(f"{name} needs low < high, got {list(bounds)}")
        if self.loguniform is not None and self.loguniform[0] <= 0:
            raise ValueError(f"loguniform needs low > 0, got {list(self.loguniform)}")
        return self

    def candidates(self) -> list[Any]:
        """Values that stand for the whole range when checking it against the config: the list, or both bounds."""
        if self.values is not None:
            return self.values
        if self.randint is not None:
            return [self.randint[0], self.randint[1] - 1]
        return list(self.uniform or self.loguniform or ())


class Asha(Section):
    """ASHA early stopping: at each rung (grace_period, then times reduction_factor env steps) a trial goes on
    only if its metric is in the best 1/reduction_factor of the trials that reached that rung."""

    grace_period: PositiveInt = 5000
    """Env steps every trial trains before it can be stopped."""
    reduction_factor: float = Field(3.0, gt=1)
    """The rungs' spacing, and how many trials one rung keeps (one in reduction_factor)."""


class Sweep(Section):
    """A search over config values, run as Ray Tune trials; each trial is a `forethought train` run."""

    name: str = Field(min_length=1)
    """The sweep's name: its folder (runs/sweeps/<name> unless dir is given) and the trials' W&B group."""
    presets: list[str] = []
    """Presets every trial stacks, as `forethought train -c` does (names in configs/ or .yaml paths)."""
    overrides: dict[str, Any] = {}
    """Fixed values of every trial, by dotted field, e.g. {train.steps: 20000, scale.num_env_runners: 0}."""
    parameters: dict[str, Parameter] = Field(min_length=1)
    """The fields searched, by dotted name, e.g. {agent.actor_critic.entropy: {values: [1e-4, 1e-3]}}."""
    search: Literal["grid", "random", "optuna"] = "grid"
    """'grid' tries every combination of the values lists (ranges drawn anew for each); 'random' draws every
    field per trial; 'optuna' lets Optuna's TPE sampler choose from the results so far (pip install optuna)."""
    samples: PositiveInt = 1
    """Trials: with 'grid' the number of times the whole grid runs, with 'random' and 'optuna' the trial count."""
    metric: str = "eval/return"
    """The metric trials are ranked by (and ASHA stops on): eval/return (greedy) or any metrics.jsonl key."""
    mode: Literal["max", "min"] = "max"
    """Whether a higher or a lower metric is better."""
    asha: Asha | None = None
    """ASHA early stopping on the metric against env steps; none runs every trial to train.steps."""
    max_concurrent: int = Field(0, ge=0)
    """Trials at once at most; 0: as many as the cluster's CPUs (and GPUs) hold."""
    seed: int = Field(0, ge=0)
    """Seed of the search's own draws (the trials' seeds are run.seed, a field like any other)."""
    dir: str = ""
    """The sweep's folder; empty: runs/sweeps/<name>."""

    @property
    def folder(self) -> Path:
        """Where the sweep lives (resolved, so that trials find it from any working directory)."""
        return Path(self.dir or SWEEP_DIR / self.name).resolve()


def read_sweep(path: Path, overrides: Sequence[str] = ()) -> Sweep:
    """The sweep of a YAML file, with ``KEY=VALUE`` overrides added to its fixed ones, every trial value checked."""
    if not path.is_file():
        raise ConfigError(f"sweep file '{path}' does not exist; give a YAML file such as configs/sweeps/grid.yaml")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"sweep file '{path}' is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"sweep file '{path}' must hold a mapping (name, presets, parameters, ...)")
    data.setdefault("name", path.stem)
    data["presets"] = absolute(data.get("presets", []), path.resolve().parent)  # relative to the sweep file
    return make_sweep(data, overrides)


def absolute(presets: Sequence[str], base: Path) -> list[str]:
    """Presets given as paths of .yaml files under ``base`` made absolute (trials may run in other folders)."""
    return [str((base / p).resolve()) if str(p).endswith((".yaml", ".yml")) and (base / p).is_file() else p
            for p in presets]


def make_sweep(data: dict[str, Any], overrides: Sequence[str] = ()) -> Sweep:
    """A Sweep from plain data and extra fixed ``KEY=VALUE`` overrides, or one ConfigError naming what is wrong."""
    try:
        sweep = Sweep.model_validate(numbers(data))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the sweep"
        raise ConfigError(f"bad sweep entry '{where}': {first['msg']}; accepted keys: "
                          f"{', '.join(Sweep.model_fields)}") from None
    fixed = dict(sweep.overrides)
    for text in overrides:
        key, value = split_override(text)
        fixed[key] = value
    sweep = sweep.model_copy(update={"overrides": fixed})
    for key, parameter in sweep.parameters.items():
        if key in sweep.overrides:
            raise ConfigError(f"'{key}' is both searched (parameters) and fixed (overrides); keep one")
        for value in parameter.candidates():  # the agent built from it too, so that a typo fails here
            check_setup(trial_config(sweep, {key: value}, "check"))
    return sweep


def _assignments(values: dict[str, Any]) -> list[str]:
    return [f"{key}={json.dumps(value)}" for key, value in values.items()]


def trial_name(params: dict[str, Any], index: str) -> str:
    """A trial's folder name: its index, then each searched field's last part and value (run.seed as seed<S>)."""
    if set(params) == {"run.seed"}:
        return f"seed{params['run.seed']}"
    parts = [index]
    for key, value in params.items():
        text = f"{value:.3g}" if isinstance(value, float) else str(value)
        parts.append(f"{key.split('.')[-1]}={text}")
    return re.sub(r"[^\w.=+-]+", "-", "_".join(parts))[:120]


def trial_config(sweep: Sweep, params: dict[str, Any], index: str) -> Config:
    """The config of the trial with these parameter values: its own run folder in the sweep's, the sweep's W&B
    group, its folder name as the W&B run name."""
    name = trial_name(params, index)
    group = sweep.overrides.get("run.group") or sweep.name
    try:
        return load_config(sweep.presets, [*_assignments(sweep.overrides), *_assignments(params), "run.seeds=[]",
                                           f"run.dir={sweep.folder / name}", f"run.group={json.dumps(group)}",
                                           f"run.name={json.dumps(name)}"])
    except ConfigError as error:
        raise ConfigError(f"sweep '{sweep.name}', trial {params}: {error}") from None


def check_folder(sweep: Sweep) -> bool:
    """Refuse a folder that holds another sweep; save this one's spec there. True when it holds this sweep."""
    saved = sweep.folder / "sweep.yaml"
    spec = sweep.model_dump(mode="json")
    if saved.exists():
        before = yaml.safe_load(saved.read_text())
        if before != spec:
            changed = sorted(key for key in spec if before.get(key) != spec[key])
            raise ConfigError(f"sweep folder '{sweep.folder}' holds another sweep (differs in: {', '.join(changed)}); "
                              "use another name or dir, or move that folder away")
        return True
    sweep.folder.mkdir(parents=True, exist_ok=True)
    saved.write_text(yaml.safe_dump(spec, sort_keys=False))
    return False


def seeds_sweep(config: Config, presets: list[str], overrides: list[str]) -> Sweep:
    """``forethought train ... run.seeds=[0,1,2]``: the same run once per seed, as a grid over run.seed in the
    folder run.dir (each seed's run folder is run.dir/seed<S>), ranked by the final greedy return."""
    fixed = [text for text in overrides if not text.startswith(("run.seeds=", "run.seed=", "run.dir="))]
    metric = "eval/return" if config.train.eval_episodes else "episode/return"
    return make_sweep({"name": Path(config.run.dir).name, "presets": absolute(presets, Path.cwd()),
                       "dir": config.run.dir,
                       "parameters": {"run.seed": {"values": list(config.run.seeds)}}, "metric": metric,
                       "overrides": {"run.group": config.run.group or Path(config.run.dir).name}},
                      fixed)
