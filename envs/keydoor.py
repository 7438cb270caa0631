"""Key, door, goal: a two-room grid whose task splits into three sub-goals.

The agent starts in the left room with a key somewhere in it. The rooms are joined by a locked
door at a random height in the dividing wall; walking into the door while carrying the key opens
it. Reaching the goal in the right room gives +1 and ends the episode. Optional small rewards for
picking up the key and opening the door make a shaped variant; by default the reward is sparse.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.grid import AGENT, WALL, WHITE, GridTask, tint

KEY = (230, 180, 0)
DOOR_LOCKED = (130, 70, 20)
GOAL = (20, 170, 40)


class KeyDoor(GridTask):
    """Key, door and goal in a ``size`` x ``size`` grid; ``obs_type`` 'image' or 'vector'.

    The vector holds one-hot columns and rows (``size`` entries each) of the agent, the key (all
    zero once carried) and the goal, the door's row one-hot, and two flags (key carried, door
    open): 7 x size + 2 numbers. One-hot positions make a one-cell move change two entries by 1,
    which world models pick up far sooner than a coordinate that moves by 1/(size - 1).
    """

    cell_px = 8

    def __init__(
        self,
        size: int = 8,
        obs_type: str = "image",
        key_reward: float = 0.0,
        door_reward: float = 0.0,
        render_mode: str | None = None,
    ):
        if not isinstance(size, int) or not 6 <= size <= 16:
            raise ValueError(f"size must be an integer from 6 to 16, got {size!r}")
        self.size = size
        self.key_reward = float(key_reward)
        self.door_reward = float(door_reward)
        self.wall_x = size // 2 - 1
        super().__init__(obs_type, 7 * size + 2, render_mode)
        self.pos = self.key = self.goal = (1, 1)
        self.door_y = 1
        self.has_key = self.door_open = False

    def _cells_shape(self) -> tuple[int, int]:
        return self.size, self.size

    def _room_cells(self, x0: int, x1: int) -> list[tuple[int, int]]:
        return [(x, y) for x in range(x0, x1 + 1) for y in range(1, self.size - 1)]

    def _new_episode(self) -> None:
        rng = self.np_random
        left = self._room_cells(1, self.wall_x - 1)
        right = self._room_cells(self.wall_x + 1, self.size - 2)
        agent, key = rng.choice(len(left), size=2, replace=False)
        self.pos, self.key = left[int(agent)], left[int(key)]
        self.goal = right[int(rng.integers(len(right)))]
        self.door_y = int(rng.integers(1, self.size - 1))
        self.has_key = self.door_open = False

    def _blocked(self, cell: tuple[int, int]) -> bool:
        x, y = cell
        if x <= 0 or y <= 0 or x >= self.size - 1 or y >= self.size - 1:
            return True
        if x == self.wall_x:
            return not (y == self.door_y and (self.door_open or self.has_key))
        return False

    def _transition(self, action: int) -> tuple[float, bool]:
        reward = 0.0
        target = self._move(self.pos, action)
        if self._blocked(target):
            return reward, False
        self.pos = target
        if not self.has_key and self.pos == self.key:
            self.has_key = True
            reward += self.key_reward
        if not self.door_open and self.pos == (self.wall_x, self.door_y):
            self.door_open = True
            reward += self.door_reward
        if self.pos == self.goal:
            return reward + 1.0, True
        return reward, False

    def _cells(self) -> np.ndarray:
        cells = np.empty((self.size, self.size, 3), np.uint8)
        cells[:] = WHITE
        cells[0, :] = cells[-1, :] = cells[:, 0] = cells[:, -1] = WALL
        cells[:, self.wall_x] = WALL
        cells[self.door_y, self.wall_x] = tint(DOOR_LOCKED, 0.25) if self.door_open else DOOR_LOCKED
        cells[self.goal[1], self.goal[0]] = GOAL
        if not self.has_key:
            cells[self.key[1], self.key[0]] = KEY
        cells[self.pos[1], self.pos[0]] = AGENT
        if self.has_key:  # the carried key shows as a mark in the top wall
            cells[0, 1] = KEY
        return cells

    def _vector(self) -> np.ndarray:
        n = self.size
        parts = np.zeros((7, n), np.float32)  # one-hot columns and rows: agent, key, goal; the door's row
        parts[0, self.pos[0]] = parts[1, self.pos[1]] = 1.0
        if not self.has_key:  # a carried key has no place on the grid
            parts[2, self.key[0]] = parts[3, self.key[1]] = 1.0
        parts[4, self.goal[0]] = parts[5, self.goal[1]] = 1.0
        parts[6, self.door_y] = 1.0
        return np.concatenate([parts.ravel(), [float(self.has_key), float(self.door_open)]]).astype(np.float32)

    def _info(self) -> dict[str, Any]:
        return {"has_key": self.has_key, "door_open": self.door_open}
