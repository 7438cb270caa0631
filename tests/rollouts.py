"""Recorded random-policy experience of a built-in task, in the world model's batch layout."""

from __future__ import annotations

import numpy as np
import torch

import envs


def record(env_id: str, steps: int, seed: int = 0, **options) -> dict[str, np.ndarray]:
    """A stream of ``steps`` steps [N, ...]: obs keys, one-hot ``action`` (taken after each obs),
    ``reward`` (received on arriving at each obs), ``is_first``, ``is_terminal``."""
    env = envs.make(env_id, seed=seed, **options)
    n = env.action_space.n
    rng = np.random.default_rng(seed)
    data: dict[str, list] = {}
    obs, _ = env.reset()
    reward, first, terminal, truncated = 0.0, True, False, False
    for _ in range(steps):
        action = int(rng.integers(n))
        for key, value in {**obs, "action": np.eye(n, dtype=np.float32)[action], "reward": reward,
                           "is_first": first, "is_terminal": terminal}.items():
            data.setdefault(key, []).append(value)
        if terminal or truncated:  # that observation closed the episode
            obs, _ = env.reset()
            reward, first, terminal, truncated = 0.0, True, False, False
        else:
            obs, reward, terminal, truncated, _ = env.step(action)
            first = False
    return {k: np.asarray(v) for k, v in data.items()}


def sample_batch(stream: dict[str, np.ndarray], batch: int, length: int, rng: np.random.Generator
                 ) -> dict[str, torch.Tensor]:
    """Uniformly sampled windows [batch, length, ...] of a stream, as tensors."""
    starts = rng.integers(0, len(stream["reward"]) - length, size=batch)
    index = starts[:, None] + np.arange(length)
    return {k: torch.as_tensor(v[index]) for k, v in stream.items()}
