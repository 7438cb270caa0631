"""Probe a Director checkpoint: is its goal space one a worker can steer by, and does the worker steer?

Plays a few episodes of the run's env with random actions, runs the world model over them, and
measures on the states it reaches:

- ``same_cell`` / ``other_cell``: mean max-cosine between goal-space states (centred deter) in the
  same grid cell (same episode, same agent position and task state) and in different ones, and
  the same on raw deter (``raw_*``). A goal reward can only steer where these differ;
- ``ahead_1`` / ``ahead_4``: goal-space max-cosine of a state to the state 1 and 4 steps later;
- ``autoencoded_own`` / ``autoencoded_4_before``: max-cosine of a state's autoencoded goal to the
  state itself and to the state 4 steps before it (the goal's resolution), ``goal_norm_ratio``
  the goal's norm over the state's;
- ``random_code_match``: best max-cosine of goals decoded from uniform random codes to any
  reached state (how realistic the goals of an untrained manager are); ``manager_goal_match`` the
  same for the goal the greedy manager picks in each reached state;
- ``worker_reach`` / ``random_reach``: from each state, the goal-space max-cosine after 4 imagined
  steps towards the autoencoded state that the episode really reached 4 steps later, acting with
  the worker or with uniform random actions;
- ``manager_entropy`` against ``manager_max_entropy``.

Grid cells need the built-in tasks (their envs expose ``pos``); other envs report the rest.

    python -m benchmarks.director_probe RUN_DIR [--checkpoint CHECKPOINT_DIR] [--episodes 6]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

AHEAD = 4


def load_agent(run_dir: Path, checkpoint: Path | None = None, name: str = "director") -> tuple[Any, Any]:
    """The run's config and its agent (of kind ``name``) with the weights of ``checkpoint`` (default: the
    latest)."""
    from forethought import loading, run_folder
    from forethought.config import load_config
    from forethought.evaluate import make_env

    config = load_config([str(run_dir / "config.yaml")], [])
    if config.agent.name != name:
        raise SystemExit(f"{run_dir} trained agent.name={config.agent.name}; the probe reads {name} runs only")
    try:
        checkpoint = checkpoint or run_folder.find_checkpoint(run_dir)[1]
        env = make_env(config)
        agent = loading.load_agent(checkpoint, config, env.observation_space, env.action_space)
    except run_folder.CheckpointError as error:
        raise SystemExit(str(error)) from None
    env.close()
    return config, agent


def _cell(env: Any, episode: int) -> tuple[Any, ...] | None:
    """The grid cell and task state of a built-in task (None for other envs)."""
    inner = env.unwrapped
    if not hasattr(inner, "pos"):
        return None
    task = tuple(getattr(inner, "history", ())) or (getattr(inner, "has_key", None), getattr(inner, "door_open", None))
    return (episode, tuple(inner.pos), task)


@torch.no_grad()
def collect(agent: Any, env: Any, episodes: int, steps: int, seed: int) -> dict[str, Any]:
    """Posterior latents [N, ...] of random-action episodes, each step's episode and grid cell."""
    env.action_space.seed(seed)
    latents: list[dict[str, torch.Tensor]] = []
    episode_of: list[int] = []
    cells: list[Any] = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        state = agent.initial_state(1)
        for t in range(steps):
            batch = {k: torch.as_tensor(np.asarray(v)).unsqueeze(0) for k, v in obs.items()}
            post = agent.observe(batch, state, torch.tensor([t == 0]))
            action = env.action_space.sample()
            state = {**state, **post, "action": agent.spec.from_env(torch.as_tensor(np.asarray(action)).unsqueeze(0))}
            latents.append({k: v[0] for k, v in post.items()})
            episode_of.append(episode)
            cells.append(_cell(env, episode))
            obs, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                break
    return {"latent": {k: torch.stack([s[k] for s in latents]) for k in latents[0]},
            "episode": torch.tensor(episode_of), "cells": cells}


def _mean(x: torch.Tensor) -> float:
    return float(x.mean()) if x.numel() else math.nan


@torch.no_grad()
def probe(agent: Any, env: Any, episodes: int = 6, steps: int = 60, seed: int = 0) -> dict[str, float]:
    """The measures in the module docstring, on ``episodes`` random-action episodes of up to ``steps`` steps."""
    from agents.actions import PolicyDist
    from agents.dreamer import LATENT_KEYS
    from agents.goals import best_match, max_cosine

    torch.manual_seed(seed)
    data = collect(agent, env, episodes, steps, seed)
    latent, episode = data["latent"], data["episode"]
    raw = latent["deter"]
    states = agent.goal_state(raw)
    n = len(states)
    out: dict[str, float] = {"states": float(n)}
    if data["cells"][0] is not None:
        pairs = ~torch.eye(n, dtype=torch.bool)
        same = torch.tensor([[a == b for b in data["cells"]] for a in data["cells"]]) & pairs
        for name, x in (("", states), ("raw_", raw)):
            sim = max_cosine(x[:, None], x[None])
            out[f"{name}same_cell"] = _mean(sim[same])
            out[f"{name}other_cell"] = _mean(sim[~same & pairs])
    index = torch.arange(n)
    for k in (1, AHEAD):  # ok: the states whose episode goes on for k more steps (AHEAD is last)
        ok = index[:-k][episode[k:] == episode[:-k]]
        out[f"ahead_{k}"] = _mean(max_cosine(states[ok], states[ok + k]))
    autoencoder = agent.goal_autoencoder
    goals = autoencoder.reconstruct(states)
    out["autoencoded_own"] = _mean(max_cosine(goals, states))
    out[f"autoencoded_{AHEAD}_before"] = _mean(max_cosine(goals[ok + AHEAD], states[ok]))
    out["goal_norm_ratio"] = _mean(goals.norm(dim=-1) / states.norm(dim=-1).clamp(min=1e-8))
    out["random_code_match"] = float(autoencoder.random_code_match(states, codes=256))
    rssm = agent.world_model.rssm
    manager = agent.manager.policy(rssm.feat(latent))
    chosen = agent.decode_goal(manager.mode())
    out["manager_goal_match"] = _mean(best_match(chosen, states))
    start = {k: latent[k][ok] for k in LATENT_KEYS}
    target = goals[ok + AHEAD]
    uniform = PolicyDist(agent.spec, torch.zeros(len(target), agent.spec.logits_dim), unimix=0.0)
    for who in ("worker", "random"):
        state = dict(start)
        for _ in range(AHEAD):
            feat = rssm.feat(state)
            policy = agent.worker.policy(torch.cat([feat, target], -1)) if who == "worker" else uniform
            state = rssm.img_step(state, policy.sample())
        out[f"{who}_reach"] = _mean(max_cosine(target, agent.goal_state(state["deter"])))
    out["manager_entropy"] = _mean(manager.entropy())
    out["manager_max_entropy"] = agent.config.goal.groups * math.log(agent.config.goal.classes)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a Director run folder (config.yaml and checkpoints/)")
    parser.add_argument("--checkpoint", type=Path, help="a checkpoints/step_* folder; default: the latest")
    parser.add_argument("--episodes", type=int, default=6, help="random-action episodes to probe on")
    parser.add_argument("--steps", type=int, default=60, help="steps per episode at most")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from forethought.evaluate import make_env

    config, agent = load_agent(args.run_dir, args.checkpoint)
    env = make_env(config)
    try:
        result = probe(agent, env, args.episodes, args.steps, args.seed)
    finally:
        env.close()
    for key, value in result.items():
        print(f"{key:>22}  {value:.3f}")
    path = args.run_dir / "probe.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"written: {path}")


if __name__ == "__main__":
    main()
