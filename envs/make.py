"""``make``: one entry point for built-in tasks, gymnasium ids, optional suites and user classes."""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

from envs import suites
from envs.errors import EnvError, UnknownEnvError
from envs.wrappers import ActionRepeat, DictObservation, FrameCapture, SeededReset, adapt_actions

NAMESPACE = "forethought"


@dataclass(frozen=True)
class BuiltinTask:
    """A built-in task as listed by ``forethought envs``."""

    id: str
    entry_point: str
    kwargs: dict[str, Any]
    max_episode_steps: int
    description: str


def _builtin_tasks() -> list[BuiltinTask]:
    tasks = []
    for n in range(3, 9):
        for obs_type, name in (("image", "PinPad"), ("vector", "PinPadVector")):
            tasks.append(BuiltinTask(
                f"{NAMESPACE}/{name}{n}-v0", "envs.pinpad:PinPad", {"num_pads": n, "obs_type": obs_type}, 2000,
                f"Visual Pin Pad, {n} pads in a hidden order, {obs_type} observations",
            ))
    for obs_type, name in (("image", "KeyDoor"), ("vector", "KeyDoorVector")):
        tasks.append(BuiltinTask(
            f"{NAMESPACE}/{name}-v0", "envs.keydoor:KeyDoor", {"obs_type": obs_type}, 100,
            f"key, then locked door, then goal in two rooms, {obs_type} observations",
        ))
    for rooms, limit in KEY_CHAINS.items():
        for obs_type, name in (("image", "KeyChain"), ("vector", "KeyChainVector")):
            tasks.append(BuiltinTask(
                f"{NAMESPACE}/{name}{rooms}-v0", "envs.keychain:KeyChain", {"rooms": rooms, "obs_type": obs_type},
                limit, f"{rooms} rooms in a row, each door opened by the key of the room before it, goal in the "
                       f"last room, {obs_type} observations",
            ))
    return tasks


#: registered key chains: rooms -> steps per episode (a random policy succeeds in under 1% of episodes)
KEY_CHAINS = {3: 120, 4: 200}

BUILTIN_TASKS = _builtin_tasks()


def register_all() -> None:
    """Register the built-in tasks and the Crafter ids with gymnasium (idempotent)."""
    for task in BUILTIN_TASKS:
        if task.id not in gym.registry:
            gym.register(task.id, entry_point=task.entry_point, kwargs=task.kwargs,
                         max_episode_steps=task.max_episode_steps)
    for crafter_id in suites.CRAFTER_IDS:
        if crafter_id not in gym.registry:
            gym.register(crafter_id, entry_point="envs.suites:CrafterEnv",
                         kwargs={"reward": crafter_id == "CrafterReward-v1"})


def load_class(spec: str) -> type[gym.Env]:
    """Import ``module:Class`` (also from the working folder) and check that it is a gymnasium env class."""
    module_name, _, class_name = spec.partition(":")
    if os.getcwd() not in sys.path:  # a user's own module in the folder they run from
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise UnknownEnvError(f"cannot import module '{module_name}' of env '{spec}': {error}") from error
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, gym.Env)):
        raise UnknownEnvError(f"'{spec}' does not name a gymnasium.Env subclass; expected 'module:Class'")
    return cls


def _unknown(env_id: str) -> UnknownEnvError:
    close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.5)
    hint = f"closest known ids: {', '.join(close)}" if close else "see `forethought envs` for the built-in tasks"
    return UnknownEnvError(
        f"unknown env id '{env_id}'; {hint} (also accepted: any registered gymnasium id, "
        "MiniGrid and Crafter ids, or 'module:Class' for your own env)"
    )


def _make_base(env_id: str, render_mode: str | None, time_limit: int | None, options: dict[str, Any]) -> gym.Env:
    if env_id.partition(":")[2].isidentifier():  # module:Class (gymnasium's module:Id has a '-v')
        env = load_class(env_id)(**options, **({"render_mode": render_mode} if render_mode else {}))
        return gym.wrappers.TimeLimit(env, time_limit) if time_limit else env
    suite = suites.suite_of(env_id)
    if suite == "minigrid":
        if env_id not in gym.registry:
            suites.import_suite("minigrid")
        if env_id not in gym.registry:
            raise _unknown(env_id)
        return suites.make_minigrid(env_id, render_mode, time_limit, **options)
    if env_id not in gym.registry:
        raise _unknown(env_id)
    return gym.make(env_id, render_mode=render_mode, max_episode_steps=time_limit, **options)


def make(
    env_id: str,
    seed: int | None = None,
    *,
    image_size: tuple[int, int] = (64, 64),
    action_repeat: int = 1,
    time_limit: int | None = None,
    capture_frames: bool = False,
    **options: Any,
) -> gym.Env:
    """Make any supported env with Forethought's dict observations and action spaces.

    Args:
        env_id: a built-in id (``forethought/...``), any registered gymnasium id, a MiniGrid
            or Crafter id, or ``module:Class`` naming a gymnasium.Env subclass.
        seed: seeds the first reset and the action space; later resets continue that stream.
        image_size: (height, width) that image observations are resized to.
        action_repeat: env steps per agent step; rewards are summed.
        time_limit: episode limit in env steps; None or 0 keeps the env's own limit.
        capture_frames: render every step into ``env.get_wrapper_attr('frames')`` for videos.
        **options: keyword arguments for the env's constructor.
    """
    register_all()
    render_mode = "rgb_array" if capture_frames else None
    try:
        env = _make_base(env_id, render_mode, time_limit or None, dict(options))
    except EnvError:
        raise
    except (TypeError, ValueError) as error:  # an option the env's constructor refuses
        raise EnvError(f"env '{env_id}' refused its options {options}: {error}") from error
    if action_repeat < 1:
        raise EnvError(f"action_repeat must be a whole number of at least 1, got {action_repeat!r}")
    env = adapt_actions(env)
    env = gym.wrappers.RecordEpisodeStatistics(env)  # inside action repeat: lengths count env steps
    if action_repeat != 1:
        env = ActionRepeat(env, action_repeat)
    env = DictObservation(env, image_size)
    if capture_frames:
        env = FrameCapture(env)
    return SeededReset(env, seed)


def installed_suites() -> dict[str, str | None]:
    """Each optional suite with its installed version, or None where it is missing."""
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for name, (module, _, _) in suites.SUITES.items():
        try:
            versions[name] = metadata.version(module)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions
