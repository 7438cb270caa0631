"""Key chain: rooms in a row, each door locked by the key of the room before it; the goal is in the last room.

A long-horizon task where splitting pays: the agent starts in the first room; room i holds key i, which
opens door i, the only way into room i + 1. Walking onto a key picks it up; walking into a locked door with
its key opens it for good. Reaching the goal in the last room gives +1 and ends the episode. A random
policy almost never gets through several rooms (README, Environments), while each sub-goal (the next key,
the next door) is a short walk: what a hierarchy's sub-goals are for. Optional small rewards for keys and
doors make a shaped variant.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.grid import AGENT, WALL, WHITE, GridTask, tint
from envs.keydoor import DOOR_LOCKED, GOAL

#: one colour per key and its door
KEY_COLOURS = ((230, 180, 0), (200, 30, 200), (0, 190, 200), (240, 120, 20))
MIN_ROOMS, MAX_ROOMS = 2, len(KEY_COLOURS) + 1
#: the cell grid of the picture is padded to this many cells a side (2 pixels each: 64 x 64 images)
PICTURE_CELLS = 32


class KeyChain(GridTask):
    """``rooms`` rooms of ``room_width`` x ``room_height`` cells in a row; ``obs_type`` 'vector' or 'image'.

    The vector holds one-hot columns and rows (``width`` and ``height`` entries) of the agent, of each key
    (all zero once carried) and of the goal, each door's row one-hot, then a flag per key (carried) and per
    door (open).
    """

    cell_px = 2

    def __init__(self, rooms: int = 3, room_width: int = 4, room_height: int = 5, obs_type: str = "vector",
                 key_reward: float = 0.0, door_reward: float = 0.0, render_mode: str | None = None):
        if not isinstance(rooms, int) or not MIN_ROOMS <= rooms <= MAX_ROOMS:
            raise ValueError(f"rooms must be an integer from {MIN_ROOMS} to {MAX_ROOMS}, got {rooms!r}")
        for name, value in (("room_width", room_width), ("room_height", room_height)):
            if not isinstance(value, int) or not 2 <= value <= 6:
                raise ValueError(f"{name} must be an integer from 2 to 6, got {value!r}")
        self.rooms, self.room_width, self.room_height = rooms, room_width, room_height
        self.width, self.height = rooms * (room_width + 1) + 1, room_height + 2
        self.key_reward, self.door_reward = float(key_reward), float(door_reward)
        self.doors = rooms - 1
        #: the column of each dividing wall (door i is in wall i, between room i and room i + 1)
        self.wall_x = [(i + 1) * (room_width + 1) for i in range(self.doors)]
        size = (self.width + self.height) * (self.doors + 2) + self.height * self.doors + 2 * self.doors
        super().__init__(obs_type, size, render_mode)
        self.pos = self.goal = (1, 1)
        self.keys: list[tuple[int, int]] = []
        self.door_y: list[int] = []
        self.carried: list[bool] = []
        self.open: list[bool] = []

    def _cells_shape(self) -> tuple[int, int]:
        return PICTURE_CELLS, PICTURE_CELLS

    def _room(self, index: int) -> list[tuple[int, int]]:
        x0 = index * (self.room_width + 1) + 1
        return [(x, y) for x in range(x0, x0 + self.room_width) for y in range(1, self.height - 1)]

    def _new_episode(self) -> None:
        rng = self.np_random
        first = self._room(0)
        agent = int(rng.integers(len(first)))
        self.pos = first[agent]
        self.keys = []
        for i in range(self.doors):
            cells = [c for c in self._room(i) if c != self.pos]
            self.keys.append(cells[int(rng.integers(len(cells)))])
        last = self._room(self.rooms - 1)
        self.goal = last[int(rng.integers(len(last)))]
        self.door_y = [int(rng.integers(1, self.height - 1)) for _ in range(self.doors)]
        self.carried = [False] * self.doors
        self.open = [False] * self.doors

    def _door_at(self, cell: tuple[int, int]) -> int | None:
        """The index of the door in ``cell``, or None."""
        x, y = cell
        for i, wall in enumerate(self.wall_x):
            if x == wall and y == self.door_y[i]:
                return i
        return None

    def _blocked(self, cell: tuple[int, int]) -> bool:
        x, y = cell
        if x <= 0 or y <= 0 or x >= self.width - 1 or y >= self.height - 1:
            return True
        if x in self.wall_x:
            door = self._door_at(cell)
            return door is None or not (self.open[door] or self.carried[door])
        return False

    def _transition(self, action: int) -> tuple[float, bool]:
        target = self._move(self.pos, action)
        if self._blocked(target):
            return 0.0, False
        self.pos = target
        reward = 0.0
        for i, key in enumerate(self.keys):
            if not self.carried[i] and self.pos == key:
                self.carried[i] = True
                reward += self.key_reward
        door = self._door_at(self.pos)
        if door is not None and not self.open[door]:
            self.open[door] = True
            reward += self.door_reward
        if self.pos == self.goal:
            return reward + 1.0, True
        return reward, False

    def _cells(self) -> np.ndarray:
        cells = np.empty((PICTURE_CELLS, PICTURE_CELLS, 3), np.uint8)
        cells[:] = WALL
        grid = cells[: self.height, : self.width]
        grid[1:-1, 1:-1] = WHITE
        for i, wall in enumerate(self.wall_x):
            grid[:, wall] = WALL
            grid[self.door_y[i], wall] = tint(DOOR_LOCKED, 0.25) if self.open[i] else tint(KEY_COLOURS[i], 0.6)
            if self.carried[i]:  # carried keys show as marks below the grid
                cells[self.height + 1, 2 * i + 1] = KEY_COLOURS[i]
            else:
                grid[self.keys[i][1], self.keys[i][0]] = KEY_COLOURS[i]
        grid[self.goal[1], self.goal[0]] = GOAL
        grid[self.pos[1], self.pos[0]] = AGENT
        return cells

    def _vector(self) -> np.ndarray:
        def place(cell: tuple[int, int] | None) -> np.ndarray:
            out = np.zeros(self.width + self.height, np.float32)
            if cell is not None:
                out[cell[0]] = out[self.width + cell[1]] = 1.0
            return out

        rows = np.zeros((self.doors, self.height), np.float32)
        rows[np.arange(self.doors), self.door_y] = 1.0
        parts = [place(self.pos), *(place(None if c else k) for k, c in zip(self.keys, self.carried, strict=True)),
                 place(self.goal), rows.ravel(), np.asarray(self.carried, np.float32),
                 np.asarray(self.open, np.float32)]
        return np.concatenate(parts).astype(np.float32)

    def _info(self) -> dict[str, Any]:
        return {"keys": sum(self.carried), "doors": sum(self.open)}
