"""The planner probe's reading of a grid task's layout from an observation vector."""

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers the built-in tasks)
from benchmarks.planner_probe import layout


@pytest.mark.parametrize("env_id", ["forethought/KeyDoorVector-v0", "forethought/KeyChainVector3-v0"])
def test_the_probe_reads_each_episodes_layout_from_its_observation(env_id):
    env = gym.make(env_id)
    layouts = set()
    for seed in range(6):
        obs, _ = env.reset(seed=seed)
        inner = env.unwrapped
        doors = inner.door_y if isinstance(inner.door_y, list) else [inner.door_y]
        assert layout(np.asarray(obs), env) == (*inner.goal, *doors)
        layouts.add(layout(np.asarray(obs), env))
        for _ in range(5):  # the agent's moves leave the layout as it is
            obs, *_ = env.step(env.action_space.sample())
        assert layout(np.asarray(obs), env) == (*inner.goal, *doors)
    assert len(layouts) > 1  # each episode draws its own
