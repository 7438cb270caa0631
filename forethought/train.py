"""``forethought train``: run an agent on RLlib, log, evaluate, report, checkpoint and resume.

The run folder (forethought.run_folder) is the run: running the same command on the same folder resumes from
its newest checkpoint. Every ``train.eval_every`` env steps the greedy agent is evaluated on an env of its own
(forethought.evaluate.GreedyEvaluation), every ``train.report_every`` a report (forethought.report: open-loop
predictions and, for the hierarchical agent, the manager's goals decoded into observations) goes to
``report/step_<N>/`` and W&B; at the end the last evaluation is ``eval.json`` and the last report ``report/``.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from forethought.config import Config, ConfigError, env_kwargs, save_config
from forethought.console import log_path, route_library_logs, stderr_to_log
from forethought.evaluate import REPORT_NAME, GreedyEvaluation, episode_video, write_report
from forethought.loading import agent_config
from forethought.run_folder import MODULE_STATE, check_resume, latest_checkpoint, save_checkpoint
from forethought.signals import Stopped, StopRequests
from forethought.tracking import Tracker, check_wandb_key


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. NaN losses); the message names the step and the last checkpoint."""


def algorithm_config(config: Config) -> Any:
    """The RLlib config of a Forethought run."""
    from forethought.rllib.algorithm import ENV_NAME, ForethoughtConfig

    train, scale = config.train, config.scale
    env_config = {**env_kwargs(config), "seed": config.run.seed}
    return (
        ForethoughtConfig()
        .environment(ENV_NAME, env_config=env_config)
        .env_runners(num_env_runners=scale.num_env_runners, num_envs_per_env_runner=scale.num_envs_per_env_runner,
                     num_cpus_per_env_runner=scale.num_cpus_per_env_runner,  # type: ignore[arg-type]
                     num_gpus_per_env_runner=scale.num_gpus_per_env_runner,
                     custom_resources_per_env_runner=dict(scale.env_runner_resources),
                     rollout_fragment_length=train.rollout_length,
                     # no connector state to share (no observation filters): without this, RLlib asks every env
                     # runner for its connector state after each iteration, and waits for the one sampling beside
                     # learning to finish its fragment (about an eighth of the learner's time at ratio 64)
                     merge_env_runner_states=False, broadcast_env_runner_states=False)
        .learners(num_learners=scale.num_learners, num_gpus_per_learner=scale.num_gpus_per_learner)
        .fault_tolerance(restart_failed_env_runners=True)
        .debugging(seed=config.run.seed, log_level="ERROR")
        .reporting(min_sample_timesteps_per_iteration=0, min_time_s_per_iteration=0)
        .training(agent_config=agent_config(config), batch_size_B=train.batch_size,
                  batch_length_T=train.batch_length, train_ratio=train.train_ratio,
                  replay_capacity=train.replay_capacity, recent_fraction=train.recent_fraction,
                  recent_window=train.recent_window, reward_fraction=train.reward_fraction,
                  reward_starts=train.reward_starts, terminal_fraction=train.terminal_fraction,
                  prefill_steps=train.prefill,
                  learner_threads=scale.learner_threads, env_runner_threads=scale.env_runner_threads,
                  compile_learner=train.compile, learner_precision=train.precision,
                  sample_beside_learning=train.sample_beside_learning)
    )


def check_setup(config: Config) -> None:
    """Build the agent on the meta device and size the replay before any Ray work: bad combinations
    (image sizes the CNN cannot take, GRU blocks that do not divide the state, a replay too small for
    one sequence) fail here with one sentence."""
    import torch

    import envs
    from agents import build_agent
    from forethought.rllib.algorithm import replay_lanes
    from forethought.spaces import action_spec, obs_shapes

    config_of_agent = agent_config(config)
    probe = envs.make(**env_kwargs(config))
    try:
        spec = action_spec(probe.action_space)
        with torch.device("meta"):
            build_agent(obs_shapes(probe.observation_space), spec, config_of_agent)
    except (ValueError, AssertionError) as error:
        raise ConfigError(f"the agent cannot be built for env '{config.env.id}' with this config: {error}") from None
    finally:
        probe.close()
    train, scale = config.train, config.scale
    lanes = replay_lanes(scale.num_env_runners, scale.num_envs_per_env_runner)
    if train.replay_capacity // lanes < train.batch_length:
        raise ConfigError(
            f"train.replay_capacity={train.replay_capacity} keeps {train.replay_capacity // lanes} steps per env "
            f"stream ({lanes} streams), fewer than train.batch_length={train.batch_length}; accepted: at least "
            f"{train.batch_length * lanes}")


def start_ray(config: Config) -> None:
    """Connect to the configured cluster, or start a local Ray sized for this machine."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if ray.is_initialized():
        return
    if config.scale.address:
        ray.init(address=config.scale.address, log_to_driver=False,
                 runtime_env=code_runtime_env() if config.scale.ship_code else None)
    else:
        # "local" always starts a new Ray here, never joining one that happens to run on this machine
        ray.init(address="local", num_cpus=config.scale.num_cpus or None, include_dashboard=False,
                 log_to_driver=False, object_store_memory=512 * 2**20)


def check_resources(config: Config) -> None:
    """Refuse custom env-runner resources that no node of the cluster offers (the env runners would wait for them
    forever)."""
    import ray

    offered = ray.cluster_resources()
    for name, amount in config.scale.env_runner_resources.items():
        if offered.get(name, 0.0) < amount:
            custom = sorted(key for key in offered if key not in ("CPU", "GPU", "memory", "object_store_memory")
                            and not key.startswith("node:"))
            raise ConfigError(f"scale.env_runner_resources asks for {amount:g} of resource '{name}', which the "
                              f"cluster offers {offered.get(name, 0.0):g} of (its custom resources: "
                              f"{', '.join(custom) or 'none'}); start a node with `ray start --resources` that has it")


def code_runtime_env() -> dict[str, Any]:
    """Ray's runtime environment that uploads this code (forethought, agents, envs, world_models) to every node
    of a cluster, so that its nodes need only the dependencies installed (torch, ray[rllib], gymnasium, ...)."""
    import agents
    import envs
    import forethought
    import world_models

    folders = [str(Path(module.__file__).resolve().parent) for module in (forethought, agents, envs, world_models)
               if module.__file__]
    return {"py_modules": folders, "excludes": ["__pycache__", "*.pyc"]}


def register_env() -> None:
    """Make ``envs`` known to RLlib's env runners under one name; the options come from env_config."""
    from ray.tune.registry import register_env as register

    import envs
    from envs.wrappers import SeededReset
    from forethought.rllib.algorithm import ENV_NAME

    copies = itertools.count()  # envs made in this process (RLlib's vector_index is 0 for every copy)

    def create(env_config: dict[str, Any]) -> Any:
        options = dict(env_config)
        seed = options.pop("seed")
        env = envs.make(options.pop("env_id"), **options)
        # every copy in every runner its own stream; RLlib's own reset seeds (seed + runner index,
        # plus the copy's index) would repeat across runners and across nearby run seeds
        unique = seed + 100_003 * getattr(env_config, "worker_index", 0) + next(copies)
        return SeededReset(env, unique, override=True)

    register(ENV_NAME, create)


def _record(algo: Any, result: dict[str, Any], step: int, seconds: float, start_step: int) -> dict[str, Any]:
    learner = result.get("learners", {}).get("default_policy", {})
    record: dict[str, Any] = {"step": step, "time_s": round(seconds, 2), "episodes": algo.counters["episodes"]}
    if algo.recent_episodes:  # the last (up to) 100 finished episodes
        returns, lengths = zip(*algo.recent_episodes, strict=True)
        record["episode/return"] = float(np.mean(returns))
        record["episode/length"] = float(np.mean(lengths))
    record["perf/env_steps_per_s"] = (step - start_step) / max(seconds, 1e-9)
    record["perf/train_ratio"] = result.get("perf/train_ratio")
    record["perf/updates"] = result.get("counters/updates")
    for key in ("replay/rewarded_windows", "replay/rewarded_steps"):
        record[key] = result.get(key)
    for key, value in learner.items():
        if "/" in key and isinstance(value, (int, float)):
            record[key] = value
    record = {k: (float(v) if isinstance(v, (np.floating, np.integer)) else v) for k, v in record.items()}
    # no episode ended in this window: say nothing rather than NaN (which is not JSON)
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in record.items()}


def _report(config: Config, algo: Any, agent: Any, folder: Path, tracker: Tracker, step: int,
            filmed: dict[str, Any] | None) -> list[Path]:
    """The world model's report on 4 replayed sequences (open-loop predictions, decoded goals) and the filmed
    first episode of the greedy evaluation, into ``folder``; their videos go to W&B at ``step``."""
    import torch

    from forethought.report import write_report as write_predictions

    fmt, fps = config.eval.video_format, config.eval.video_fps
    paths: list[Path] = []
    # the report runs the networks at another batch size: eagerly, not recompiled for it
    with torch.compiler.set_stance("force_eager"):
        if algo.replay.can_sample(config.train.batch_length):
            paths = write_predictions(agent, algo.replay.sample(4, config.train.batch_length), folder, fmt, fps)
    videos = {f"report/{p.stem.removeprefix('report_')}": p for p in paths if p.suffix != ".npz"}
    if filmed and filmed["frames"]:
        videos["eval/video"] = episode_video(filmed, folder / f"eval_episode0.{fmt}", fps)
        paths.append(videos["eval/video"])
    tracker.media(step, videos)
    return paths


def _finish(config: Config, algo: Any, tracker: Tracker, evaluation: GreedyEvaluation | None, step: int
            ) -> float | None:
    """The final report (report/) and eval.json of the final greedy evaluation (made here unless the loop made it
    at this step); the final greedy return, or None when train.eval_episodes is 0."""
    agent = algo.learner_agent()
    filmed = None
    if evaluation is not None:
        filmed = evaluation.last if evaluation.last_step == step else evaluation(agent, step,
                                                                                 config.train.eval_episodes, film=True)
    paths = _report(config, algo, agent, Path(config.run.dir) / "report", tracker, step, filmed)
    if paths:
        print(f"report: {', '.join(str(p) for p in paths)}")
    if evaluation is None:
        return None
    report = write_report(config, evaluation.last, f"agent ({config.agent.name}, greedy)",
                          Path(config.run.dir) / REPORT_NAME, {"env_step": step, "first_seed": evaluation.last_seed})
    tracker.summary({"eval/return": report["return"]["mean"], "eval/return_std": report["return"]["std"]})
    return float(report["return"]["mean"])


class Training:
    """One run's training, one round at a time: ``train`` drives it with a progress bar and signals, a Tune trial
    (forethought.sweep) one logged record per Tune step. Building it checks the setup, builds the algorithm and
    resumes from the run folder's newest checkpoint."""

    def __init__(self, config: Config, console: bool = True) -> None:
        self.config = config
        run_dir = self.run_dir = Path(config.run.dir)
        check_resume(config, run_dir)
        check_setup(config)
        check_wandb_key(config)
        save_config(config, run_dir / "config.yaml")
        with stderr_to_log(run_dir):  # Ray's and RLlib's start-up notes, some printed by native code
            start_ray(config)
            route_library_logs(run_dir)  # after Ray's import, which gives its logger a console handler
            check_resources(config)
            register_env()
            try:
                algo = self.algo = algorithm_config(config).build_algo()
            except Exception as error:  # an actor that cannot start: RLlib raises whatever follows from it
                shipped = "" if not config.scale.address or config.scale.ship_code else (
                    "; with scale.ship_code=false every node needs forethought installed")
                raise ConfigError(f"Ray could not start the run's env runners or learners ({type(error).__name__}: "
                                  f"{str(error).strip().splitlines()[0] if str(error).strip() else 'no message'}); "
                                  f"their errors are in {log_path(run_dir)}{shipped}") from None
        print(f"replay: {config.train.replay_capacity:,} steps, {algo.replay.nbytes / 2**20:,.1f} MiB allocated")
        if config.train.compile:
            print("compile: the learner's update compiles at its first update (2 to 3 minutes on 2 CPU cores the "
                  "first time, seconds once torch's cache holds it; train.compile=false runs eagerly)")
        checkpoint = latest_checkpoint(run_dir)
        if checkpoint:
            try:
                algo.restore_from_path(str((checkpoint / "algorithm").resolve()))
                algo.load_extra(checkpoint)
            except Exception as error:  # RLlib, pickle and numpy raise many kinds for a damaged folder
                algo.stop()
                raise ConfigError(f"checkpoint '{checkpoint}' cannot be restored ({type(error).__name__}: {error}); "
                                  "move it away to resume from an older one, or use another run.dir") from None
            print(f"resumed from {checkpoint} at {algo.counters['env_steps']:,} env steps "
                  f"with {len(algo.replay):,} steps in replay")
        self.start_step = self.step = step = algo.counters["env_steps"]
        self.next_log = step + config.train.log_every
        self.next_checkpoint = step + config.train.checkpoint_every
        self.checkpoint_step = step if checkpoint else -1
        self.start = time.perf_counter()
        self.record: dict[str, Any] = {}
        with stderr_to_log(run_dir):  # W&B's start-up notes
            try:
                self.tracker = Tracker(run_dir, config, console=console, resume_step=step)
            except ConfigError:  # W&B online and its server out of reach: nothing trained, nothing lost
                algo.stop()
                raise
        self.evaluation = GreedyEvaluation(config) if config.train.eval_episodes else None
        every, report_every = config.train.eval_every, config.train.report_every
        self.next_eval = (step // every + 1) * every if every else None
        self.next_report = (step // report_every + 1) * report_every if report_every else None
        self.closed = False

    @property
    def done(self) -> bool:
        """Whether the run has its train.steps env steps."""
        return self.step >= self.config.train.steps

    def advance(self, stopping: Callable[[], bool] = lambda: False) -> dict[str, Any] | None:
        """One round of sampling and updates, then what falls due at its env step: a greedy evaluation, a report,
        a record, a checkpoint. ``stopping`` (read after the round) says a stop was asked for: the round's record
        and checkpoint are written and nothing else starts. Returns the record if one was logged."""
        config, algo, run_dir = self.config, self.algo, self.run_dir
        try:
            result = algo.train()
        except (FloatingPointError, RuntimeError) as error:
            # NaNs surface as our FloatingPointError, or as torch's complaint when sampling from them
            if not isinstance(error, FloatingPointError) and not any(
                    word in str(error).lower() for word in ("nan", " inf")):
                raise
            self.close()
            last = latest_checkpoint(run_dir)
            raise TrainingError(f"training stopped at env step {self.step:,}: {str(error).split(';')[0]}; the last "
                                f"checkpoint is {last or 'none'} (lower the learning rates, or check the env's "
                                "rewards and observations)") from None
        halt = stopping()
        step = self.step = algo.counters["env_steps"]
        record = self.record = _record(algo, result, step, time.perf_counter() - self.start, self.start_step)
        final = self.done
        reporting = not halt and not final and self.next_report is not None and step >= self.next_report
        evaluation = self.evaluation
        evaluated = evaluation is not None and not halt and (
            final or reporting or (self.next_eval is not None and step >= self.next_eval))
        agent = algo.learner_agent() if evaluated or reporting else None
        filmed = None
        if evaluated:  # greedy episodes on envs and seeds of their own; the last one is the final return
            assert evaluation is not None
            filmed = evaluation(agent, step, config.train.eval_episodes, film=reporting or final)
            record.update(evaluation.metrics(filmed))
            every = config.train.eval_every
            self.next_eval = (step // every + 1) * every if every else None
        if reporting:  # the final report is written by finish(), into report/
            _report(config, algo, agent, run_dir / "report" / f"step_{step:010d}", self.tracker, step, filmed)
            self.next_report = (step // config.train.report_every + 1) * config.train.report_every
        logged = evaluated or step >= self.next_log or final or halt
        if logged:
            self.tracker.log(record)
            self.next_log = step + config.train.log_every
        if step >= self.next_checkpoint or final or halt:
            self.save()
        return record if logged else None

    def save(self) -> Path:
        """A checkpoint of this env step (written once), also a W&B artifact when asked for."""
        if self.checkpoint_step != self.step:
            self.tracker.checkpoint(save_checkpoint(self.algo, self.run_dir, self.step) / MODULE_STATE, self.step)
            self.checkpoint_step = self.step
            self.next_checkpoint = self.step + self.config.train.checkpoint_every
        checkpoint = latest_checkpoint(self.run_dir)
        assert checkpoint is not None
        return checkpoint

    def interrupt(self) -> Path:
        """Stop before train.steps: checkpoint this env step (unless written), close; returns the checkpoint."""
        checkpoint = self.save()
        self.close()
        return checkpoint

    def finish(self) -> dict[str, Any]:
        """The final report and greedy evaluation (see _finish), the summary, and close; returns the final record."""
        config, algo, step, record = self.config, self.algo, self.step, self.record
        greedy = _finish(config, algo, self.tracker, self.evaluation, step)
        if greedy is not None:
            record["eval/return"] = greedy
        record["summary"] = {
            "env_steps": step, "wall_s": time.perf_counter() - self.start,
            "env_steps_per_s": record.get("perf/env_steps_per_s") or 0.0, "updates": int(algo.counters["updates"]),
            "exploring_return": record.get("episode/return"), "exploring_episodes": len(algo.recent_episodes),
            "greedy_return": greedy, "greedy_episodes": config.train.eval_episodes, "run_dir": str(self.run_dir),
            "wandb_dir": self.tracker.wandb_dir, "wandb_mode": config.run.wandb}
        self.close()
        return record

    def close(self) -> None:
        """Finish the W&B run and stop the algorithm's actors (once)."""
        if self.closed:
            return
        self.closed = True
        if self.evaluation is not None:
            self.evaluation.close()
        with stderr_to_log(self.run_dir):
            self.tracker.finish()
            self.algo.stop()


def train(config: Config, progress: bool = True) -> dict[str, Any]:
    """Train (or resume) the configured run and evaluate it; returns the final record. SIGTERM or SIGINT stop it
    at the end of the round with a checkpoint (forethought.signals.Stopped)."""
    session = Training(config, console=progress)
    stop = StopRequests()
    with stop, tqdm(total=config.train.steps, initial=session.step, unit="step", desc="train",
                    disable=not progress, dynamic_ncols=True) as bar:
        while not session.done and not stop.signum:
            session.advance(lambda: stop.signum is not None)
            bar.update(session.step - bar.n)
            episode_return = session.record.get("episode/return")
            bar.set_postfix({"return": "-" if episode_return is None else f"{episode_return:.2f}",
                             "ratio": f"{session.record['perf/train_ratio']:.1f}"})
    if stop.signum:
        checkpoint = session.interrupt()
        raise Stopped(stop.signum, f"stopped by {stop.name} at env step {session.step:,}; checkpoint {checkpoint}; "
                                   "run the same command to resume")
    return session.finish()
