"""Agents from configs and from checkpoints: what training builds and what evaluation loads, without Ray.

A checkpoint's agent weights are RLlib's module state (``run_folder.MODULE_STATE``, a dict of numpy
arrays). ``load_agent`` (called by ``forethought eval`` and ``benchmarks/director_probe.py``) reads only that
file, with an unpickler that accepts nothing but arrays, so a foreign or corrupt file is refused with one
sentence instead of running code or a traceback. Training's resume restores the whole algorithm instead
(optimisers, replay, counters) from the same checkpoint folders, found by ``run_folder``.
"""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from forethought.config import Config, ConfigError
from forethought.run_folder import MODULE_STATE, CheckpointError


def _check_override_types(agent: Any) -> None:
    """Refuse an agent override whose value is not of its field's type (a number given as text, say)."""
    from agents.actor_critic import ActorCriticConfig
    from agents.director import DirectorConfig
    from agents.explore import ExploreConfig
    from agents.goals import GoalConfig
    from agents.planner import PlannerConfig
    from world_models.config import WorldModelConfig

    flat_fields = {section: {f.name: f for f in dataclasses.fields(kind) if not dataclasses.is_dataclass(f.default)
                             and f.default_factory is dataclasses.MISSING}
                   for section, kind in (("hierarchy", DirectorConfig), ("planner", PlannerConfig))}
    sections: dict[str, Any] = {"world_model": WorldModelConfig(), "actor_critic": ActorCriticConfig(),
                                "manager": ActorCriticConfig(), "worker": ActorCriticConfig(), "goal": GoalConfig(),
                                "explore": ExploreConfig()}
    for section, overrides in (("world_model", agent.world_model), ("actor_critic", agent.actor_critic),
                               ("manager", agent.manager), ("worker", agent.worker), ("goal", agent.goal),
                               ("explore", agent.explore),
                               ("hierarchy", agent.hierarchy), ("planner", agent.planner)):
        names = list(flat_fields[section]) if section in flat_fields else [
            f.name for f in dataclasses.fields(sections[section])]
        for key, value in overrides.items():
            if key not in names:
                raise ConfigError(f"unknown config key 'agent.{section}.{key}'; valid keys in 'agent.{section}': "
                                  f"{', '.join(names)}")
            if section in flat_fields:
                default = flat_fields[section][key].default
            else:
                default = getattr(sections[section], key)
            if default is None:
                continue
            kind = type(default)
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if kind in (int, float):
                fits = number and (kind is float or isinstance(value, int))
            else:
                fits = isinstance(value, kind)
            if fits:
                continue
            article = "an" if kind.__name__[0] in "aeiou" else "a"
            raise ConfigError(f"bad value {value!r} for config field 'agent.{section}.{key}': expected {article} "
                              f"{kind.__name__}, like its default {default!r}")


def agent_config(config: Config) -> Any:
    """The agent's config (DreamerConfig, DirectorConfig or PlannerConfig) from the ``agent`` section."""
    from agents.director import DirectorConfig
    from agents.dreamer import DreamerConfig
    from agents.explore import ExploreConfig
    from agents.goals import GoalConfig
    from agents.planner import PlannerConfig
    from world_models.config import sized

    agent = config.agent
    _check_override_types(agent)
    applies = {"manager": ("director", "planner"), "worker": ("director", "planner"), "goal": ("director",),
               "hierarchy": ("director",), "planner": ("planner",), "explore": ("dreamer",)}
    for key, names in applies.items():
        if getattr(agent, key) and agent.name not in names:
            raise ConfigError(f"agent.{key} applies to agent.name={' or '.join(names)} only; agent.name is "
                              f"{agent.name}")
    try:
        world_model = sized(agent.size, **agent.world_model)
        if agent.name == "dreamer":
            flat = DreamerConfig()
            return DreamerConfig(world_model, dataclasses.replace(flat.actor_critic, **agent.actor_critic),
                                 agent.horizon or flat.horizon, agent.imagination_starts,
                                 ExploreConfig(**agent.explore))
        if agent.name == "planner":
            plan = PlannerConfig()
            return PlannerConfig(
                world_model=world_model,
                worker=dataclasses.replace(plan.worker, **{**agent.actor_critic, **agent.worker}),
                value=dataclasses.replace(plan.value, **{**agent.actor_critic, **agent.manager}),
                horizon=agent.horizon or plan.horizon, imagination_starts=agent.imagination_starts, **agent.planner)
        base = DirectorConfig()
        return DirectorConfig(
            world_model=world_model,
            manager=dataclasses.replace(base.manager, **{**agent.actor_critic, **agent.manager}),
            worker=dataclasses.replace(base.worker, **{**agent.actor_critic, **agent.worker}),
            goal=GoalConfig(**agent.goal), horizon=agent.horizon or base.horizon,
            imagination_starts=agent.imagination_starts, **agent.hierarchy)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"bad agent override: {error}") from None


class _ArraysOnly(pickle.Unpickler):
    """Unpickles dicts of numpy arrays and nothing else."""

    ALLOWED = {("collections", "OrderedDict"), ("numpy", "ndarray"), ("numpy", "dtype"),
               ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
               ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED or (module == "numpy" and name.endswith("DType")) \
                or module.startswith("numpy.dtypes"):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it holds a {module}.{name}, not only arrays")


def read_weights(checkpoint: Path) -> dict[str, Any]:
    """The agent's weights (numpy arrays by parameter name) in a checkpoint."""
    path = checkpoint / MODULE_STATE
    if not path.exists():
        raise CheckpointError(f"'{checkpoint}' holds no {MODULE_STATE}: not a forethought checkpoint")
    try:
        with path.open("rb") as file:
            state = _ArraysOnly(file).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as error:
        raise CheckpointError(f"'{path}' is not a forethought checkpoint's weights ({error})") from None
    if not isinstance(state, Mapping) or not any(str(k).startswith("agent.") for k in state):
        raise CheckpointError(f"'{path}' holds no agent weights (no 'agent.*' entries)")
    return {str(k).removeprefix("agent."): v for k, v in state.items() if str(k).startswith("agent.")}


def build_agent_for(config: Config, observation_space: Any, action_space: Any) -> Any:
    """A fresh agent of the configured kind for these gymnasium spaces."""
    from agents import build_agent
    from forethought.spaces import action_spec, obs_shapes

    return build_agent(obs_shapes(observation_space), action_spec(action_space), agent_config(config))


def load_agent(checkpoint: Path | Mapping[str, Any], config: Config, observation_space: Any, action_space: Any) -> Any:
    """The agent of ``config`` for these spaces with the weights of ``checkpoint`` (a checkpoint folder, or the
    weights ``read_weights`` gave), in eval mode on the CPU."""
    import torch

    agent = build_agent_for(config, observation_space, action_space)
    weights = read_weights(checkpoint) if isinstance(checkpoint, Path) else checkpoint
    try:
        agent.load_state_dict({k: torch.as_tensor(v) for k, v in weights.items()})
    except RuntimeError as error:
        first = str(error).splitlines()[1].strip() if "\n" in str(error) else str(error)
        raise CheckpointError(f"the weights in '{checkpoint if isinstance(checkpoint, Path) else 'the checkpoint'}' "
                              f"do not fit a {config.agent.name} agent for env '{config.env.id}' ({first})") from None
    return agent.eval()
