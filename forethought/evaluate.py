"""Run a policy for N episodes and write a JSON report (and optionally a video) into the run folder."""

from __future__ import annotations

import json
import platform
import time
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
    """Maps an observation dict to an action; ``reset`` is called at the start of every episode."""

    def reset(self) -> None: ...

    def __call__(self, obs: dict[str, np.ndarray]) -> Any: ...


class RandomPolicy:
    """Samples uniformly from the action space; seeded through the space by ``envs.make``."""

    def __init__(self, action_space: gym.Space):
        self.action_space = action_space

    def reset(self) -> None:
        """Nothing to forget between episodes."""

    def __call__(self, obs: dict[str, np.ndarray]) -> Any:
        return self.action_space.sample()


class AgentPolicy:
    """Acts with a trained agent, one env, carrying its recurrent state through the episode."""

    def __init__(self, agent: Any, explore: bool = False):
        self.agent, self.explore = agent, explore
        self.state: Any = None
        self.first = True

    def reset(self) -> None:
        """Start a new episode: the agent's initial state."""
        self.state = self.agent.initial_state(1)
        self.first = True

    def __call__(self, obs: dict[str, np.ndarray]) -> Any:
        import torch

        device = self.state["deter"].device
        batch = {k: torch.as_tensor(np.asarray(v), device=device).unsqueeze(0) for k, v in obs.items()}
        action, self.state = self.agent.act(batch, self.state, self.explore, torch.tensor([self.first], device=device))
        self.first = False
        return action[0].cpu().numpy()


def make_env(config: Config, capture_frames: bool = False) -> gym.Env:
    """The configured env, seeded with the run's seed."""
    return envs.make(**env_kwargs(config), seed=config.run.seed, capture_frames=capture_frames)


def run_episodes(env: gym.Env, policy: Policy, episodes: int, progress: bool = True) -> dict[str, Any]:
    """Play ``episodes`` episodes; return per-episode returns and lengths (env steps) and the timing."""
    returns: list[float] = []
    lengths: list[int] = []
    frames: list[np.ndarray] = []
    capturing = env.get_wrapper_attr("capturing") if _has_frames(env) else False
    start = time.perf_counter()
    with tqdm(total=episodes, unit="ep", desc="eval", disable=not progress, dynamic_ncols=True) as bar:
        for episode in range(episodes):
            obs, _ = env.reset()
            policy.reset()
            while True:
                obs, _, terminated, truncated, info = env.step(policy(obs))
                if terminated or truncated:
                    break
            returns.append(float(info["episode"]["r"]))
            lengths.append(int(info["episode"]["l"]))
            if capturing and episode == 0:  # only the first episode is filmed
                frames = list(env.get_wrapper_attr("frames"))
                env.set_wrapper_attr("capturing", False)
            bar.update(1)
            bar.set_postfix(ret=f"{np.mean(returns):.2f}")
    seconds = time.perf_counter() - start
    return {"returns": returns, "lengths": lengths, "seconds": seconds, "frames": frames}


def _has_frames(env: gym.Env) -> bool:
    try:
        env.get_wrapper_attr("frames")
        return True
    except AttributeError:
        return False


def evaluate(config: Config, progress: bool = True, agent: Any = None, episodes: int | None = None,
             save: bool = True) -> dict[str, Any]:
    """Evaluate the random policy, or ``agent`` greedily; write eval.json (and the video) into the run folder.

    ``save`` also writes the resolved config (not wanted when a training run evaluates itself).
    """
    run_dir = Path(config.run.dir)
    env = make_env(config, capture_frames=config.eval.video)
    try:
        policy: Policy = RandomPolicy(env.action_space) if agent is None else AgentPolicy(agent)
        result = run_episodes(env, policy, episodes or config.eval.episodes, progress)
    finally:
        env.close()
    if save:
        save_config(config, run_dir / "config.yaml")
    env_steps = int(sum(result["lengths"]))
    report: dict[str, Any] = {
        "env": config.env.id,
        "policy": config.eval.policy if agent is None else f"agent ({config.agent.name}, greedy)",
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
    if config.eval.video:
        path = run_dir / f"eval_episode0.{config.eval.video_format}"
        report["video"] = str(write_video(result["frames"], path, config.eval.video_fps))
    path = run_dir / REPORT_NAME
    path.write_text(json.dumps(report, indent=2))
    report["report"] = str(path)
    return report


def format_report(report: dict[str, Any]) -> str:
    """A few human-readable lines summarising an evaluation report."""
    ret = report["return"]
    ci = "n/a" if ret["ci_low"] is None else f"[{ret['ci_low']:.2f}, {ret['ci_high']:.2f}]"
    lines = [
        f"env             {report['env']}  (policy: {report['policy']}, seed {report['seed']})",
        f"episodes        {report['episodes']}",
        f"return          {ret['mean']:.2f} +- {ret['std']:.2f}  (95% CI {ci}, "
        f"min {ret['min']:.2f}, max {ret['max']:.2f})",
        f"length          {report['length']['mean']:.1f} env steps",
        f"env steps/s     {report['env_steps_per_s']:.0f}",
        f"report          {report['report']}",
    ]
    if "video" in report:
        lines.append(f"video           {report['video']}")
    return "\n".join(lines)
