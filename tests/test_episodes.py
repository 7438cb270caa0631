"""RLlib episode chunks become replay steps in the Dreamer layout (golden rows)."""

import gymnasium as gym
import numpy as np
from ray.rllib.env.single_agent_episode import SingleAgentEpisode

from agents.actions import ActionSpec
from forethought.rllib.episodes import chunk_steps

SPACE = gym.spaces.Dict({"vector": gym.spaces.Box(-10, 10, (1,), np.float32)})
SPEC = ActionSpec.discrete(3)


def obs(t):
    return {"vector": np.array([t], np.float32)}


def episode_in_two_chunks(terminated: bool):
    """o_0..o_5 with a_t = t % 3 and r_t = t on arriving at o_t; cut after o_3."""
    first = SingleAgentEpisode(observation_space=SPACE, action_space=gym.spaces.Discrete(3))
    first.add_env_reset(observation=obs(0))
    for t in range(1, 4):
        first.add_env_step(observation=obs(t), action=(t - 1) % 3, reward=float(t))
    second = first.cut()
    for t in range(4, 6):
        second.add_env_step(observation=obs(t), action=(t - 1) % 3, reward=float(t),
                            terminated=terminated and t == 5, truncated=not terminated and t == 5)
    first.to_numpy()
    second.to_numpy()
    return first, second


def test_a_running_chunk_leaves_its_last_observation_to_the_next():
    first, _ = episode_in_two_chunks(terminated=True)
    steps = chunk_steps(first, SPEC, arrival_reward=99.0)
    np.testing.assert_array_equal(steps["vector"][:, 0], [0, 1, 2])
    np.testing.assert_array_equal(steps["action"].argmax(-1), [0, 1, 2])  # taken after seeing o_t
    np.testing.assert_array_equal(steps["reward"], [0, 1, 2])  # received on arriving at o_t
    np.testing.assert_array_equal(steps["is_first"], [True, False, False])
    assert not steps["is_terminal"].any()


def test_the_last_chunk_keeps_the_final_observation_and_flags_termination():
    _, second = episode_in_two_chunks(terminated=True)
    steps = chunk_steps(second, SPEC, arrival_reward=3.0)
    np.testing.assert_array_equal(steps["vector"][:, 0], [3, 4, 5])
    np.testing.assert_array_equal(steps["action"], [[1, 0, 0], [0, 1, 0], [0, 0, 0]])  # a_3, a_4, none after o_5
    np.testing.assert_array_equal(steps["reward"], [3, 4, 5])
    np.testing.assert_array_equal(steps["is_first"], [False, False, False])
    np.testing.assert_array_equal(steps["is_terminal"], [False, False, True])


def test_truncation_is_not_termination():
    _, second = episode_in_two_chunks(terminated=False)
    steps = chunk_steps(second, SPEC, arrival_reward=3.0)
    assert len(steps["reward"]) == 3 and not steps["is_terminal"].any()
