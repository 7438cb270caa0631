"""Optional suites, imported only when one of their ids is made: MiniGrid and Crafter."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import gymnasium as gym
import numpy as np

from envs.errors import MissingSuiteError

#: suite name -> (python module, pip extra, id prefixes)
SUITES = {
    "minigrid": ("minigrid", "minigrid", ("MiniGrid-", "BabyAI-")),
    "crafter": ("crafter", "crafter", ("Crafter",)),
}
CRAFTER_IDS = ("CrafterReward-v1", "CrafterNoReward-v1")


def suite_of(env_id: str) -> str | None:
    """The optional suite an id belongs to, by its prefix, or None."""
    for name, (_, _, prefixes) in SUITES.items():
        if env_id.startswith(prefixes):
            return name
    return None


def import_suite(name: str) -> ModuleType:
    """Import a suite's package or say which pip extra brings it."""
    module, extra, _ = SUITES[name]
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingSuiteError(
            f"{name} environments need the '{module}' package, which is not installed; "
            f"install it with: pip install 'forethought[{extra}]'"
        ) from error


def make_minigrid(env_id: str, render_mode: str | None, max_episode_steps: int | None, **options: Any) -> gym.Env:
    """A MiniGrid env whose observation is the agent's partial view as pixels plus its direction."""
    import_suite("minigrid")
    from minigrid.wrappers import RGBImgPartialObsWrapper

    tile_size = int(options.pop("tile_size", 8))
    env = gym.make(env_id, render_mode=render_mode, max_episode_steps=max_episode_steps, **options)
    return RGBImgPartialObsWrapper(env, tile_size=tile_size)


class CrafterEnv(gym.Env):
    """Crafter (Hafner 2021) behind the gymnasium API; death terminates, the length limit truncates."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, reward: bool = True, size: int = 64, length: int = 10000, render_mode: str | None = None):
        self._crafter = import_suite("crafter")
        self._kwargs = {"area": (64, 64), "view": (9, 9), "size": (size, size), "reward": reward, "length": length}
        self._env = self._crafter.Env(**self._kwargs)
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(0, 255, (size, size, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(self._env.action_space.n)
        self._last: np.ndarray | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None:  # crafter seeds its worlds only at construction
            self._env = self._crafter.Env(**self._kwargs, seed=seed)
        self._last = self._env.reset()
        return self._last, {}

    def step(self, action):
        obs, reward, done, info = self._env.step(int(action))
        self._last = obs
        terminated = bool(done and info.get("discount", 1.0) == 0.0)
        return obs, float(reward), terminated, bool(done and not terminated), info

    def render(self):
        return self._last if self.render_mode == "rgb_array" else None
