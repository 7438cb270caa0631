"""envs.make: user classes, gymnasium ids, the optional suites, built-in tasks, and errors that say what is accepted."""

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

import envs
from tests import toy_envs

TOY = "tests.toy_envs:SpaceEnv"


def test_module_class_id_makes_the_class_with_its_options():
    env = envs.make(TOY, seed=0, episode_length=2, obs_space=spaces.Discrete(5))
    assert isinstance(env.unwrapped, toy_envs.SpaceEnv)
    assert env.unwrapped.episode_length == 2
    assert env.observation_space["vector"].shape == (5,)
    env.reset()
    assert [env.step(0)[2] for _ in range(2)] == [False, True]


def test_module_class_that_is_not_a_gymnasium_env_is_refused():
    with pytest.raises(envs.UnknownEnvError, match=r"does not name a gymnasium\.Env subclass; expected 'module:Class'"):
        envs.make("tests.toy_envs:NotAnEnv")
    with pytest.raises(envs.UnknownEnvError, match=r"does not name a gymnasium\.Env subclass"):
        envs.make("tests.toy_envs:NoSuchClass")


def test_module_that_cannot_be_imported_is_named():
    with pytest.raises(envs.UnknownEnvError, match="cannot import module 'no_such_module' of env 'no_such_module:X'"):
        envs.make("no_such_module:X")


@pytest.mark.parametrize(
    ("env_id", "suggestion"),
    [
        ("forethought/PinPad-v0", r"forethought/PinPad\d-v0"),
        ("CartPol-v1", r"CartPole-v1"),
        ("MiniGrid-DoorKey-5x5-v9", r"MiniGrid-DoorKey-5x5-v0"),
    ],
)
def test_unknown_id_names_the_closest_known_ids(env_id, suggestion):
    with pytest.raises(envs.UnknownEnvError, match=rf"unknown env id '{env_id}'; closest known ids: .*{suggestion}"):
        envs.make(env_id)


def test_unknown_id_with_nothing_close_points_to_the_listing():
    with pytest.raises(envs.UnknownEnvError, match=r"see `forethought envs`.*'module:Class'"):
        envs.make("qqqqqqqqqqqqqqqqqqqqqqqq")


@pytest.mark.parametrize(
    ("env_id", "options", "needle"),
    [
        (TOY, {"bogus": 1}, "bogus"),
        (TOY, {"episode_length": 0}, "episode_length must be at least 1"),
        ("CartPole-v1", {"bogus": 1}, "bogus"),
    ],
    ids=["unknown-keyword", "constructor-value-error", "gymnasium-id"],
)
def test_option_the_constructor_refuses_is_an_env_error(env_id, options, needle):
    with pytest.raises(envs.EnvError, match=rf"env '{env_id}' refused its options .*{needle}") as info:
        envs.make(env_id, **options)
    assert not isinstance(info.value, envs.UnknownEnvError)


@pytest.mark.parametrize(
    ("module", "env_id"),
    [("crafter", "CrafterReward-v1"), ("minigrid", "MiniGrid-DoorKey-5x5-v0")],
)
def test_missing_suite_is_named_with_its_pip_extra(monkeypatch, module, env_id):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import crafter` fail as if it were not installed
    with pytest.raises(envs.MissingSuiteError, match=rf"pip install 'forethought\[{module}\]'"):
        envs.make(env_id)


def test_minigrid_gives_a_pixel_view_and_a_direction_vector():
    env = envs.make("MiniGrid-DoorKey-5x5-v0", seed=0)
    assert env.observation_space["image"] == spaces.Box(0, 255, (64, 64, 3), np.uint8)
    assert env.observation_space["vector"].shape == (4,)  # the agent's direction, one-hot
    assert isinstance(env.action_space, spaces.Discrete)
    obs, _ = env.reset()
    assert env.observation_space.contains(obs) and obs["vector"].sum() == 1
    obs = env.step(env.action_space.sample())[0]
    assert env.observation_space.contains(obs)


def test_crafter_gives_a_64_by_64_image():
    env = envs.make("CrafterReward-v1", seed=0)
    assert env.observation_space == spaces.Dict({"image": spaces.Box(0, 255, (64, 64, 3), np.uint8)})
    assert env.action_space == spaces.Discrete(17)
    obs, _ = env.reset()
    assert env.observation_space.contains(obs)
    obs, reward, *_ = env.step(0)
    assert env.observation_space.contains(obs) and isinstance(reward, float)


def test_gymnasium_id_gets_a_vector_and_its_time_limit_can_be_shortened():
    env = envs.make("CartPole-v1", seed=0, time_limit=3)
    assert env.observation_space["vector"].shape == (4,)
    obs, _ = env.reset()
    assert env.observation_space.contains(obs)
    results = [env.step(0) for _ in range(3)]
    assert [truncated for *_, truncated, _ in results] == [False, False, True]
    assert results[-1][4]["episode"]["l"] == 3


@pytest.mark.parametrize("task", envs.BUILTIN_TASKS, ids=lambda task: task.id)
def test_every_builtin_task_is_registered_and_made(task):
    assert task.id in gym.registry
    env = envs.make(task.id, seed=0)
    assert set(env.observation_space.spaces) == {task.kwargs["obs_type"]}
    obs, _ = env.reset()
    assert env.observation_space.contains(obs)
    assert env.observation_space.contains(env.step(env.action_space.sample())[0])


def test_installed_suites_reports_their_versions():
    versions = envs.installed_suites()
    assert set(versions) == {"minigrid", "crafter"}
    assert all(isinstance(version, str) for version in versions.values())  # both are installed in the test env


def test_importing_envs_does_not_import_torch():
    code = "import sys, envs; envs.make('CartPole-v1'); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "False"
