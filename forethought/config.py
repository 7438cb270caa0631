"""Typed configuration: YAML presets stacked left to right, then dotted overrides, then validation.

Every field is documented by the docstring under it, which ``--help`` prints. A config is frozen
once loaded; derived values (the run folder) are filled in by ``load_config`` and nothing writes
into it later.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError

PRESET_DIR = Path(__file__).resolve().parent.parent / "configs"


class ConfigError(ValueError):
    """A preset, key or value that the config does not accept; the message names what would be."""


class Section(BaseModel):
    """Base of every config section: unknown keys are refused, fields are frozen and documented."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True, validate_default=True)


class EnvConfig(Section):
    """Which environment to run and how it is wrapped."""

    id: str = "forethought/PinPadVector3-v0"
    """Env id: a built-in task (see `forethought envs`), a gymnasium id, a MiniGrid or Crafter id, or module:Class."""
    image_size: tuple[PositiveInt, PositiveInt] = (64, 64)
    """Height and width that image observations are resized to."""
    action_repeat: PositiveInt = 1
    """Env steps per agent action; rewards over the repeated steps are summed."""
    time_limit: int = Field(0, ge=0)
    """Episode limit in env steps; 0 keeps the env's own limit."""
    options: dict[str, Any] = {}
    """Keyword arguments for the env's constructor, e.g. {size: 10} for KeyDoor."""


class EvalConfig(Section):
    """How `forethought eval` runs and records a policy."""

    episodes: PositiveInt = 10
    """Number of episodes to run."""
    policy: Literal["greedy", "sampled", "random"] = "greedy"
    """Policy to evaluate: the checkpoint's agent acting 'greedy' (the mode of each action) or 'sampled', or
    'random' (uniform over the action space; the baseline, needs no checkpoint)."""
    step: int = Field(0, ge=0)
    """Env step of the run folder's checkpoint to evaluate; 0 takes the newest."""
    workers: int = Field(0, ge=0)
    """Ray workers to run the episodes on (each loads the agent); 0 runs them in this process, without Ray.
    Every episode has its own seed (run.seed + its index), so the report is the same for any count."""
    video: bool = False
    """Write a video of the first episode into the run folder."""
    video_format: Literal["mp4", "gif"] = "mp4"
    """Container of the video."""
    video_fps: PositiveInt = 15
    """Frames per second of the video."""


def env_kwargs(config: Config) -> dict[str, Any]:
    """Keyword arguments of ``envs.make`` for the configured env (without the seed)."""
    env = config.env
    return {"env_id": env.id, "image_size": tuple(env.image_size), "action_repeat": env.action_repeat,
            "time_limit": env.time_limit, **env.options}


class AgentConfig(Section):
    """The agent and its sizes."""

    name: Literal["dreamer", "director", "planner"] = "dreamer"
    """Agent: 'dreamer' (world model, one actor-critic), 'director' (goal autoencoder, a manager choosing goals every
    K steps, a worker reaching them) or 'planner' (goals searched among replayed states, a learned distance)."""
    size: Literal["debug", "12M", "25M", "50M", "100M", "200M"] = "debug"
    """World-model size preset (world_models.SIZES)."""
    world_model: dict[str, Any] = {}
    """Overrides of world-model fields, e.g. {units: 128, lr: 3e-4} (see world_models.WorldModelConfig)."""
    actor_critic: dict[str, Any] = {}
    """Overrides of every actor-critic's fields (flat, manager, worker), e.g. {entropy: 1e-3} (ActorCriticConfig)."""
    manager: dict[str, Any] = {}
    """director: overrides of the manager's actor-critic, on top of actor_critic (its discount is per K steps);
    planner: of the task value's critic."""
    worker: dict[str, Any] = {}
    """director and planner: overrides of the worker's actor-critic, on top of actor_critic."""
    goal: dict[str, Any] = {}
    """director: overrides of the goal autoencoder, e.g. {groups: 8, classes: 8} (see agents.GoalConfig)."""
    hierarchy: dict[str, Any] = {}
    """director: overrides of agents.DirectorConfig (every, task_weight, explore_weight, reach_weight, ...)."""
    planner: dict[str, Any] = {}
    """planner: overrides of agents.PlannerConfig (every, landmarks, samples, iterations, explore_goals, ...)."""
    explore: dict[str, Any] = {}
    """dreamer: the disagreement bonus, e.g. {weight: 0.1} (agents.explore.ExploreConfig: weight, models, ...)."""
    horizon: int = Field(0, ge=0)
    """Imagination horizon in steps; 0 takes the agent's default (dreamer 15, director and planner 16)."""
    imagination_starts: int = Field(0, ge=0)
    """Replayed states to imagine from per update (random subset); 0 uses all, as DreamerV3 does."""


class TrainConfig(Section):
    """The training loop: budget, replay, train ratio, logging and checkpoints."""

    steps: PositiveInt = 20_000
    """Env steps to train for (counted across all env runners)."""
    train_ratio: float = Field(32.0, gt=0)
    """Replayed steps per env step, held throughout training."""
    batch_size: PositiveInt = 16
    """Sequences per training batch."""
    batch_length: PositiveInt = 64
    """Steps per sequence."""
    replay_capacity: PositiveInt = 100_000
    """Steps kept in replay (allocated up front; the memory is printed at start)."""
    recent_fraction: float = Field(0.0, ge=0, le=1)
    """Share of replayed sequences drawn from the newest data (see recent_window)."""
    recent_window: PositiveInt = 10_000
    """How many of the newest steps (in all) count as recent for recent_fraction."""
    reward_fraction: float = Field(0.0, ge=0, le=1)
    """Share of replayed sequences drawn to hold a step with a non-zero reward (anywhere in the sequence) while
    replay has any, for the reward head and critics; 0 samples uniformly (see replay/rewarded_windows)."""
    reward_starts: bool = True
    """False starts no imagination in the sequences reward_fraction drew: they then teach only the world model."""
    terminal_fraction: float = Field(0.0, ge=0, le=1)
    """Share of the sequences reward_fraction's draw left (all, at 0) drawn to hold an episode's termination."""
    prefill: int = Field(1000, ge=0)
    """Env steps of random actions before training starts."""
    rollout_length: PositiveInt = 64
    """Env steps each env runner collects per round."""
    log_every: PositiveInt = 1000
    """Env steps between metric records (metrics.jsonl and console)."""
    checkpoint_every: PositiveInt = 5000
    """Env steps between checkpoints."""
    eval_episodes: int = Field(5, ge=0)
    """Greedy episodes of each evaluation during training (see eval_every) and of the final one; 0: none."""
    report_every: int = Field(10000, ge=0)
    """Env steps between reports into report/step_<N>/ and W&B: the world model's open-loop video of image keys,
    hierarchical agents' decoded goals and the first greedy evaluation episode's video; 0 reports only at the end."""
    eval_every: int = Field(5000, ge=0)
    """Env steps between greedy evaluations during training (eval/return and eval/length, on env copies and
    seeds of their own); 0 evaluates only at the end. The last evaluation, at the end, is the final return."""
    sample_beside_learning: bool = True
    """Env runners collect the next fragment while the learner trains (train ratio held); False takes turns."""
    compile: bool = True
    """torch.compile the learner's update (README, Learner speed; 2 to 3 minutes on 2 cores until cached)."""
    precision: Literal["float32", "bfloat16"] = "float32"
    """bfloat16: the learner's matrix products under torch.autocast (weights, optimiser and losses float32); faster
    on GPUs and CPUs with AMX (1.1x to 1.2x)."""


class ScaleConfig(Section):
    """Where rollouts and learning run: the RLlib resources, the same on a laptop or a cluster."""

    address: str = ""
    """Ray cluster address; empty starts a local Ray."""
    ship_code: bool = True
    """With an address: upload forethought, agents, envs and world_models to the cluster through Ray's runtime
    environment, so that no node needs them installed (their dependencies must be: torch, ray[rllib], ...)."""
    num_env_runners: int = Field(1, ge=0)
    """Env runner processes (0 samples in the driver)."""
    num_envs_per_env_runner: PositiveInt = 1
    """Vectorised envs per env runner."""
    num_cpus_per_env_runner: float = Field(1.0, gt=0)
    """CPUs reserved per env runner."""
    num_gpus_per_env_runner: float = Field(0.0, ge=0)
    """GPU fraction per env runner (for acting with large models)."""
    env_runner_resources: dict[str, float] = {}
    """Custom Ray resources each env runner needs, e.g. {rollout_node: 1} to place them on the nodes started with
    `ray start --resources='{"rollout_node": 8}'`."""
    num_learners: int = Field(0, ge=0)
    """Learner processes; 0 learns in the driver process."""
    num_gpus_per_learner: float = Field(0.0, ge=0)
    """GPUs per learner (or for the driver's learner when num_learners is 0)."""
    num_cpus: int = Field(0, ge=0)
    """CPUs of a local Ray; 0 lets Ray count them."""
    learner_threads: Annotated[int, Field(ge=0)] | Literal["auto"] = 1
    """Torch threads of each learner process (the driver's, when num_learners is 0): a number, 0 for torch's
    default (one per core), or 'auto': the learner times its updates and, after 5, 25, 50, 100 and then every
    200 updates, tries half and double its count (within the cores it may use), keeping the fastest. Several
    threads wait for each other at every operation: they pay on an idle machine and slow down many times over
    as soon as another busy process shares the cores, which 'auto' follows. A thread count changes the
    rounding of sums, so 'auto' runs are not bit-reproducible; a fixed count is (forethought/threads.py)."""
    env_runner_threads: int = Field(1, ge=0)
    """Torch threads of each env runner process; 0 keeps torch's default."""


class RunConfig(Section):
    """Where a run lives and how it is seeded."""

    dir: str = ""
    """Run folder; empty picks runs/<env>-seed<seed>. The folder is the run: config, reports, videos. Environment
    variables in it are expanded (runs/sweep/$WANDB_RUN_ID)."""
    seed: int = Field(0, ge=0)
    """Seed of the env, the policy and everything random in the run."""
    seeds: list[Annotated[int, Field(ge=0)]] = []
    """Seeds to run as parallel trials, e.g. [0, 1, 2]: one run folder each (run.dir/seed<S>, run.dir defaulting
    to runs/<env>-seeds), as many at once as the CPUs hold, W&B group run.group (default: run.dir's name), and a
    table of the final greedy returns (mean, std, every seed). Empty: the one run of run.seed."""
    wandb: Literal["offline", "online", "disabled"] = "offline"
    """Weights & Biases mode: offline (default, no account needed; `wandb sync` uploads later), online (needs a
    W&B API key: `wandb login` or WANDB_API_KEY), or disabled."""
    project: str = "forethought"
    """W&B project name."""
    group: str = ""
    """W&B group of the run (e.g. one per sweep or per comparison); empty: none."""
    tags: list[str] = []
    """W&B tags of the run, e.g. [keydoor, baseline]."""
    name: str = ""
    """W&B run name; empty: the run folder's name."""
    notes: str = ""
    """W&B notes of the run (a sentence on what it tests)."""
    wandb_artifacts: bool = False
    """Log every checkpoint's agent weights (not the replay) as a W&B model artifact."""


class Config(Section):
    """The whole configuration of a Forethought run."""

    env: EnvConfig = EnvConfig()
    """The environment."""
    agent: AgentConfig = AgentConfig()
    """The agent."""
    train: TrainConfig = TrainConfig()
    """Training."""
    scale: ScaleConfig = ScaleConfig()
    """Resources for rollouts and learning."""
    eval: EvalConfig = EvalConfig()
    """Evaluation."""
    run: RunConfig = RunConfig()
    """The run folder and seed."""


# --- presets and overrides ---------------------------------------------------------------


def available_presets() -> list[str]:
    """Names of the YAML presets shipped in configs/."""
    return sorted(path.stem for path in PRESET_DIR.glob("*.yaml"))


def read_preset(name: str) -> dict[str, Any]:
    """A preset's contents, by name in configs/ or by path to a YAML file."""
    path = Path(name)
    if not (path.suffix in (".yaml", ".yml") and path.is_file()):
        path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown preset '{name}'; available presets: {', '.join(available_presets())}, "
                          "or a path to a .yaml file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"preset '{name}' is not valid YAML: {error}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"preset '{name}' must hold a mapping of config sections, got {type(data).__name__}")
    return data


def resolve_preset(name: str, _chain: tuple[str, ...] = ()) -> dict[str, Any]:
    """A preset with the presets it names under ``extends`` (a list, stacked left to right) merged in first."""
    if name in _chain:
        raise ConfigError(f"presets extend each other in a loop: {' -> '.join([*_chain, name])}")
    data = read_preset(name)
    bases = data.pop("extends", [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(base, str) for base in bases):
        raise ConfigError(f"'extends' in preset '{name}' must be a preset name or a list of them, got {bases!r}")
    merged: dict[str, Any] = {}
    for base in bases:
        merged = merge(merged, resolve_preset(base, (*_chain, name)))
    return merge(merged, data)


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``update`` into a copy of ``base``; mappings merge, everything else replaces."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")
_OVERRIDE = re.compile(r"^([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*)=(.*)$", re.DOTALL)


def numbers(value: Any) -> Any:
    """``value`` read from YAML with the strings that YAML 1.1 leaves for floats without a dot (3e-4) made floats."""
    if isinstance(value, str) and _FLOAT.match(value.strip()):
        return float(value)  # YAML 1.1 reads 3e-4 (no dot) as a string; a user means the number
    if isinstance(value, dict):
        return {key: numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [numbers(item) for item in value]
    return value


def split_override(text: str) -> tuple[str, Any]:
    """Turn 'a.b.c=value' into ('a.b.c', value), the value read as YAML."""
    match = _OVERRIDE.match(text)
    if not match:
        raise ConfigError(f"override '{text}' is not of the form section.field=value (e.g. eval.episodes=5)")
    path, raw = match.groups()
    try:
        value = numbers(yaml.safe_load(raw)) if raw.strip() else ""
    except yaml.YAMLError as error:
        raise ConfigError(f"override '{text}' has a value that is not valid YAML: {error}") from error
    return path, value


def parse_override(text: str) -> dict[str, Any]:
    """Turn 'a.b.c=value' into {'a': {'b': {'c': value}}}, the value read as YAML."""
    path, value = split_override(text)
    nested: dict[str, Any] = {}
    for i, key in enumerate(reversed(path.split("."))):
        nested = {key: value if i == 0 else nested}
    return nested


def _check_keys(model: type[BaseModel], data: dict[str, Any], prefix: str = "") -> None:
    """Refuse unknown keys with the list of valid ones, before pydantic's own checks."""
    for key, value in data.items():
        name = f"{prefix}{key}"
        if key not in model.model_fields:
            where = f"in '{prefix[:-1]}'" if prefix else "at the top level"
            raise ConfigError(f"unknown config key '{name}'; valid keys {where}: {', '.join(model.model_fields)}")
        annotation = model.model_fields[key].annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{name}' is a section; give its fields, e.g. {name}.<field>=value")
            _check_keys(annotation, value, f"{name}.")


def validate(data: dict[str, Any]) -> Config:
    """Build a Config from plain data, or raise ConfigError naming the field, value and what is accepted."""
    _check_keys(Config, data)
    try:
        return Config.model_validate(data)
    except ValidationError as error:
        errors = error.errors()
        first = errors[0]
        names, value = [], data  # the field's path: the location's keys that the data has
        for part in first["loc"]:
            if not (isinstance(part, str) and isinstance(value, dict) and part in value):
                break
            names.append(part)
            value = value[part]
        items = [part for part in first["loc"][len(names) :] if isinstance(part, int)]
        if items and first["type"] == "missing":
            reason = f"too few items (item {items[0]} is missing)"
        else:  # a field of several types gets one error per type: "..., or 'auto'"
            messages = list(dict.fromkeys(e["msg"] for e in errors if list(e["loc"][: len(names)]) == names))
            reason = messages[0] + "".join(", or " + m.removeprefix("Input should be ") for m in messages[1:])
            reason += f" (item {items[0]})" if items else ""
        raise ConfigError(f"bad value {value!r} for config field '{'.'.join(names)}': {reason}") from None


def load_config(presets: Sequence[str] = (), overrides: Sequence[str] = ()) -> Config:
    """Stack presets left to right, apply dotted overrides, validate and derive the run folder."""
    data: dict[str, Any] = {}
    for name in presets:
        data = merge(data, resolve_preset(name))
    for text in overrides:
        data = merge(data, parse_override(text))
    config = validate(data)
    if "$" in config.run.dir:  # e.g. $WANDB_RUN_ID, set by `wandb agent` (which runs the command without a shell)
        config = config.model_copy(update={"run": config.run.model_copy(update={"dir": os.path.expandvars(
            config.run.dir)})})
    if not config.run.dir:
        slug = re.sub(r"[^\w.-]+", "-", config.env.id).strip("-")
        suffix = "-seeds" if config.run.seeds else f"-seed{config.run.seed}"
        run = config.run.model_copy(update={"dir": f"runs/{slug}{suffix}"})
        config = config.model_copy(update={"run": run})
    return config


def save_config(config: Config, path: Path) -> None:
    """Write the resolved config as YAML, so that a run folder says exactly what ran."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))


def describe_fields(model: type[BaseModel] = Config, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted name, default, docstring) of every leaf field, for --help."""
    rows = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rows += describe_fields(annotation, f"{prefix}{name}.")
        else:
            rows.append((f"{prefix}{name}", repr(field.default), field.description or ""))
    return rows

