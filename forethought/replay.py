"""Sequence replay: a bounded store of steps, sampled as windows [B, T] for the learner.

Steps are kept in lanes, one per concurrent env stream. An episode's chunks always go to the same
lane, so a window never joins two unrelated streams: it only crosses episode boundaries, where
``is_first`` resets the world model. Images stay uint8; the memory needed for the whole capacity
is allocated up front and reported by ``nbytes``. ``save`` and ``load`` move the whole buffer,
pointers and counters included, in one file.

Each step holds the observation keys, ``action`` (the action vector taken after seeing the
observation), ``reward`` (received on arriving at it), ``is_first`` and ``is_terminal``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_VERSION = 1
#: what every stored step holds besides the observation keys
STEP_KEYS = ("action", "reward", "is_first", "is_terminal")


class Replay:
    """A ring buffer of ``capacity`` steps split over ``lanes`` lanes."""

    def __init__(self, spec: Mapping[str, tuple[tuple[int, ...], Any]], capacity: int, lanes: int,
                 recent_fraction: float = 0.0, recent_window: int = 0, seed: int = 0, reward_fraction: float = 0.0,
                 reward_starts: bool = True, terminal_fraction: float = 0.0):
        """
        Args:
            spec: key -> (shape, dtype) of each step's entries, e.g. {'image': ((64, 64, 3), np.uint8)}.
            capacity: steps kept in all, oldest dropped first (per lane).
            lanes: concurrent env streams (env runners x envs per runner, plus spares).
            recent_fraction: share of windows drawn from each lane's newest ``recent_window`` steps.
            reward_fraction: share of windows drawn around a step with a non-zero reward (one of them, uniformly,
                at a uniform place in the window), while replay holds any; the rest as above.
            reward_starts: False adds ``no_start`` [B, T] to each sample, True on the windows drawn around a
                reward, so that the agent starts no imagination there (same draws either way).
            terminal_fraction: share of windows drawn, as for rewards, around a step where an episode terminated
                (not one cut by a time limit), while replay holds any: a share of the windows the reward draw left.
        """
        if capacity < lanes or lanes < 1:
            raise ValueError(f"replay capacity ({capacity}) must be at least the number of lanes ({lanes}) >= 1")
        for name, share in (("recent_fraction", recent_fraction), ("reward_fraction", reward_fraction),
                            ("terminal_fraction", terminal_fraction)):
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {share}")
        self.reward_fraction, self.reward_starts = reward_fraction, reward_starts
        self.terminal_fraction = terminal_fraction
        self.spec = {k: (tuple(shape), np.dtype(dtype)) for k, (shape, dtype) in spec.items()}
        for key in STEP_KEYS:
            if key not in self.spec:
                raise ValueError(f"replay spec needs '{key}'; it has {sorted(self.spec)}")
        self.lanes, self.lane_size = lanes, capacity // lanes
        self.recent_fraction, self.recent_window = recent_fraction, recent_window
        self.data = {k: np.zeros((lanes, self.lane_size, *shape), dtype) for k, (shape, dtype) in self.spec.items()}
        self.cursor = np.zeros(lanes, np.int64)  # next write position per lane
        self.filled = np.zeros(lanes, np.int64)  # valid steps per lane
        self.owner: list[str | None] = [None] * lanes  # episode now writing into each lane
        self.last_write = np.zeros(lanes, np.int64)  # add() counter of each lane's last write
        self.adds = 0
        self.steps_added = 0
        self.rng = np.random.default_rng(seed)

    @property
    def nbytes(self) -> int:
        """Bytes held by the buffer's arrays (allocated at construction)."""
        return sum(v.nbytes for v in self.data.values())

    def __len__(self) -> int:
        return int(self.filled.sum())

    def _lane_for(self, episode_id: str) -> int:
        for lane, owner in enumerate(self.owner):
            if owner == episode_id:
                return lane
        free = [lane for lane, owner in enumerate(self.owner) if owner is None]
        # a new episode goes after a finished one, else into the lane written longest ago
        lane = min(free, key=lambda i: self.last_write[i]) if free else int(np.argmin(self.last_write))
        self.owner[lane] = episode_id
        return lane

    def add(self, episode_id: str, steps: Mapping[str, np.ndarray], done: bool) -> None:
        """Append a chunk of one episode's steps [N, ...]; ``done`` frees the lane after it."""
        n = len(steps["reward"])
        missing = set(self.spec) - set(steps)
        if missing:
            raise KeyError(f"steps of episode {episode_id} lack {sorted(missing)}")
        lane = self._lane_for(episode_id)
        self.adds += 1
        index = (self.cursor[lane] + np.arange(n)) % self.lane_size
        for key, array in self.data.items():
            value = np.asarray(steps[key])
            expected = (n, *self.spec[key][0])
            if value.shape != expected:
                raise ValueError(f"steps['{key}'] of episode {episode_id} is {value.shape}, expected {expected}")
            array[lane, index] = value
        self.cursor[lane] = (self.cursor[lane] + n) % self.lane_size
        self.filled[lane] = min(self.filled[lane] + n, self.lane_size)
        self.last_write[lane] = self.adds
        self.steps_added += n
        if done:
            self.owner[lane] = None

    def can_sample(self, length: int) -> bool:
        """Whether some lane holds a whole window of ``length`` steps."""
        return bool((self.filled >= length).any())

    def sample(self, batch: int, length: int) -> dict[str, np.ndarray]:
        """``batch`` windows of ``length`` consecutive steps of one lane each: arrays [B, T, ...].

        Lanes are drawn in proportion to the windows they hold, start points uniformly (or, for
        ``recent_fraction`` of the windows, among each lane's newest ``recent_window`` steps).
        """
        windows = np.maximum(self.filled - length + 1, 0)
        if windows.sum() == 0:
            raise ValueError(f"replay holds no window of {length} steps yet ({len(self)} steps stored)")
        lanes = self.rng.choice(self.lanes, size=batch, p=windows / windows.sum())
        offsets = np.floor(self.rng.random(batch) * windows[lanes]).astype(np.int64)  # 0 = oldest window
        if self.recent_fraction and self.recent_window:
            recent = self.rng.random(batch) < self.recent_fraction
            span = np.minimum(windows[lanes], max(self.recent_window - length + 1, 1))
            newest = windows[lanes] - 1 - np.floor(self.rng.random(batch) * span).astype(np.int64)
            offsets = np.where(recent, newest, offsets)
        drawn = np.zeros(batch, bool)
        if self.reward_fraction:
            lanes, offsets, drawn = self._around(self.rewarded(), self.reward_fraction, lanes, offsets, windows, length)
        if self.terminal_fraction:  # only the windows the reward draw left alone; ``drawn`` stays the reward draw's
            lanes, offsets, _ = self._around(self.marked("is_terminal"), self.terminal_fraction, lanes, offsets,
                                             windows, length, free=~drawn)
        oldest = (self.cursor[lanes] - self.filled[lanes]) % self.lane_size
        index = (oldest[:, None] + offsets[:, None] + np.arange(length)) % self.lane_size
        out = {k: v[lanes[:, None], index] for k, v in self.data.items()}
        # a window's first step starts the world model's context, wherever it lies in an episode
        out["is_first"] = out["is_first"].copy()
        out["is_first"][:, 0] = True
        if not self.reward_starts:
            out["no_start"] = np.repeat(drawn[:, None], length, 1)
        return out

    def marked(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """Lane and position (0 = the lane's oldest step) of every stored step whose ``key`` is non-zero."""
        lane, physical = np.nonzero(self.data[key] != 0)
        position = (physical - (self.cursor[lane] - self.filled[lane])) % self.lane_size
        keep = position < self.filled[lane]
        return lane[keep], position[keep]

    def rewarded(self) -> tuple[np.ndarray, np.ndarray]:
        """Lane and position of every stored step with a non-zero reward (``marked('reward')``)."""
        return self.marked("reward")

    def _around(self, marked: tuple[np.ndarray, np.ndarray], fraction: float, lanes: np.ndarray,
                offsets: np.ndarray, windows: np.ndarray, length: int, free: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Replace ``fraction`` of the windows (of those ``free``, if given) by windows holding one of the
        ``marked`` steps, where replay has one; also return which windows were replaced."""
        lane, position = marked
        picked = self.rng.random(len(lanes)) < fraction
        if free is not None:
            picked &= free
        usable = windows[lane] > 0
        if not usable.any() or not picked.any():
            return lanes, offsets, np.zeros(len(lanes), bool)
        lane, position = lane[usable], position[usable]
        chosen = self.rng.integers(0, len(lane), int(picked.sum()))
        start = position[chosen] - self.rng.integers(0, length, len(chosen))  # the step anywhere in the window
        lanes, offsets = lanes.copy(), offsets.copy()
        lanes[picked] = lane[chosen]
        offsets[picked] = np.clip(start, 0, windows[lane[chosen]] - 1)
        return lanes, offsets, picked

    # --- persistence ------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write everything, atomically, to one .npz file."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp.npz")
        meta = {"format_version": FORMAT_VERSION, "lanes": self.lanes, "lane_size": self.lane_size,
                "adds": self.adds, "steps_added": self.steps_added,
                "owner": ["" if o is None else o for o in self.owner],
                "spec": {k: [list(shape), dtype.str] for k, (shape, dtype) in self.spec.items()}}
        np.savez(tmp, **{f"data/{k}": v for k, v in self.data.items()}, cursor=self.cursor,  # type: ignore[arg-type]
                 filled=self.filled,
                 last_write=self.last_write, meta=np.array(repr(meta)),
                 rng=np.array(repr(self.rng.bit_generator.state)))
        os.replace(tmp, path)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **sampling: Any) -> Replay:
        """A buffer of the layout a ``save`` file holds (its spec, lanes and capacity), restored from it, random state
        included; ``sampling`` takes the constructor's sampling settings (``reward_fraction``, ...)."""
        import ast

        try:
            with np.load(path, allow_pickle=False) as archive:
                meta = ast.literal_eval(str(archive["meta"]))
            spec = {k: (tuple(shape), np.dtype(dtype)) for k, (shape, dtype) in meta["spec"].items()}
            lanes, lane_size = int(meta["lanes"]), int(meta["lane_size"])
        except (OSError, KeyError, ValueError, SyntaxError, TypeError) as error:
            raise ValueError(f"'{path}' is not a readable replay file ({type(error).__name__}: {error})") from None
        replay = cls(spec, lanes * lane_size, lanes, **sampling)
        replay.load(path)
        return replay

    def load(self, path: str | os.PathLike[str]) -> None:
        """Restore what ``save`` wrote; a buffer of another shape or format is refused by name."""
        import ast

        try:
            with np.load(path, allow_pickle=False) as archive:
                meta = ast.literal_eval(str(archive["meta"]))
                arrays = {k[len("data/"):]: archive[k] for k in archive.files if k.startswith("data/")}
                pointers = {k: archive[k] for k in ("cursor", "filled", "last_write")}
                rng_state = ast.literal_eval(str(archive["rng"]))
        except (OSError, KeyError, ValueError, SyntaxError) as error:
            raise ValueError(f"'{path}' is not a readable replay file ({type(error).__name__}: {error})") from None
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"'{path}' has replay format {meta.get('format_version')}; expected {FORMAT_VERSION}")
        ours = {k: [list(shape), dtype.str] for k, (shape, dtype) in self.spec.items()}
        if meta["spec"] != ours or meta["lanes"] != self.lanes or meta["lane_size"] != self.lane_size:
            raise ValueError(
                f"'{path}' holds a replay of another layout: file {meta['spec']} in {meta['lanes']} lanes of "
                f"{meta['lane_size']}, here {ours} in {self.lanes} lanes of {self.lane_size}")
        for key, value in arrays.items():
            self.data[key][...] = value
        self.cursor[...], self.filled[...], self.last_write[...] = (
            pointers["cursor"], pointers["filled"], pointers["last_write"])
        self.owner = [o or None for o in meta["owner"]]
        self.adds, self.steps_added = meta["adds"], meta["steps_added"]
        self.rng.bit_generator.state = rng_state
