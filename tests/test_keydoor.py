"""Key, door, goal: the locked door, key pickup, sub-goal rewards, goal, observations, seeding."""

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers the tasks)
from envs.keydoor import KeyDoor

LEFT, RIGHT, UP, DOWN = 3, 4, 1, 2


def make(**kwargs):
    env = KeyDoor(**kwargs)
    env.reset(seed=0)
    # a fixed scene: agent left of the door's row, key below it, goal right of the door
    env.door_y = 3
    env.pos, env.key, env.goal = (env.wall_x - 1, 3), (env.wall_x - 1, 4), (env.wall_x + 2, 3)
    return env


def test_locked_door_blocks_without_the_key():
    env = make()
    _, reward, terminated, *_ = env.step(RIGHT)
    assert env.pos == (env.wall_x - 1, 3) and reward == 0.0 and not terminated
    assert not env.door_open


def test_walls_block_everywhere_but_the_door():
    env = make()
    env.has_key = True
    env.pos = (env.wall_x - 1, 2)
    env.step(RIGHT)
    assert env.pos == (env.wall_x - 1, 2)  # the key opens the door, not the wall


def test_key_then_door_then_goal():
    env = make(key_reward=0.1, door_reward=0.2)
    rewards = [env.step(DOWN)[1]]  # onto the key
    assert env.has_key
    env.step(UP)
    rewards.append(env.step(RIGHT)[1])  # into the door
    assert env.door_open and env.pos == (env.wall_x, 3)
    rewards.append(env.step(RIGHT)[1])
    _, reward, terminated, truncated, info = env.step(RIGHT)
    assert rewards == [0.1, 0.2, 0.0]
    assert reward == 1.0 and terminated and not truncated
    assert info == {"has_key": True, "door_open": True}


def test_sparse_by_default():
    env = make()
    rewards = [env.step(a)[1] for a in (DOWN, UP, RIGHT, RIGHT)]
    assert rewards == [0.0] * 4
    assert env.step(RIGHT)[1] == 1.0


def test_open_door_stays_open_and_the_key_stays_carried():
    env = make()
    for a in (DOWN, UP, RIGHT, LEFT, RIGHT):  # through the door, back, and in again
        env.step(a)
    assert env.door_open and env.has_key and env.pos == (env.wall_x, 3)


def test_vector_observation():
    env = make(obs_type="vector")
    obs, *_ = env.step(DOWN)
    n = env.size
    assert obs.shape == (7 * n + 2,) and obs.dtype == np.float32
    parts = obs[:-2].reshape(7, n)
    assert parts.sum(1).tolist() == [1, 1, 0, 0, 1, 1, 1]  # the key is carried: no key position
    assert (parts[0].argmax(), parts[1].argmax()) == env.pos
    assert (parts[4].argmax(), parts[5].argmax(), parts[6].argmax()) == (*env.goal, 3)
    np.testing.assert_array_equal(obs[-2:], [1, 0])
    env.reset(seed=5)
    parts = env._vector()[:-2].reshape(7, n)
    assert (parts[2].argmax(), parts[3].argmax()) == env.key and parts[2].sum() == 1


def test_image_shows_key_door_goal_and_agent():
    env = make()
    image = env._image()
    assert image.shape == (64, 64, 3)
    px = env.cell_px

    def cell(xy):
        return tuple(image[xy[1] * px + 1, xy[0] * px + 1])

    assert cell(env.pos) == (0, 0, 0)
    assert cell(env.key) == (230, 180, 0)
    assert cell(env.goal) == (20, 170, 40)
    assert cell((env.wall_x, env.door_y)) == (130, 70, 20)


def test_episode_layout_is_random_but_seeded():
    def scene(seed):
        env = gym.make("forethought/KeyDoorVector-v0")
        return env.reset(seed=seed)[0]

    np.testing.assert_array_equal(scene(1), scene(1))
    assert len({scene(s).tobytes() for s in range(10)}) > 5
    env = KeyDoor()
    for seed in range(20):
        env.reset(seed=seed)
        assert env.pos != env.key and env.pos[0] < env.wall_x < env.goal[0]


def test_registered_time_limit():
    env = gym.make("forethought/KeyDoorVector-v0")
    env.reset(seed=0)
    truncated = False
    for _ in range(100):
        _, _, terminated, truncated, _ = env.step(0)
    assert truncated and not terminated


@pytest.mark.parametrize("size", [5, 17, 8.5])
def test_bad_size_names_the_range(size):
    with pytest.raises(ValueError, match="from 6 to 16"):
        KeyDoor(size=size)
