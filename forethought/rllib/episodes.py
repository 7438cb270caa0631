"""RLlib episode chunks -> replay steps in the Dreamer layout.

A chunk holds observations o_0..o_n, actions a_0..a_{n-1} and rewards r_1..r_n. A replay step t
holds o_t, the action taken after seeing it, and the reward received on arriving at it. A running
episode's last observation is left out: the next chunk starts with it, together with the action
taken there. A finished episode's last observation is kept, with a zero action, and flagged
``is_terminal`` when the episode terminated (not when it was truncated).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from agents.actions import ActionSpec


def chunk_steps(episode: Any, spec: ActionSpec, arrival_reward: float) -> dict[str, np.ndarray]:
    """Replay steps of one chunk; ``arrival_reward`` is the reward on arriving at its first observation
    (0 at an episode's start, the previous chunk's last reward otherwise)."""
    n = len(episode)
    obs = episode.get_observations()
    if isinstance(obs, list):  # not yet numpy: a list of per-step dicts
        obs = {k: np.stack([o[k] for o in obs]) for k in obs[0]}
    first = episode.t_started == 0
    done = episode.is_done
    m = n + 1 if done else n
    actions = spec.from_env(torch.tensor(np.asarray(episode.get_actions()))).numpy()  # a copy: RLlib's is read-only
    if done:
        actions = np.concatenate([actions, np.zeros((1, spec.dim), np.float32)])
    rewards = np.asarray(episode.get_rewards(), np.float32)
    steps = {k: np.asarray(v)[:m] for k, v in obs.items()}
    steps["action"] = actions[:m]
    steps["reward"] = np.concatenate([[0.0 if first else arrival_reward], rewards]).astype(np.float32)[:m]
    steps["is_first"] = (np.arange(m) == 0) & first
    steps["is_terminal"] = np.zeros(m, bool)
    if done:
        steps["is_terminal"][-1] = bool(episode.is_terminated)
    return steps
