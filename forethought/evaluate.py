"""Run a policy for N episodes and write a JSON report (and optionally a video) into the run folder."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from tqdm import tqdm

import envs
from forethought.config import Config, env_kwargs, save_config
from forethought.stats import summarize
from forethought.video import write_video

REPORT_NAME = "eval.json"


class Policy(Protocol):
    """Maps an observation dict to an action; ``reset`` is called at the start of every episode, with the
    episode's seed where episodes are seeded one by one."""

    def reset(self, seed: int | None = None) -> None: ...

    def __call__(self, obs: dict[str, np.ndarray]) -> Any: ...


class RandomPolicy:
    """Samples uniformly from the action space; seeded through the space by ``envs.make``."""

    def __init__(self, action_space: gym.Space):
        self.action_space = action_space

    def reset(self, seed: int | None = None) -> None:
        """Nothing to forget between episodes; a seed reseeds the action space."""
        if seed is not None:
            self.action_space.seed(seed)

    def __call__(self, obs: dict[str, np.ndarray]) -> Any:
        return self.action_space.sample()


class AgentPolicy:
    """Acts with a trained agent, one env, carrying its recurrent state through the episode.

    With ``film_goals`` (a hierarchical agent whose world model decodes images) it also keeps, for the episode
    being filmed, the decoded image of the goal it holds at every step.
    """

    def __init__(self, agent: Any, explore: bool = False, film_goals: bool = False):
        self.agent, self.explore = agent, explore
        self.state: Any = None
        self.first = True
        self.film_goals = film_goals
        self.goal_frames: list[np.ndarray] = []

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode: the agent's initial state (and, given a seed, its sampling stream)."""
        import torch

        if seed is not None:
            torch.manual_seed(seed)
        self.state = self.agent.initial_state(1)
        self.first = True

    def __call__(self, obs: dict[str, np.ndarray]) -> Any:
        import torch

        device = self.state["deter"].device
        batch = {k: torch.as_tensor(np.asarray(v), device=device).unsqueeze(0) for k, v in obs.items()}
        action, self.state = self.agent.act(batch, self.state, self.explore, torch.tensor([self.first], device=device))
        self.first = False
        if self.film_goals:
            images = [v for v in self.agent.goal_observation(self.state["goal"]).values() if v.dim() == 4]
            if images:
                self.goal_frames.append(images[0][0].cpu().numpy())
        return action[0].cpu().numpy()


def make_env(config: Config, capture_frames: bool = False) -> gym.Env:
    """The configured env, seeded with the run's seed."""
    return envs.make(**env_kwargs(config), seed=config.run.seed, capture_frames=capture_frames)


def run_episodes(env: gym.Env, policy: Policy, episodes: int | Sequence[int], progress: bool = True,
                 seed: int | None = None) -> dict[str, Any]:
    """Play ``episodes`` episodes (a count, or the indices of the episodes to play); return per-episode returns
    and lengths (env steps), the timing and the frames of episode 0 when the env captures them.

    With ``seed``, episode i starts from ``env.reset(seed=seed + i)`` and ``policy.reset(seed + i)``: each
    episode is the same wherever and in whatever order it runs. Without, the env's own stream continues.
    """
    indices = list(range(episodes)) if isinstance(episodes, int) else list(episodes)
    returns: list[float] = []
    lengths: list[int] = []
    frames: list[np.ndarray] = []
    capturing = env.get_wrapper_attr("capturing") if _has_frames(env) else False
    start = time.perf_counter()
    with tqdm(total=len(indices), unit="ep", desc="eval", disable=not progress, dynamic_ncols=True) as bar:
        for index in indices:
            filmed = capturing and index == 0
            if _has_frames(env):
                env.set_wrapper_attr("capturing", filmed)
            obs, _ = env.reset(seed=None if seed is None else seed + index)
            policy.reset(None if seed is None else seed + index)
            while True:
                obs, _, terminated, truncated, info = env.step(policy(obs))
                if terminated or truncated:
                    break
            returns.append(float(info["episode"]["r"]))
            lengths.append(int(info["episode"]["l"]))
            if filmed:  # only the first episode is filmed
                frames = list(env.get_wrapper_attr("frames"))
                env.set_wrapper_attr("capturing", False)
                if isinstance(policy, AgentPolicy) and policy.film_goals:
                    policy.film_goals = False
            bar.update(1)
            bar.set_postfix(ret=f"{np.mean(returns):.2f}")
    seconds = time.perf_counter() - start
    goal_frames = policy.goal_frames if isinstance(policy, AgentPolicy) else []
    return {"indices": indices, "returns": returns, "lengths": lengths, "seconds": seconds, "frames": frames,
            "goal_frames": goal_frames}


EVAL_SEEDS = 1_000_000_000
"""Seeds of the greedy evaluations during training start here, far from the training envs' (the run's seed
plus 100,003 per env runner and one per env copy)."""


class GreedyEvaluation:
    """Greedy episodes of the training agent on an env of their own, every time it is called.

    The episodes of the evaluation at env step N are seeded ``EVAL_SEEDS + 10**7 * run.seed + N + i``:
    never a training seed, different episodes at every evaluation, the same ones when a run is repeated or
    resumed. The global torch random state is restored afterwards, so evaluating does not change training.
    """

    def __init__(self, config: Config):
        self.config = config
        try:  # an env that renders can film the first episode of an evaluation
            self.env = envs.make(**env_kwargs(config), capture_frames=True)
            self.env.set_wrapper_attr("capturing", False)
        except (envs.EnvError, ValueError):
            self.env = envs.make(**env_kwargs(config))
        self.last_step: int | None = None
        self.last_seed = 0
        self.last: dict[str, Any] = {}

    def __call__(self, agent: Any, step: int, episodes: int, film: bool = False) -> dict[str, Any]:
        """Play ``episodes`` greedy episodes (``film``: keep the frames of the first, and for a hierarchical agent
        its decoded goals); the result of ``run_episodes`` (kept as ``last``)."""
        import torch

        if film and _has_frames(self.env):
            self.env.set_wrapper_attr("capturing", True)
        policy = AgentPolicy(agent, film_goals=film and hasattr(agent, "goal_observation"))
        seed = EVAL_SEEDS + 10**7 * self.config.run.seed + step
        # the networks run at batch size 1 here: eagerly, not recompiled for it
        with torch.random.fork_rng(devices=[]), torch.compiler.set_stance("force_eager"):
            result = run_episodes(self.env, policy, episodes, progress=False, seed=seed)
        self.last_step, self.last, self.last_seed = step, result, seed
        return result

    @staticmethod
    def metrics(result: dict[str, Any]) -> dict[str, float]:
        """``eval/return`` and ``eval/length`` (means over the episodes) and the return's spread."""
        returns = summarize(result["returns"])  # the reports' statistics: std with ddof=1, 0 for one episode
        return {"eval/return": float(returns["mean"] or 0.0), "eval/length": float(np.mean(result["lengths"])),
                "eval/return_std": float(returns["std"] or 0.0)}

    def close(self) -> None:
        self.env.close()


def _has_frames(env: gym.Env) -> bool:
    try:
        env.get_wrapper_attr("frames")
        return True
    except AttributeError:
        return False


def evaluate(config: Config, progress: bool = True) -> dict[str, Any]:
    """Evaluate the random policy (the baseline); write config.yaml, eval.json (and the video) into the run
    folder. A trained agent's checkpoints are evaluated by forethought.evaluate_checkpoint."""
    run_dir = Path(config.run.dir)
    env = make_env(config, capture_frames=config.eval.video)
    try:
        result = run_episodes(env, RandomPolicy(env.action_space), config.eval.episodes, progress)
    finally:
        env.close()
    save_config(config, run_dir / "config.yaml")
    return write_report(config, result, "random", run_dir / REPORT_NAME, {})


def write_report(config: Config, result: dict[str, Any], policy: str, path: Path, extra: dict[str, Any]
                 ) -> dict[str, Any]:
    """The JSON report of ``run_episodes``'s result, written to ``path`` with the video of episode 0 beside it
    (when eval.video and the episode was filmed); returned with ``report`` (its path) added."""
    env_steps = int(sum(result["lengths"]))
    report: dict[str, Any] = {
        "env": config.env.id,
        "policy": policy,
        **extra,
        "seed": config.run.seed,
        "episodes": len(result["returns"]),
        "episode_returns": result["returns"],
        "episode_lengths": result["lengths"],
        "return": summarize(result["returns"]),
        "length": summarize(result["lengths"]),
        "env_steps": env_steps,
        "seconds": result["seconds"],
        "env_steps_per_s": env_steps / max(result["seconds"], 1e-9),
        "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine()},
    }
    if config.eval.video and result["frames"]:
        name = "eval_episode0" if path.name == REPORT_NAME else f"{path.stem}_episode0"
        report["video"] = str(episode_video(result, path.with_name(f"{name}.{config.eval.video_format}"),
                                            config.eval.video_fps))
        report["video_goals"] = bool(result.get("goal_frames"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    report["report"] = str(path)
    return report


def episode_video(result: dict[str, Any], path: Path, fps: int) -> Path:
    """The filmed episode of a ``run_episodes`` result, with the decoded goals beside it where there are any."""
    return write_video(beside(result["frames"], result.get("goal_frames", [])), path, fps)


def beside(frames: Sequence[np.ndarray], goals: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each env frame with the decoded goal held at that step to its right, scaled to the frame's height (the
    frame after the last action gets the last goal). Frames alone when there are no goal images."""
    if not goals:
        return list(frames)
    out = []
    for i, frame in enumerate(frames):
        goal = np.asarray(goals[min(i, len(goals) - 1)], np.uint8)
        goal = np.repeat(goal, 3, axis=-1) if goal.shape[-1] == 1 else goal
        rows = np.arange(frame.shape[0]) * goal.shape[0] // frame.shape[0]  # nearest-neighbour scaling
        cols = np.arange(goal.shape[1] * frame.shape[0] // goal.shape[0]) * goal.shape[0] // frame.shape[0]
        out.append(np.concatenate([np.asarray(frame, np.uint8)[..., :3], goal[rows][:, cols]], axis=1))
    return out


def format_report(report: dict[str, Any]) -> str:
    """A few human-readable lines summarising an evaluation report."""
    ret = report["return"]
    ci = "n/a" if ret["ci_low"] is None else f"[{ret['ci_low']:.2f}, {ret['ci_high']:.2f}]"
    lines = [
        f"env             {report['env']}  (policy: {report['policy']}, seed {report['seed']})",
        *([f"checkpoint      {report['checkpoint']} ({report['agent']}, env step {report['checkpoint_step']:,})"]
          if "checkpoint" in report else []),
        f"episodes        {report['episodes']}" + (f" on {report['workers']} Ray workers" if report.get("workers")
                                                   else ""),
        f"return          {ret['mean']:.2f} +- {ret['std']:.2f}  (95% CI {ci}, "
        f"min {ret['min']:.2f}, max {ret['max']:.2f})",
        f"length          {report['length']['mean']:.1f} env steps",
        f"env steps/s     {report['env_steps_per_s']:.0f}",
        f"report          {report['report']}",
    ]
    if "video" in report:
        lines.append(f"video           {report['video']}")
    return "\n".join(lines)
