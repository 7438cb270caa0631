"""``forethought eval RUN_DIR_OR_CHECKPOINT``: a trained agent's episodes, from its checkpoint alone.

Only the agent is loaded (no replay, no optimisers; Ray only with ``eval.workers``). The run folder's
``config.yaml`` is the base config; overrides may change what is evaluated (``env.*``, ``eval.*``,
``run.*``, ``scale.*``) but not the agent. Another env is accepted when its observation and action spaces
are the run's. Episode i starts from seed ``run.seed + i``, so a report is the same in one process and on
any number of Ray workers; it goes to ``<run>/eval/<checkpoint>_<policy>_<env>_seed<S>.json``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from forethought import loading, run_folder
from forethought.config import Config, ConfigError, env_kwargs, load_config
from forethought.evaluate import AgentPolicy, Policy, RandomPolicy, make_env, run_episodes, write_report

FIXED_SECTIONS = ("agent", "train")


def resolve(target: Path, overrides: list[str]) -> tuple[Config, Config, Path]:
    """(config to evaluate with, the run's own config, checkpoint) of a run folder or checkpoint folder."""
    run_dir, checkpoint = run_folder.find_checkpoint(target)
    run_config = load_config([str(run_dir / "config.yaml")], [f"run.dir={run_dir}"])
    config = load_config([str(run_dir / "config.yaml")], [f"run.dir={run_dir}", *overrides])
    before, now = run_config.model_dump(mode="json"), config.model_dump(mode="json")
    for section in FIXED_SECTIONS:
        changed = sorted(k for k in now[section] if now[section][k] != before[section][k])
        if changed:
            raise ConfigError(f"{section}.{changed[0]} cannot change when evaluating a checkpoint (the agent is the "
                              "checkpoint's); what may: env.*, eval.*, run.*, scale.*")
    if config.eval.step:
        if checkpoint.resolve() == target.resolve() and run_folder.checkpoint_step(checkpoint) != config.eval.step:
            raise ConfigError(f"eval.step={config.eval.step} asks for another checkpoint than '{target}'; give the run "
                              "folder with eval.step, or the checkpoint folder alone")
        checkpoint = run_folder.find_checkpoint(run_dir, config.eval.step)[1]
    return config, run_config, checkpoint


def check_spaces(config: Config, run_config: Config) -> None:
    """Refuse an env whose observation or action space is not the one the checkpoint's agent was trained on."""
    import envs
    from forethought.spaces import action_spec, obs_shapes

    if env_kwargs(config) == env_kwargs(run_config):
        return

    def spaces(of: Config) -> tuple[Any, Any]:
        env = envs.make(**env_kwargs(of))
        try:
            return obs_shapes(env.observation_space), action_spec(env.action_space)
        finally:
            env.close()

    (obs, actions), (trained_obs, trained_actions) = spaces(config), spaces(run_config)
    if (obs, actions) != (trained_obs, trained_actions):
        raise run_folder.CheckpointError(
            f"env '{config.env.id}' has observations {obs} and {actions.kind} actions {actions.sizes}; the "
            f"checkpoint's agent was trained on '{run_config.env.id}' with observations {trained_obs} and "
            f"{trained_actions.kind} actions {trained_actions.sizes}")


def play(config: Config, run_config: Config, weights: dict[str, Any], indices: list[int], progress: bool,
         threads: int = 0) -> dict[str, Any]:
    """Episodes ``indices`` of ``config.eval.policy`` (the agent with ``weights``, or random) in this process."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    env = make_env(config, capture_frames=config.eval.video and 0 in indices)
    try:
        policy: Policy
        if config.eval.policy == "random":
            policy = RandomPolicy(env.action_space)
        else:
            agent = loading.load_agent(weights, run_config, env.observation_space, env.action_space)
            film = config.eval.video and hasattr(agent, "goal_observation")
            policy = AgentPolicy(agent, explore=config.eval.policy == "sampled", film_goals=film)
        return run_episodes(env, policy, indices, progress, seed=config.run.seed)
    finally:
        env.close()


def play_on_ray(config: Config, run_config: Config, weights: dict[str, Any], workers: int) -> dict[str, Any]:
    """The same episodes as ``play``, split over ``workers`` Ray tasks of one CPU each (the weights travel
    through Ray's object store: no shared disk needed), merged in order."""
    import time

    import ray

    from forethought.train import start_ray

    started = not ray.is_initialized()
    start_ray(config)
    try:
        task = ray.remote(num_cpus=1)(play)
        episodes = list(range(config.eval.episodes))
        shares = [episodes[i::workers] for i in range(workers) if episodes[i::workers]]
        begin = time.perf_counter()
        shared = ray.put(weights)
        try:
            parts = ray.get([task.remote(config, run_config, shared, share, False, 1) for share in shares])
        except ray.exceptions.RayTaskError as error:  # weights that do not fit: the same sentence as here
            if isinstance(error.cause, run_folder.CheckpointError):
                raise error.cause from None
            raise
        seconds = time.perf_counter() - begin
    finally:
        if started:
            ray.shutdown()
    by_index = {i: (r, n) for part in parts for i, r, n in zip(part["indices"], part["returns"], part["lengths"],
                                                                 strict=True)}
    filmed = next((part for part in parts if 0 in part["indices"]), parts[0])
    return {"indices": episodes, "returns": [by_index[i][0] for i in episodes],
            "lengths": [by_index[i][1] for i in episodes], "seconds": seconds, "frames": filmed["frames"],
            "goal_frames": filmed["goal_frames"]}


def evaluate_checkpoint(target: Path, overrides: list[str], progress: bool = True) -> dict[str, Any]:
    """Evaluate a run folder's checkpoint (or a checkpoint folder) as ``eval.*`` says; write and return the
    report."""
    config, run_config, checkpoint = resolve(target, overrides)
    check_spaces(config, run_config)
    weights = {} if config.eval.policy == "random" else loading.read_weights(checkpoint)
    if config.eval.workers:
        result = play_on_ray(config, run_config, weights, config.eval.workers)
    else:
        result = play(config, run_config, weights, list(range(config.eval.episodes)), progress)
    slug = re.sub(r"[^\w.-]+", "-", config.env.id).strip("-")
    path = Path(config.run.dir) / "eval" / f"{checkpoint.name}_{config.eval.policy}_{slug}_seed{config.run.seed}.json"
    extra = {"agent": run_config.agent.name, "checkpoint": str(checkpoint),
             "checkpoint_step": run_folder.checkpoint_step(checkpoint), "trained_env": run_config.env.id,
             "workers": config.eval.workers}
    return write_report(config, result, config.eval.policy, path, extra)
