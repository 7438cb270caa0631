"""Policies, planners and their losses, trained inside world models: pure torch, no Ray, W&B or envs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agents.actions import ActionSpec


def build_agent(obs_space: Mapping[str, Sequence[int]], spec: ActionSpec, config: Any) -> Any:
    """The agent a config describes: ``DreamerConfig`` -> ``DreamerAgent``, ``DirectorConfig`` -> ``DirectorAgent``,
    ``PlannerConfig`` -> ``PlannerAgent``."""
    from agents.director import DirectorAgent, DirectorConfig
    from agents.dreamer import DreamerAgent, DreamerConfig
    from agents.planner import PlannerAgent, PlannerConfig

    if isinstance(config, DirectorConfig):
        return DirectorAgent(obs_space, spec, config)
    if isinstance(config, DreamerConfig):
        return DreamerAgent(obs_space, spec, config)
    if isinstance(config, PlannerConfig):
        return PlannerAgent(obs_space, spec, config)
    raise TypeError(f"agent config must be a DreamerConfig, DirectorConfig or PlannerConfig, got "
                    f"{type(config).__name__}")
