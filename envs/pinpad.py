"""Visual Pin Pad: visit coloured pads in a hidden fixed order (Hafner et al. 2022, Director).

A 16 x 14 grid with a wall border holds three to eight pads. The agent's recent pads
(consecutive repeats collapsed, as many as there are pads) are shown as marks along the bottom
of the picture. When that history equals the order 1, 2, ..., N the agent gets +10, the screen
is tinted for 10 steps, then the agent respawns and the history is cleared. The order is never
shown: the agent has to discover it, which makes the task long-horizon and sparse.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from envs.grid import AGENT, WALL, WHITE, GridTask, tint

WIDTH, HEIGHT = 16, 14
SUCCESS_REWARD = 10.0
CELEBRATION_STEPS = 10
MIN_PADS, MAX_PADS = 3, 8

#: one colour per pad number
PAD_COLOURS = (
    (230, 25, 25),  # 1 red
    (20, 170, 40),  # 2 green
    (30, 60, 230),  # 3 blue
    (240, 200, 0),  # 4 yellow
    (200, 30, 200),  # 5 magenta
    (0, 190, 200),  # 6 cyan
    (120, 40, 150),  # 7 purple
    (240, 120, 20),  # 8 orange
)
CELEBRATION_TINT = (215, 250, 215)

# Pad blocks as inclusive (x0, y0, x1, y1) cell rectangles inside the wall border.
_BIG = {"tl": (1, 1, 4, 4), "tr": (11, 1, 14, 4), "bl": (1, 9, 4, 12), "br": (11, 9, 14, 12),
        "bm": (6, 9, 9, 12)}
_SMALL = {"tl": (1, 1, 3, 3), "tr": (12, 1, 14, 3), "bl": (1, 10, 3, 12), "br": (12, 10, 14, 12),
          "rm": (13, 6, 14, 7), "lm": (1, 6, 2, 7), "bm": (6, 11, 9, 12), "tm": (6, 1, 9, 2)}
#: the fixed block of each pad (1, 2, ...) for each pad count; the order zig-zags across the room
LAYOUTS = {
    3: [_BIG["tl"], _BIG["bm"], _BIG["tr"]],
    4: [_BIG["tl"], _BIG["br"], _BIG["bl"], _BIG["tr"]],
    5: [_SMALL[k] for k in ("tl", "br", "bl", "tr", "rm")],
    6: [_SMALL[k] for k in ("tl", "br", "bl", "tr", "rm", "lm")],
    7: [_SMALL[k] for k in ("tl", "br", "bl", "tr", "rm", "lm", "bm")],
    8: [_SMALL[k] for k in ("tl", "br", "bl", "tr", "rm", "lm", "bm", "tm")],
}


def build_layout(num_pads: int) -> np.ndarray:
    """The (WIDTH, HEIGHT) grid of cell codes: -1 wall, 0 floor, k for pad k."""
    grid = np.zeros((WIDTH, HEIGHT), np.int64)
    grid[0, :] = grid[-1, :] = grid[:, 0] = grid[:, -1] = -1
    for pad, (x0, y0, x1, y1) in enumerate(LAYOUTS[num_pads], start=1):
        grid[x0 : x1 + 1, y0 : y1 + 1] = pad
    return grid


class PinPad(GridTask):
    """Visual Pin Pad with ``num_pads`` pads; ``obs_type`` 'image' (64 x 64 x 3) or 'vector'.

    The vector holds the agent's column and row (one-hot over the walled interior), the pad it
    stands on (one-hot, 0 for none), the recent-pad history (one one-hot row per slot, zeros where
    empty) and the celebration countdown scaled into [0, 1].
    """

    def __init__(self, num_pads: int = 4, obs_type: str = "image", render_mode: str | None = None):
        if num_pads not in LAYOUTS:
            raise ValueError(f"num_pads must be an integer from {MIN_PADS} to {MAX_PADS}, got {num_pads!r}")
        self.num_pads = num_pads
        self.layout = build_layout(num_pads)
        self.target = tuple(range(1, num_pads + 1))
        free = np.argwhere(self.layout == 0)
        self._spawns = [(int(x), int(y)) for x, y in free]
        size = (WIDTH - 2) + (HEIGHT - 2) + (num_pads + 1) + num_pads * num_pads + 1
        super().__init__(obs_type, size, render_mode)
        self.history: deque[int] = deque(maxlen=num_pads)
        self.pos = self._spawns[0]
        self.countdown = 0
        self.successes = 0

    def _cells_shape(self) -> tuple[int, int]:
        return 16, 16  # the grid's 14 rows plus two rows for the history marks

    def _respawn(self) -> None:
        self.pos = self._spawns[int(self.np_random.integers(len(self._spawns)))]
        self.history.clear()

    def _new_episode(self) -> None:
        self.countdown = 0
        self.successes = 0
        self._respawn()

    def _transition(self, action: int) -> tuple[float, bool]:
        if self.countdown:
            self.countdown -= 1
            if self.countdown == 0:
                self._respawn()
                return 0.0, False
        target = self._move(self.pos, action)
        if self.layout[target] != -1:
            self.pos = target
        pad = int(self.layout[self.pos])
        if pad > 0 and (not self.history or self.history[-1] != pad):
            self.history.append(pad)
        if not self.countdown and tuple(self.history) == self.target:
            self.countdown = CELEBRATION_STEPS
            self.successes += 1
            return SUCCESS_REWARD, False
        return 0.0, False

    def _cells(self) -> np.ndarray:
        cells = np.empty((16, 16, 3), np.uint8)  # rows are y, columns are x
        cells[:] = CELEBRATION_TINT if self.countdown else WHITE
        layout = self.layout.T
        cells[:HEIGHT][layout == -1] = WALL
        current = int(self.layout[self.pos])
        for pad in range(1, self.num_pads + 1):
            cells[:HEIGHT][layout == pad] = tint(PAD_COLOURS[pad - 1], 1.0 if pad == current else 0.15)
        cells[self.pos[1], self.pos[0]] = AGENT
        cells[HEIGHT:] = WALL
        for slot, pad in enumerate(self.history):
            cells[HEIGHT, 2 * slot + 1] = PAD_COLOURS[pad - 1]
        return cells

    def _vector(self) -> np.ndarray:
        n = self.num_pads
        current = np.zeros(n + 1, np.float32)
        current[int(self.layout[self.pos])] = 1.0
        history = np.zeros((n, n), np.float32)
        for slot, pad in enumerate(self.history):
            history[slot, pad - 1] = 1.0
        # one-hot rows and columns of the walled interior: a one-cell move changes two entries by 1,
        # a far stronger signal to learn from than a coordinate that moves by 1/15
        position = np.zeros(WIDTH - 2 + HEIGHT - 2, np.float32)
        position[self.pos[0] - 1] = 1.0
        position[WIDTH - 2 + self.pos[1] - 1] = 1.0
        countdown = np.array([self.countdown / CELEBRATION_STEPS], np.float32)
        return np.concatenate([position, current, history.ravel(), countdown])

    def _info(self) -> dict[str, Any]:
        return {"successes": self.successes}
