"""Key chain: each door needs its own key, doors stay open, the goal ends the episode, observations, seeding,
and a random policy's success rate (under 1% on the registered chains)."""

import gymnasium as gym
import numpy as np
import pytest

import envs
from envs.keychain import KeyChain

UP, DOWN, LEFT, RIGHT = 1, 2, 3, 4


def make(**kwargs):
    env = KeyChain(**kwargs)
    env.reset(seed=0)
    # a fixed scene: every door on row 2, key i on row 3 next to wall i, the goal beyond the last door
    env.door_y = [2] * env.doors
    env.keys = [(wall - 1, 3) for wall in env.wall_x]
    env.pos, env.goal = (env.wall_x[0] - 1, 2), (env.wall_x[-1] + 2, 2)
    return env


def walk(env, actions):
    return [env.step(a) for a in actions]


def test_a_door_opens_only_with_its_own_key_and_stays_open():
    env = make(rooms=3, key_reward=0.1, door_reward=0.2)
    assert walk(env, [RIGHT])[0][1] == 0.0 and env.pos == (env.wall_x[0] - 1, 2)  # locked
    (_, reward, *_), = walk(env, [DOWN])  # onto key 0
    assert env.carried == [True, False] and reward == pytest.approx(0.1)
    (_, reward, *_), (_, second, *_) = walk(env, [UP, RIGHT])  # into door 0
    assert env.open == [True, False] and second == pytest.approx(0.2) and reward == 0.0
    # through room 1 to door 1 without key 1: locked; key 0 does not open it
    walk(env, [RIGHT] * (env.room_width + 1))
    assert env.pos == (env.wall_x[1] - 1, 2) and env.open == [True, False]
    # door 0 stays open behind the agent: it walks back through it into room 0
    walk(env, [LEFT] * (env.room_width + 1))
    assert env.pos == (env.wall_x[0] - 1, 2) and env.open == [True, False]


def test_the_goal_pays_one_and_ends_the_episode_after_every_door():
    env = make(rooms=3)
    route = [DOWN, UP, RIGHT] + [RIGHT] * env.room_width + [DOWN, UP, RIGHT, RIGHT, RIGHT]
    steps = walk(env, route)
    assert sum(step[1] for step in steps) == 1.0 and not any(step[3] for step in steps)
    *_, (_, reward, terminated, _, info) = steps
    assert terminated and reward == 1.0 and env.pos == env.goal
    assert info == {"keys": 2, "doors": 2}


def test_vector_observation_tracks_agent_keys_doors_and_flags():
    env = make(rooms=3)
    obs = env._vector()
    w, h = env.width, env.height
    assert obs.shape == env.observation_space.shape == ((w + h) * 4 + 2 * h + 4,)
    assert env.observation_space.contains(obs)
    assert obs[env.pos[0]] == 1 and obs[w + env.pos[1]] == 1 and obs[: w + h].sum() == 2
    key0 = obs[w + h : 2 * (w + h)]
    assert key0.sum() == 2
    env.step(DOWN)  # carry key 0: its place empties, its flag rises
    obs = env._vector()
    assert obs[w + h : 2 * (w + h)].sum() == 0 and obs[-4:].tolist() == [1, 0, 0, 0]


@pytest.mark.parametrize("obs_type", ["vector", "image"])
def test_seeded_resets_repeat_and_differ_across_seeds(obs_type):
    a, b = KeyChain(rooms=4, obs_type=obs_type), KeyChain(rooms=4, obs_type=obs_type)
    first, _ = a.reset(seed=3)
    again, _ = b.reset(seed=3)
    np.testing.assert_array_equal(first, again)
    scenes = {tuple(KeyChain(rooms=4).reset(seed=s)[0]) for s in range(10)}
    assert len(scenes) > 5
    if obs_type == "image":
        assert first.shape == (64, 64, 3) and first.dtype == np.uint8


def test_bad_sizes_are_named():
    with pytest.raises(ValueError, match="rooms must be an integer from 2 to 5, got 6"):
        KeyChain(rooms=6)
    with pytest.raises(ValueError, match="room_width must be an integer from 2 to 6"):
        KeyChain(room_width=1)


@pytest.mark.parametrize("env_id", ["forethought/KeyChainVector3-v0", "forethought/KeyChainVector4-v0"])
def test_a_random_policy_succeeds_in_under_one_percent_of_episodes(env_id):
    env = gym.make(env_id)
    rng = np.random.default_rng(0)
    successes, episodes = 0, 1000
    for episode in range(episodes):
        env.reset(seed=episode)
        while True:
            _, reward, terminated, truncated, _ = env.step(int(rng.integers(5)))
            if terminated or truncated:
                successes += reward > 0
                break
    assert successes / episodes < 0.01, successes
    assert env_id.replace("Vector", "") in {t.id for t in envs.BUILTIN_TASKS}
