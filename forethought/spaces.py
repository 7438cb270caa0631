"""From gymnasium spaces (as ``envs`` presents them) to what agents and replay take."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from agents.actions import ActionSpec


def action_spec(space: gym.Space) -> ActionSpec:
    """The agent's view of an ``envs`` action space: Discrete, MultiDiscrete or Box in [-1, 1]."""
    if isinstance(space, gym.spaces.Discrete):
        return ActionSpec.discrete(int(space.n))
    if isinstance(space, gym.spaces.MultiDiscrete):
        return ActionSpec.multi_discrete(tuple(int(n) for n in space.nvec.ravel()))
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        return ActionSpec.continuous(int(space.shape[0]))
    raise ValueError(f"action space {space} is not one that envs.make produces (Discrete, MultiDiscrete, 1-d Box)")


def obs_shapes(space: gym.Space) -> dict[str, tuple[int, ...]]:
    """Key -> shape of an ``envs`` dict observation space."""
    if not isinstance(space, gym.spaces.Dict):
        raise ValueError(f"observation space {space} is not the dict space that envs.make produces")
    return {key: tuple(sub.shape or ()) for key, sub in space.spaces.items()}


def replay_spec(obs_space: gym.Space, spec: ActionSpec) -> dict[str, tuple[tuple[int, ...], Any]]:
    """What each replayed step holds: observation keys (images stay uint8), action vector, reward, flags."""
    out: dict[str, tuple[tuple[int, ...], Any]] = {
        key: (tuple(sub.shape), sub.dtype) for key, sub in obs_space.spaces.items()  # type: ignore[attr-defined]
    }
    out.update({"action": ((spec.dim,), np.float32), "reward": ((), np.float32), "is_first": ((), bool),
                "is_terminal": ((), bool)})
    return out

