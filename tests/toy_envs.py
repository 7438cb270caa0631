"""Small gymnasium envs for the wrapper and ``envs.make`` tests (importable as ``tests.toy_envs:SpaceEnv``)."""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

FRAME_SHAPE = (8, 8, 3)


class SpaceEnv(gym.Env):
    """An env with any observation and action space, a reward equal to the step count, and a fixed length.

    The reward of the k-th step of an episode is k (1, 2, 3, ...), so the return of a full episode
    is ``L * (L + 1) / 2``. Observations are samples of the observation space drawn from
    ``self.np_random``, so a seeded reset fixes the whole episode. ``actions`` keeps every action
    the env received since its construction, for checks of action adaptation.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        obs_space: gym.Space | None = None,
        action_space: gym.Space | None = None,
        episode_length: int = 5,
        render_mode: str | None = None,
    ):
        if episode_length < 1:
            raise ValueError(f"episode_length must be at least 1, got {episode_length}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        # a copy, so that two envs given the same space object do not share its random state
        default_obs = spaces.Box(-1.0, 1.0, (4,), np.float32)
        self.observation_space = copy.deepcopy(obs_space) if obs_space is not None else default_obs
        self.action_space = copy.deepcopy(action_space) if action_space is not None else spaces.Discrete(3)
        self.episode_length = episode_length
        self.render_mode = render_mode
        self.t = 0
        self.actions: list[Any] = []

    @property
    def last_action(self) -> Any:
        """The action of the latest step, as the env received it."""
        return self.actions[-1] if self.actions else None

    def _observe(self) -> Any:
        # the space's own generator is reseeded from the env's, so seeding the env fixes every sample
        self.observation_space.seed(int(self.np_random.integers(2**31)))
        return self.observation_space.sample()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.t = 0
        return self._observe(), {}

    def step(self, action: Any):
        self.actions.append(action)
        self.t += 1
        terminated = self.t >= self.episode_length
        return self._observe(), float(self.t), terminated, False, {"t": self.t}

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        return np.full(FRAME_SHAPE, self.t % 256, np.uint8)


class NotAnEnv:
    """A class with an env's methods that does not derive from gymnasium.Env."""

    def reset(self, seed: int | None = None):
        return np.zeros(3, np.float32), {}

    def step(self, action: Any):
        return np.zeros(3, np.float32), 0.0, True, False, {}
