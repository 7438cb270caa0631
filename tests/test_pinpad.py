"""Visual Pin Pad: reward logic, celebration and respawn, walls, observations, seeding."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs.grid import MOVES
from envs.pinpad import CELEBRATION_STEPS, CELEBRATION_TINT, HEIGHT, LAYOUTS, PAD_COLOURS, WIDTH, PinPad


def make(num_pads=3, obs_type="image"):
    env = PinPad(num_pads=num_pads, obs_type=obs_type)
    env.reset(seed=0)
    return env


def enter(env: PinPad, pad: int):
    """Put the agent on a floor cell next to ``pad`` and step into the pad; return the step."""
    for x, y in np.argwhere(env.layout == pad):
        for action, (dx, dy) in enumerate(MOVES):
            if action and env.layout[x - dx, y - dy] == 0:
                env.pos = (int(x - dx), int(y - dy))
                result = env.step(action)
                assert env.layout[env.pos] == pad
                return result
    raise AssertionError(f"pad {pad} has no floor next to it")


def test_every_layout_has_its_pads_inside_the_border():
    for n in LAYOUTS:
        env = PinPad(num_pads=n)
        assert env.layout.shape == (WIDTH, HEIGHT)
        assert set(np.unique(env.layout)) == {-1, 0, *range(1, n + 1)}
        assert (env.layout[0] == -1).all() and (env.layout[:, -1] == -1).all()


def test_reward_only_for_the_full_order():
    env = make(3)
    assert [enter(env, pad)[1] for pad in (1, 2)] == [0.0, 0.0]
    assert enter(env, 3)[1] == 10.0
    assert env.successes == 1


def test_wrong_order_gives_nothing_and_the_history_slides():
    env = make(3)
    rewards = [enter(env, pad)[1] for pad in (2, 1, 3, 1, 2)]
    assert rewards == [0.0] * 5
    assert list(env.history) == [3, 1, 2]
    assert enter(env, 3)[1] == 10.0  # the last three pads are now 1, 2, 3


def test_consecutive_repeats_collapse():
    env = make(3)
    enter(env, 1)
    enter(env, 1)  # leave and come back: still one entry
    assert list(env.history) == [1]
    enter(env, 2)
    assert enter(env, 3)[1] == 10.0


def test_celebration_tints_for_ten_steps_then_respawns_and_clears():
    env = make(4)
    for pad in (1, 2, 3):
        enter(env, pad)
    obs, reward, *_ = enter(env, 4)
    assert reward == 10.0
    tinted = [obs]
    for _ in range(CELEBRATION_STEPS - 1):
        obs, reward, terminated, truncated, _ = env.step(0)
        assert reward == 0.0 and not terminated and not truncated
        tinted.append(obs)
    # the floor (a free cell's pixels) shows the tint on each of the ten observations
    fx, fy = np.argwhere(env.layout == 0)[0]
    for image in tinted:
        assert tuple(image[fy * 4, fx * 4]) == CELEBRATION_TINT
    assert len(env.history) == 4
    obs, reward, *_ = env.step(0)
    assert reward == 0.0 and len(env.history) == 0
    assert env.layout[env.pos] == 0  # respawned on a free cell
    assert tuple(obs[fy * 4, fx * 4]) == (255, 255, 255)


def test_no_second_reward_during_the_celebration():
    env = make(3)
    for pad in (1, 2, 3):
        enter(env, pad)
    # revisiting 1, 2, 3 while tinted does not pay again
    assert [enter(env, pad)[1] for pad in (1, 2, 3)] == [0.0, 0.0, 0.0]


def test_walls_block_moves():
    env = make(3)
    for x, y in np.argwhere(env.layout == 0):
        if x == 1 or y == 1:  # free cells along the border
            env.pos = (int(x), int(y))
            env.step(3 if x == 1 else 1)  # left or up, into the wall
            assert env.pos == (x, y)


def test_image_shows_agent_and_history_marks():
    env = PinPad(num_pads=3, render_mode="rgb_array")
    env.reset(seed=0)
    enter(env, 1)
    enter(env, 2)
    image = env.render()
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    x, y = env.pos
    assert tuple(image[y * 4 + 1, x * 4 + 1]) == (0, 0, 0)  # the agent is black
    # marks sit in the first history row, at cells 1 and 3
    assert tuple(image[HEIGHT * 4 + 1, 1 * 4 + 1]) == PAD_COLOURS[0]
    assert tuple(image[HEIGHT * 4 + 1, 3 * 4 + 1]) == PAD_COLOURS[1]


def test_vector_observation_holds_position_pad_history_and_countdown():
    env = make(3, "vector")
    obs, *_ = enter(env, 1)
    obs, *_ = enter(env, 2)
    n, cols, rows = 3, WIDTH - 2, HEIGHT - 2
    assert obs.shape == (cols + rows + (n + 1) + n * n + 1,) and obs.dtype == np.float32
    x, y = env.pos
    expected_position = np.zeros(cols + rows)
    expected_position[[x - 1, cols + y - 1]] = 1
    np.testing.assert_array_equal(obs[: cols + rows], expected_position)
    pad = obs[cols + rows : cols + rows + n + 1]
    np.testing.assert_array_equal(pad, [0, 0, 1, 0])  # standing on pad 2
    history = obs[cols + rows + n + 1 : -1].reshape(n, n)
    np.testing.assert_array_equal(history, [[1, 0, 0], [0, 1, 0], [0, 0, 0]])
    assert obs[-1] == 0.0
    obs, *_ = enter(env, 3)
    assert obs[-1] == 1.0  # celebration countdown, scaled


@pytest.mark.parametrize("env_id", [t.id for t in envs.BUILTIN_TASKS])
def test_builtin_tasks_pass_the_gymnasium_checker(env_id):
    check_env(gym.make(env_id).unwrapped, skip_render_check=False)


def test_episodes_end_after_2000_steps():
    env = gym.make("forethought/PinPadVector3-v0")
    env.reset(seed=0)
    for step in range(1, 2001):
        _, _, terminated, truncated, _ = env.step(0)
        assert not terminated
        assert truncated == (step == 2000)


def test_same_seed_same_trajectory():
    def rollout(seed):
        env = gym.make("forethought/PinPad5-v0")
        obs, _ = env.reset(seed=seed)
        frames, rng = [obs], np.random.default_rng(1)
        for _ in range(200):
            frames.append(env.step(int(rng.integers(5)))[0])
        return np.stack(frames)

    np.testing.assert_array_equal(rollout(3), rollout(3))
    assert not np.array_equal(rollout(3), rollout(4))


def test_bad_pad_count_names_the_range():
    with pytest.raises(ValueError, match="from 3 to 8"):
        PinPad(num_pads=9)
