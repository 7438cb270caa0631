"""The wrappers behind envs.make: dict observations for every space type, adapted actions, action
repeat, time limits, episode statistics, seeded resets, frame capture and gymnasium's checker."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

import envs
from envs.wrappers import DictObservation
from tests import toy_envs

SpaceEnv = toy_envs.SpaceEnv
TOY = "tests.toy_envs:SpaceEnv"
ACCEPTED = "accepted: Box, Discrete, MultiDiscrete, MultiBinary, and Dict or Tuple spaces of those"


def image(*shape: int) -> spaces.Box:
    return spaces.Box(0, 255, shape, np.uint8)


def make(seed=0, **kwargs) -> gym.Env:
    """The toy env through envs.make; keyword arguments are make's own or the env's constructor options."""
    return envs.make(TOY, seed=seed, **kwargs)


def wrap(obs_space: gym.Space, image_size=(64, 64)) -> DictObservation:
    return DictObservation(SpaceEnv(obs_space=obs_space), image_size)


def run_episode(env: gym.Env) -> list[dict]:
    """Reset and take random actions to the episode's end, checking every observation against the space."""
    obs, _ = env.reset()
    observations = [obs]
    done = False
    while not done:
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        observations.append(obs)
        done = terminated or truncated
    for obs in observations:
        assert env.observation_space.contains(obs), obs
    return observations


# ---------------------------------------------------------------- observations


def test_colour_image_is_resized_to_image_size_height_then_width():
    env = make(obs_space=image(10, 20, 3), image_size=(32, 48))
    assert list(env.observation_space.spaces) == ["image"]
    assert env.observation_space["image"] == spaces.Box(0, 255, (32, 48, 3), np.uint8)
    for obs in run_episode(env):
        assert obs["image"].shape == (32, 48, 3) and obs["image"].dtype == np.uint8

    raw = np.zeros((10, 20, 3), np.uint8)
    raw[:5, :, 0] = 255  # top half red
    raw[:, :10, 1] = 255  # left half green
    out = wrap(image(10, 20, 3), (32, 48)).observation(raw)["image"]
    assert (out[:12, :, 0] == 255).all() and (out[-12:, :, 0] == 0).all()
    assert (out[:, :20, 1] == 255).all() and (out[:, -20:, 1] == 0).all()
    assert (out[..., 2] == 0).all()


def test_image_already_at_image_size_is_passed_through():
    raw = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert np.array_equal(wrap(image(64, 64, 3)).observation(raw)["image"], raw)


def test_grayscale_image_gets_a_channel_axis():
    env = make(obs_space=image(10, 20), image_size=(32, 48))
    assert env.observation_space["image"].shape == (32, 48, 1)
    run_episode(env)
    raw = np.zeros((10, 20), np.uint8)
    raw[:5] = 200
    out = wrap(image(10, 20), (32, 48)).observation(raw)["image"]
    assert out.shape == (32, 48, 1)
    assert (out[:12] == 200).all() and (out[-12:] == 0).all()


def test_float_box_is_flattened_to_a_float32_vector():
    space = spaces.Box(-2.0, 3.0, (2, 3), np.float64)
    env = make(obs_space=space)
    assert list(env.observation_space.spaces) == ["vector"]
    vector_space = env.observation_space["vector"]
    assert vector_space.shape == (6,) and vector_space.dtype == np.float32
    assert (vector_space.low == -2).all() and (vector_space.high == 3).all()
    run_episode(env)
    raw = np.arange(6, dtype=np.float64).reshape(2, 3) - 2
    out = wrap(space).observation(raw)["vector"]
    assert out.dtype == np.float32 and np.array_equal(out, raw.ravel())


def test_discrete_with_a_start_becomes_a_one_hot():
    space = spaces.Discrete(4, start=-2)
    env = make(obs_space=space)
    assert env.observation_space["vector"] == spaces.Box(0, 1, (4,), np.float32)
    for obs in run_episode(env):
        assert obs["vector"].sum() == 1
    wrapper = wrap(space)
    assert wrapper.observation(-2)["vector"].tolist() == [1, 0, 0, 0]
    assert wrapper.observation(np.int64(1))["vector"].tolist() == [0, 0, 0, 1]


def test_multi_discrete_becomes_concatenated_one_hots():
    space = spaces.MultiDiscrete([3, 2], start=[1, 0])
    env = make(obs_space=space)
    assert env.observation_space["vector"].shape == (5,)
    run_episode(env)
    assert wrap(space).observation(np.array([2, 1]))["vector"].tolist() == [0, 1, 0, 0, 1]
    assert wrap(space).observation(np.array([3, 0]))["vector"].tolist() == [0, 0, 1, 1, 0]


def test_multi_binary_is_flattened():
    space = spaces.MultiBinary([2, 2])
    env = make(obs_space=space)
    assert env.observation_space["vector"] == spaces.Box(0, 1, (4,), np.float32)
    run_episode(env)
    out = wrap(space).observation(np.array([[1, 0], [0, 1]], np.int8))["vector"]
    assert out.dtype == np.float32 and out.tolist() == [1, 0, 0, 1]


def test_nested_dict_stacks_images_concatenates_vectors_and_drops_text():
    space = spaces.Dict({
        "mission": spaces.Text(10),
        "state": spaces.Tuple((spaces.Discrete(2), spaces.Box(-1.0, 1.0, (3,), np.float32))),
        "view": spaces.Dict({"camera": image(16, 16, 3), "depth": image(8, 8)}),
    })
    env = make(obs_space=space)
    assert env.observation_space["image"].shape == (64, 64, 4)
    assert env.observation_space["vector"].shape == (2 + 3,)
    run_episode(env)

    raw = {
        "mission": "open the door",
        "state": (1, np.array([0.5, -0.5, 0.25], np.float32)),
        "view": {"camera": np.full((16, 16, 3), 10, np.uint8), "depth": np.full((8, 8), 200, np.uint8)},
    }
    out = wrap(space).observation(raw)
    assert set(out) == {"image", "vector"}
    assert (out["image"][..., :3] == 10).all() and (out["image"][..., 3] == 200).all()
    assert out["vector"].tolist() == [0, 1, 0.5, -0.5, 0.25]


def test_tuple_keeps_the_order_of_its_entries():
    space = spaces.Tuple((image(8, 8, 3), spaces.Discrete(3), image(16, 16, 1), spaces.MultiBinary(2)))
    env = make(obs_space=space, image_size=(16, 16))
    assert env.observation_space["image"].shape == (16, 16, 4)
    assert env.observation_space["vector"].shape == (5,)
    run_episode(env)
    raw = (np.full((8, 8, 3), 7, np.uint8), 2, np.full((16, 16, 1), 9, np.uint8), np.array([0, 1], np.int8))
    out = wrap(space, (16, 16)).observation(raw)
    assert (out["image"][..., :3] == 7).all() and (out["image"][..., 3] == 9).all()
    assert out["vector"].tolist() == [0, 0, 1, 0, 1]


def test_small_or_non_uint8_boxes_are_vectors_not_images():
    space = spaces.Dict({"bytes": spaces.Box(0, 255, (3,), np.uint8), "grid": spaces.Box(0.0, 1.0, (8, 8, 3))})
    env = make(obs_space=space)
    assert list(env.observation_space.spaces) == ["vector"]
    assert env.observation_space["vector"].shape == (3 + 8 * 8 * 3,)
    run_episode(env)


@pytest.mark.parametrize(
    ("space", "where"),
    [
        (spaces.Text(5), "the top level"),
        (spaces.Graph(spaces.Box(0.0, 1.0, (2,)), None), "the top level"),
        (spaces.Sequence(spaces.Discrete(2)), "the top level"),
        (spaces.Dict({"ok": spaces.Discrete(2), "graph": spaces.Graph(spaces.Discrete(3), None)}), "at graph"),
        (spaces.Tuple((spaces.Discrete(2), spaces.Sequence(spaces.Discrete(2)))), "at 1"),
    ],
    ids=["text", "graph", "sequence", "graph-in-dict", "sequence-in-tuple"],
)
def test_unsupported_observation_space_says_what_is_accepted(space, where):
    with pytest.raises(envs.UnsupportedSpaceError) as info:
        make(obs_space=space)
    message = str(info.value)
    assert where in message and ACCEPTED in message


def test_observation_with_nothing_but_text_is_refused():
    with pytest.raises(envs.UnsupportedSpaceError, match="holds nothing to observe"):
        make(obs_space=spaces.Dict({"mission": spaces.Text(5)}))


# ---------------------------------------------------------------- actions


def test_discrete_action_with_a_start_is_shifted_to_zero():
    env = make(action_space=spaces.Discrete(4, start=-1))
    assert env.action_space == spaces.Discrete(4)
    env.reset()
    for action, received in [(0, -1), (3, 2), (1, 0)]:
        env.step(action)
        assert int(env.unwrapped.last_action) == received
        assert env.unwrapped.action_space.contains(env.unwrapped.last_action)


def test_discrete_action_from_zero_is_passed_unchanged():
    env = make()
    assert env.action_space == spaces.Discrete(3)
    env.reset()
    env.step(2)
    assert env.unwrapped.last_action == 2


def test_multi_discrete_action_with_a_start_is_shifted_to_zero():
    env = make(action_space=spaces.MultiDiscrete([3, 4], start=[1, -2]))
    assert env.action_space == spaces.MultiDiscrete([3, 4])
    env.reset()
    env.step(np.array([0, 3]))
    assert env.unwrapped.last_action.tolist() == [1, 1]
    env.step(np.array([2, 0]))
    assert env.unwrapped.last_action.tolist() == [3, -2]
    assert env.unwrapped.action_space.contains(env.unwrapped.last_action)


def test_multi_binary_action_becomes_multi_discrete_of_twos():
    env = make(action_space=spaces.MultiBinary([2, 2]))
    assert env.action_space == spaces.MultiDiscrete([2, 2, 2, 2])
    env.reset()
    env.step(np.array([1, 0, 0, 1]))
    received = env.unwrapped.last_action
    assert received.tolist() == [[1, 0], [0, 1]]
    assert env.unwrapped.action_space.contains(received)


def test_bounded_box_action_is_rescaled_to_minus_one_one():
    low, high = np.array([0.0, -2.0], np.float32), np.array([10.0, 2.0], np.float32)
    env = make(action_space=spaces.Box(low, high, dtype=np.float32))
    assert env.action_space == spaces.Box(-1.0, 1.0, (2,), np.float32)
    env.reset()
    for action, received in [(-1.0, low), (1.0, high), (0.0, (low + high) / 2)]:
        env.step(np.full(2, action, np.float32))
        assert np.allclose(env.unwrapped.last_action, received)


def test_box_action_already_in_minus_one_one_is_not_rescaled():
    space = spaces.Box(-1.0, 1.0, (3,), np.float32)
    env = make(action_space=space)
    assert env.action_space == space
    env.reset()
    action = np.array([0.3, -0.7, 1.0], np.float32)
    env.step(action)
    assert np.array_equal(env.unwrapped.last_action, action)


@pytest.mark.parametrize(
    "space",
    [
        spaces.Box(-np.inf, np.inf, (2,), np.float32),
        spaces.Box(np.zeros(2, np.float32), np.array([1.0, np.inf], np.float32)),
        spaces.Tuple((spaces.Discrete(2), spaces.Discrete(3))),
    ],
    ids=["unbounded-box", "half-bounded-box", "tuple"],
)
def test_unsupported_action_space_says_what_is_accepted(space):
    accepted = "accepted: Discrete, MultiDiscrete, MultiBinary or bounded Box"
    with pytest.raises(envs.UnsupportedSpaceError, match=accepted):
        make(action_space=space)


# ---------------------------------------------------------------- episodes


def test_action_repeat_sums_rewards_and_stops_at_termination():
    env = make(action_repeat=2, episode_length=5)
    env.reset()
    results = [env.step(0) for _ in range(3)]
    # env steps give rewards 1..5: (1 + 2), (3 + 4), then 5 alone because the episode ends
    assert [reward for _, reward, _, _, _ in results] == [3.0, 7.0, 5.0]
    assert [terminated for _, _, terminated, _, _ in results] == [False, False, True]
    assert len(env.unwrapped.actions) == 5
    assert results[-1][4]["episode"]["r"] == 15 and results[-1][4]["episode"]["l"] == 5


def test_action_repeat_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        make(action_repeat=0)


def test_time_limit_truncates_after_that_many_env_steps():
    env = make(time_limit=3, episode_length=10)
    env.reset()
    flags = [env.step(0)[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (False, True)]

    env = make(time_limit=3, episode_length=10, action_repeat=2)
    env.reset()
    first, second = env.step(0), env.step(0)
    assert first[1:4] == (3.0, False, False)
    assert second[1:4] == (3.0, False, True)  # the third env step hits the limit in the middle of the repeat
    assert second[4]["episode"]["l"] == 3


def test_no_time_limit_keeps_the_envs_own_episode_end():
    env = make(time_limit=0, episode_length=4)
    env.reset()
    assert [env.step(0)[2] for _ in range(4)] == [False, False, False, True]


def test_episode_statistics_give_return_and_length_at_the_end_only():
    env = make(episode_length=3)
    env.reset()
    infos = [env.step(0)[4] for _ in range(3)]
    assert "episode" not in infos[0] and "episode" not in infos[1]
    assert infos[2]["episode"]["r"] == 1 + 2 + 3 and infos[2]["episode"]["l"] == 3
    env.reset()
    infos = [env.step(0)[4] for _ in range(3)]
    assert infos[2]["episode"]["r"] == 6 and infos[2]["episode"]["l"] == 3  # counts restart each episode


# ---------------------------------------------------------------- seeding


def rollout(env: gym.Env, steps: int = 5) -> tuple[list[np.ndarray], list[int]]:
    obs, _ = env.reset()
    observations, actions = [obs["vector"]], []
    for _ in range(steps):
        actions.append(int(env.action_space.sample()))
        observations.append(env.step(actions[-1])[0]["vector"])
    return observations, actions


def test_same_seed_gives_the_same_observations_and_random_actions():
    first_obs, first_actions = rollout(make(seed=7, episode_length=100), 20)
    second_obs, second_actions = rollout(make(seed=7, episode_length=100), 20)
    assert first_actions == second_actions
    assert all(np.array_equal(a, b) for a, b in zip(first_obs, second_obs, strict=True))


def test_different_seeds_give_different_observations_and_random_actions():
    first_obs, first_actions = rollout(make(seed=1, episode_length=100), 20)
    second_obs, second_actions = rollout(make(seed=2, episode_length=100), 20)
    assert first_actions != second_actions
    assert not np.array_equal(first_obs[0], second_obs[0])


def test_later_resets_continue_the_seeded_stream():
    a, b = make(seed=3), make(seed=3)
    first = a.reset()[0]["vector"]
    assert np.array_equal(b.reset()[0]["vector"], first)
    second = a.reset()[0]["vector"]
    assert np.array_equal(b.reset()[0]["vector"], second)
    assert not np.array_equal(first, second)  # the seed is used once, not at every reset


def test_explicit_reset_seed_wins_over_the_make_seed():
    obs = make(seed=3).reset(seed=11)[0]["vector"]
    assert np.array_equal(make(seed=4).reset(seed=11)[0]["vector"], obs)


# ---------------------------------------------------------------- frames


def test_frame_capture_keeps_one_frame_per_reset_and_step():
    env = make(capture_frames=True)
    assert env.render_mode == "rgb_array"
    env.reset()
    for _ in range(3):
        env.step(0)
    frames = env.get_wrapper_attr("frames")
    assert len(frames) == 4
    assert all(frame.shape == toy_envs.FRAME_SHAPE and frame.dtype == np.uint8 for frame in frames)
    assert [int(frame[0, 0, 0]) for frame in frames] == [0, 1, 2, 3]  # the toy frame shows the step count

    env.set_wrapper_attr("capturing", False)
    env.step(0)
    assert len(env.get_wrapper_attr("frames")) == 4


def test_without_frame_capture_there_is_no_render_mode():
    env = make()
    assert env.render_mode is None
    with pytest.raises(AttributeError):
        env.get_wrapper_attr("frames")


# ---------------------------------------------------------------- gymnasium's checker

# check_env warns, rightly, that it is given a wrapped env without a spec; nothing else may be reported
EXPECTED_CHECKER_WARNINGS = ("is different from the unwrapped version", "not having a spec")


@pytest.mark.parametrize("capture_frames", [False, True])
@pytest.mark.parametrize(
    "action_space",
    [
        spaces.Discrete(4, start=2),
        spaces.MultiBinary(3),
        spaces.Box(np.array([0.0, -5.0], np.float32), np.array([1.0, 5.0], np.float32)),
    ],
    ids=["discrete", "multi-binary", "box"],
)
def test_gymnasium_check_env_passes_on_the_wrapped_env(action_space, capture_frames):
    obs_space = spaces.Dict({
        "camera": image(20, 30, 3),
        "mission": spaces.Text(8),
        "state": spaces.Tuple((spaces.Discrete(3, start=1), spaces.Box(-1.0, 1.0, (2,), np.float32))),
        "map": spaces.MultiDiscrete([2, 3]),
    })
    env = make(obs_space=obs_space, action_space=action_space, capture_frames=capture_frames)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    messages = [str(warning.message) for warning in caught]
    unexpected = [message for message in messages if not any(text in message for text in EXPECTED_CHECKER_WARNINGS)]
    assert not unexpected


def test_seeded_reset_can_override_the_callers_first_seed():
    from envs.wrappers import SeededReset

    def first_obs(wrapper_seed, caller_seed, override):
        env = SeededReset(gym.make("forethought/KeyDoorVector-v0"), wrapper_seed, override=override)
        return env.reset(seed=caller_seed)[0]

    np.testing.assert_array_equal(first_obs(5, 1, override=True), first_obs(5, None, override=False))
    np.testing.assert_array_equal(first_obs(5, 1, override=False), first_obs(1, None, override=False))
