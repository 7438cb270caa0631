"""Where a grid-task agent spends its time, against a random policy, and what its model makes of those places.

For a run folder (or checkpoint) of a built-in grid task (Pin Pad, key door, key chain; vector or image): plays
``--episodes`` episodes with a uniform random policy, the agent's sampled policy and its greedy one (env and policy
seeded ``--seed`` + i), and prints for each the return per episode, the share of each action, how many distinct cells
it stood on, the share of steps on its most visited cell and the share of steps that did not move it. Along every
episode the agent's world model reads its own posterior state, so each row also gives, by cell kind (floor, pad 1,
pad 2, ... where the task has a ``layout``), the share of steps there, the reward head's mean prediction and the task
critic's mean value. The figures of README, Results, "Pin Pad vector: where the flat agent parks".

    python -m benchmarks.grid_behaviour runs/forethought-PinPadVector3-v0-seed0 --episodes 2
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import numpy as np

from benchmarks.common import open_probe_run
from forethought.diagnose import task_critic
from forethought.evaluate import AgentPolicy


def play(agent: Any, env: Any, mode: str, episodes: int, seed: int, max_steps: int | None = None) -> dict[str, Any]:
    """Behaviour figures of ``episodes`` episodes of ``env`` played by ``mode`` ('random', 'sampled' or 'greedy'),
    each cut after ``max_steps`` steps where given."""
    import torch

    critic = task_critic(agent)
    actions: Counter[int] = Counter()
    cells: Counter[tuple[int, int]] = Counter()
    kinds: dict[int, list[tuple[float, float]]] = defaultdict(list)
    returns, still, steps = [], 0, 0
    for i in range(episodes):
        policy = AgentPolicy(agent, explore=mode == "sampled")
        policy.reset(seed + i)
        env.action_space.seed(seed + i)
        obs, _ = env.reset(seed=seed + i)
        total, done, length = 0.0, False, 0
        while not done:
            chosen = policy(obs)  # the agent's posterior of this observation, whichever policy acts
            with torch.no_grad():
                feat = agent.world_model.rssm.feat(policy.state)
                value = float(critic.value(feat)[0]) if critic is not None else float("nan")
                reward_head = float(agent.world_model.reward(feat)[0])
            action = int(env.action_space.sample()) if mode == "random" else int(chosen)
            if mode == "random":  # the next posterior then follows the action really taken
                policy.state["action"] = agent.spec.from_env(torch.as_tensor([action]))
            grid = env.unwrapped
            before = grid.pos
            kinds[int(grid.layout[before]) if hasattr(grid, "layout") else 0].append((reward_head, value))
            obs, reward, terminated, truncated, _ = env.step(action)
            length, steps = length + 1, steps + 1
            total, done = total + reward, terminated or truncated or length == max_steps
            actions[action] += 1
            cells[grid.pos] += 1
            still += grid.pos == before
        returns.append(total)
    moves = [actions[a] / steps for a in range(int(env.action_space.n))]
    return {"mode": mode, "return": float(np.mean(returns)), "actions": moves,
            "cells": len(cells), "top_cell": max(cells.values()) / steps, "still": still / steps,
            "kinds": {k: (len(v) / steps, float(np.mean([r for r, _ in v])), float(np.mean([q for _, q in v])))
                      for k, v in sorted(kinds.items())}}


def main(argv: list[str] | None = None) -> None:
    args, run_dir, checkpoint, env, agent = open_probe_run(
        __doc__ or "", "grid-task", argv, 2,
        lambda config, env: None if hasattr(env.unwrapped, "pos") else "this probe reads the built-in grid tasks only")
    try:
        print(f"{run_dir} at {checkpoint.name}, {args.episodes} episodes per policy")
        results = [play(agent, env, mode, args.episodes, args.seed) for mode in ("random", "sampled", "greedy")]
    finally:
        env.close()
    for r in results:
        mode = r["mode"]
        print(f"{mode:8s} return {r['return']:.2f}  actions {[round(a, 3) for a in r['actions']]}  cells {r['cells']}"
              f"  top cell {r['top_cell']:.3f}  still {r['still']:.3f}")
        for kind, (share, reward, value) in r["kinds"].items():
            print(f"    cell kind {kind}: share {share:.3f}, reward head {reward:.4f}, value {value:.3f}")


if __name__ == "__main__":
    main()
