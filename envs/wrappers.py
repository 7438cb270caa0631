"""Wrappers that give every environment Forethought's interface.

Observations become a dict with ``image`` (uint8, H x W x C) and/or ``vector`` (float32, D);
actions are Discrete, MultiDiscrete or Box in [-1, 1]; action repeat, seeded resets and frame
capture for videos are added on top. Time limits and episode statistics come from gymnasium.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from PIL import Image

from envs.errors import UnsupportedSpaceError

SUPPORTED_OBS = "Box, Discrete, MultiDiscrete, MultiBinary, and Dict or Tuple spaces of those"
SUPPORTED_ACTIONS = "Discrete, MultiDiscrete, MultiBinary or bounded Box"


def is_image_space(space: gym.Space) -> bool:
    """A uint8 Box shaped H x W or H x W x C (C at most 4) is read as an image."""
    if not isinstance(space, spaces.Box) or space.dtype != np.uint8:
        return False
    if len(space.shape) == 2:
        return min(space.shape) >= 4
    return len(space.shape) == 3 and space.shape[-1] <= 4 and min(space.shape[:2]) >= 4


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an H x W x C uint8 image to ``size`` (height, width), channel by channel."""
    if image.shape[:2] == tuple(size):
        return image
    height, width = size
    channels = [
        np.asarray(Image.fromarray(image[..., c]).resize((width, height), Image.Resampling.BILINEAR))
        for c in range(image.shape[-1])
    ]
    return np.stack(channels, axis=-1)


@dataclass
class _Leaf:
    """How one leaf of the original observation space is turned into image or vector parts."""

    path: tuple[Any, ...]
    convert: Callable[[Any], np.ndarray]
    kind: str  # "image" or "vector"
    low: np.ndarray
    high: np.ndarray


def _one_hot(n: int, start: int = 0) -> Callable[[Any], np.ndarray]:
    def convert(x: Any) -> np.ndarray:
        out = np.zeros(n, np.float32)
        out[int(x) - start] = 1.0
        return out

    return convert


def _multi_one_hot(nvec: np.ndarray, start: np.ndarray) -> Callable[[Any], np.ndarray]:
    flat_n, flat_start = nvec.ravel(), start.ravel()
    offsets = np.concatenate([[0], np.cumsum(flat_n)[:-1]])

    def convert(x: Any) -> np.ndarray:
        out = np.zeros(int(flat_n.sum()), np.float32)
        out[offsets + (np.asarray(x).ravel() - flat_start)] = 1.0
        return out

    return convert


def _is_text(space: gym.Space) -> bool:
    """Text-valued spaces (gymnasium's Text, MiniGrid's MissionSpace) carry no numbers to observe."""
    return isinstance(space, spaces.Text) or (space.dtype is not None and np.dtype(space.dtype).kind in "US")


def _leaves(space: gym.Space, path: tuple[Any, ...], image_size: tuple[int, int]) -> list[_Leaf]:
    """Plan the conversion of every leaf of ``space``; text leaves inside a Dict or Tuple are dropped."""
    if isinstance(space, (spaces.Dict, spaces.Tuple)):
        items = space.spaces.items() if isinstance(space, spaces.Dict) else enumerate(space.spaces)
        return [
            leaf
            for key, sub in items
            if not _is_text(sub)
            for leaf in _leaves(sub, (*path, key), image_size)
        ]
    if is_image_space(space):
        assert isinstance(space, spaces.Box)
        channels = 1 if len(space.shape) == 2 else space.shape[-1]
        shape = (*image_size, channels)

        def image(x: Any) -> np.ndarray:
            x = np.asarray(x, np.uint8)
            return resize_image(x[..., None] if x.ndim == 2 else x, image_size)

        return [_Leaf(path, image, "image", np.zeros(shape, np.uint8), np.full(shape, 255, np.uint8))]
    if isinstance(space, spaces.Box):
        low = np.asarray(space.low, np.float32).ravel()
        high = np.asarray(space.high, np.float32).ravel()
        return [_Leaf(path, lambda x: np.asarray(x, np.float32).ravel(), "vector", low, high)]
    if isinstance(space, spaces.Discrete):
        n = int(space.n)
        return [_Leaf(path, _one_hot(n, int(space.start)), "vector", np.zeros(n, np.float32), np.ones(n, np.float32))]
    if isinstance(space, spaces.MultiDiscrete):
        total = int(space.nvec.sum())
        convert = _multi_one_hot(space.nvec, space.start)
        return [_Leaf(path, convert, "vector", np.zeros(total, np.float32), np.ones(total, np.float32))]
    if isinstance(space, spaces.MultiBinary):
        total = int(np.prod(space.shape))
        return [_Leaf(path, lambda x: np.asarray(x, np.float32).ravel(), "vector",
                      np.zeros(total, np.float32), np.ones(total, np.float32))]
    raise UnsupportedSpaceError(
        f"observation space {space} at {'/'.join(map(str, path)) or 'the top level'} is not supported; "
        f"accepted: {SUPPORTED_OBS}"
    )


def _pick(obs: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        obs = obs[key]
    return obs


class DictObservation(gym.ObservationWrapper):
    """Turn any supported observation into ``{'image': uint8 HxWxC, 'vector': float32 D}``.

    Image leaves are resized to ``image_size`` and stacked along channels; every other leaf is
    flattened (Discrete and MultiDiscrete as one-hot) and concatenated into the vector.
    """

    def __init__(self, env: gym.Env, image_size: tuple[int, int] = (64, 64)):
        super().__init__(env)
        self._leaves = _leaves(env.observation_space, (), (int(image_size[0]), int(image_size[1])))
        parts: dict[str, gym.Space] = {}
        for kind, dtype in (("image", np.uint8), ("vector", np.float32)):
            leaves = [leaf for leaf in self._leaves if leaf.kind == kind]
            if leaves:
                axis = -1
                low = np.concatenate([leaf.low for leaf in leaves], axis=axis)
                high = np.concatenate([leaf.high for leaf in leaves], axis=axis)
                parts[kind] = spaces.Box(low, high, low.shape, dtype)
        if not parts:
            raise UnsupportedSpaceError(
                f"observation space {env.observation_space} holds nothing to observe; accepted: {SUPPORTED_OBS}"
            )
        self.observation_space = spaces.Dict(parts)
        self._kinds = list(parts)

    def observation(self, observation: Any) -> dict[str, np.ndarray]:
        out = {}
        for kind in self._kinds:
            values = [leaf.convert(_pick(observation, leaf.path)) for leaf in self._leaves if leaf.kind == kind]
            out[kind] = values[0] if len(values) == 1 else np.concatenate(values, axis=-1)
        return out


class ShiftDiscrete(gym.ActionWrapper):
    """Present a Discrete or MultiDiscrete space with a non-zero start as starting at zero."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        space = env.action_space
        if isinstance(space, spaces.Discrete):
            self.action_space = spaces.Discrete(int(space.n))
        else:
            assert isinstance(space, spaces.MultiDiscrete)
            self.action_space = spaces.MultiDiscrete(space.nvec)
        self._start = space.start

    def action(self, action: Any) -> Any:
        return np.asarray(action) + self._start


class MultiBinaryAsMultiDiscrete(gym.ActionWrapper):
    """Present a MultiBinary action space as MultiDiscrete with two choices per entry."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        space = env.action_space
        assert isinstance(space, spaces.MultiBinary)
        self._shape = space.shape
        self.action_space = spaces.MultiDiscrete(np.full(int(np.prod(space.shape)), 2))

    def action(self, action: Any) -> Any:
        return np.asarray(action, np.int8).reshape(self._shape)


def adapt_actions(env: gym.Env) -> gym.Env:
    """Give ``env`` a Discrete, MultiDiscrete (both starting at 0) or Box [-1, 1] action space."""
    space = env.action_space
    if isinstance(space, spaces.Discrete):
        return env if space.start == 0 else ShiftDiscrete(env)
    if isinstance(space, spaces.MultiDiscrete):
        return env if not np.any(space.start) else ShiftDiscrete(env)
    if isinstance(space, spaces.MultiBinary):
        return MultiBinaryAsMultiDiscrete(env)
    if isinstance(space, spaces.Box) and space.is_bounded("both"):
        if np.all(space.low == -1) and np.all(space.high == 1):
            return env
        # bounds in the space's own dtype: float32 bounds on a float64 space overflow in gymnasium's cast
        low, high = np.full(space.shape, -1.0, space.dtype), np.full(space.shape, 1.0, space.dtype)
        return gym.wrappers.RescaleAction(env, low, high)
    raise UnsupportedSpaceError(f"action space {space} is not supported; accepted: {SUPPORTED_ACTIONS}")


class ActionRepeat(gym.Wrapper):
    """Repeat each action ``repeat`` times, summing rewards and stopping at the episode's end."""

    def __init__(self, env: gym.Env, repeat: int):
        super().__init__(env)
        if repeat < 1:
            raise ValueError(f"action repeat must be at least 1, got {repeat}")
        self.repeat = repeat

    def step(self, action: Any):
        total = 0.0
        for _ in range(self.repeat):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, info


class SeededReset(gym.Wrapper):
    """Seed the first reset (and the action space) so that a seed reproduces a whole run.

    A seed passed to that first reset wins, unless ``override``: then this wrapper's seed does
    (for callers such as RLlib's env runners that seed every copy with overlapping numbers).
    """

    def __init__(self, env: gym.Env, seed: int | None, override: bool = False):
        super().__init__(env)
        self._pending = seed
        self._override = override and seed is not None
        if seed is not None:
            self.action_space.seed(seed)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        seed = self._pending if seed is None or (self._override and self._pending is not None) else seed
        self._pending = None
        return self.env.reset(seed=seed, options=options)


class FrameCapture(gym.Wrapper):
    """Keep the rendered frame of every step while ``capturing`` is on, for videos."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        if env.render_mode != "rgb_array":
            raise ValueError("frame capture needs an env made with render_mode='rgb_array'")
        self.capturing = True
        self.frames: list[np.ndarray] = []

    def _capture(self) -> None:
        if self.capturing:
            frame: Any = self.env.render()
            if frame is not None:
                self.frames.append(np.asarray(frame, np.uint8))

    def reset(self, **kwargs: Any):
        result = self.env.reset(**kwargs)
        if self.capturing:  # a filmed episode starts a new film
            self.frames = []
        self._capture()
        return result

    def step(self, action: Any):
        result = self.env.step(action)
        self._capture()
        return result
