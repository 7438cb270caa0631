"""Shared machinery of the built-in grid tasks: moves, seeding, observations and rendering."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

#: (dx, dy) per action, with y growing downwards: noop, up, down, left, right.
MOVES = np.array([(0, 0), (0, -1), (0, 1), (-1, 0), (1, 0)], dtype=np.int64)
ACTION_NAMES = ("noop", "up", "down", "left", "right")

WHITE = (255, 255, 255)
WALL = (160, 160, 160)
AGENT = (0, 0, 0)


def upscale(cells: np.ndarray, cell_px: int) -> np.ndarray:
    """Turn an (H, W, 3) grid of cell colours into an image of cell_px x cell_px pixels per cell."""
    return np.repeat(np.repeat(cells, cell_px, axis=0), cell_px, axis=1)


def tint(colour: tuple[int, int, int], amount: float) -> np.ndarray:
    """Mix a colour with white: amount 1 keeps the colour, 0 gives white."""
    return (amount * np.asarray(colour) + (1 - amount) * np.asarray(WHITE)).astype(np.uint8)


class GridTask(gym.Env):
    """A grid world with five moves whose observation is its picture or a small float vector.

    Subclasses describe the task through ``_new_episode``, ``_transition``, ``_cells`` and
    ``_vector``; this class owns the spaces, seeding, action checks and rendering.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    #: pixels per cell in the rendered image
    cell_px: int = 4

    def __init__(self, obs_type: str, vector_size: int, render_mode: str | None = None):
        if obs_type not in ("image", "vector"):
            raise ValueError(f"obs_type must be 'image' or 'vector', got {obs_type!r}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.obs_type = obs_type
        self.render_mode = render_mode
        self.action_space = gym.spaces.Discrete(len(MOVES))
        if obs_type == "image":
            height, width = self._cells_shape()
            shape = (height * self.cell_px, width * self.cell_px, 3)
            self.observation_space = gym.spaces.Box(0, 255, shape, np.uint8)
        else:
            self.observation_space = gym.spaces.Box(-1.0, 1.0, (vector_size,), np.float32)

    # --- what a task defines -------------------------------------------------------------
    def _cells_shape(self) -> tuple[int, int]:
        """Rows and columns of the rendered cell grid."""
        raise NotImplementedError

    def _new_episode(self) -> None:
        """Place everything for a new episode, drawing from ``self.np_random``."""
        raise NotImplementedError

    def _transition(self, action: int) -> tuple[float, bool]:
        """Apply one action; return the reward and whether the episode terminated."""
        raise NotImplementedError

    def _cells(self) -> np.ndarray:
        """The current picture as an (H, W, 3) uint8 grid of cell colours."""
        raise NotImplementedError

    def _vector(self) -> np.ndarray:
        """The current state as a float32 vector in [-1, 1]."""
        raise NotImplementedError

    def _info(self) -> dict[str, Any]:
        return {}

    # --- gymnasium API -------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._new_episode()
        return self._observation(), self._info()

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action must be an integer in [0, {len(MOVES)}), got {action!r}")
        reward, terminated = self._transition(int(action))
        return self._observation(), float(reward), terminated, False, self._info()

    def render(self):
        if self.render_mode == "rgb_array":
            return self._image()
        return None

    def _image(self) -> np.ndarray:
        return upscale(self._cells(), self.cell_px)

    def _observation(self) -> np.ndarray:
        return self._image() if self.obs_type == "image" else self._vector()

    @staticmethod
    def _move(pos: tuple[int, int], action: int) -> tuple[int, int]:
        dx, dy = MOVES[action]
        return int(pos[0] + dx), int(pos[1] + dy)
