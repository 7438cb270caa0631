"""Where a grid-task agent spends its time, against a random policy, and what its model makes of those places.

For a run folder (or checkpoint) of a built-in grid task (Pin Pad, key door, key chain; vector or image): plays
``--episodes`` episodes with a uniform random policy, the agent's sampled policy and its greedy one (env and policy
seeded ``--seed`` + i), and prints for each the return per episode, the share of each action, how many distinct cells
it stood on, the share of steps on its most visited cell and the share of steps that did not move it. Along every
episode the agent's world model reads its own posterior state, so each row also gives, by cell kind (floor, pad 1,
pad 2, ... where the task has a ``layout``), the share of steps there, the reward head's mean prediction and the task
critic's mean value. On Pin Pad vector runs it also reads the world model and critic over replay (``pinpad_replay``).
The figures of README, Results, "Pin Pad vector: the world model misses the history's shift".

    python -m benchmarks.grid_behaviour runs/forethought-PinPadVector3-v0-seed0 --episodes 2
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import numpy as np

from benchmarks.common import open_probe_run
from envs.pinpad import HEIGHT, WIDTH
from forethought.diagnose import (
    agent_discount,
    agent_lane_streams,
    agent_outputs,
    posterior,
    returns_to_go,
    task_critic,
)
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


def pinpad_replay(agent: Any, checkpoint: Any, env: Any, steps: int) -> dict[str, Any]:
    """On the first ``steps`` steps of the checkpoint's first replay lane of a Pin Pad (vector) run: the critic's
    value against the discounted return that followed, by the last two pads of the history; and at the steps where
    the history changed (a pad other than the last one entered), how often the history decoded from the prior (one
    step of the dynamics from the previous posterior, along the action taken) and from the posterior is right, then
    the posterior one and two steps later (right: every slot decodes as empty where it is, else as its pad); how
    often both decode the agent's cell right over all steps; at completions, the countdown both decode (true: 1)
    and the reward head on the posterior and on the prior (what imagination would read there)."""
    import torch

    n = env.unwrapped.num_pads
    stream = {k: v[:steps] for k, v in agent_lane_streams(agent, checkpoint / "replay.npz")[0].items()}
    wm, vec = agent.world_model, stream["vector"]
    batch = {k: torch.as_tensor(v[None]) for k, v in stream.items()}
    post = posterior(wm, batch)
    out = agent_outputs(agent, stream, post)
    returns, complete = returns_to_go(stream["reward"], stream["is_first"], stream["is_terminal"],
                                      agent_discount(agent))
    start = (WIDTH - 2) + (HEIGHT - 2) + n + 1  # PinPad._vector: position one-hots, the pad stood on, then history
    history, countdown = vec[:, start : start + n * n].reshape(-1, n, n), vec[:, start + n * n]
    with torch.no_grad():
        prior = wm.rssm.img_step({k: v[0, :-1] for k, v in post.items()}, batch["action"][0, :-1].float(), sample=False)
        prior_reward = wm.reward(wm.rssm.feat(prior)).numpy()  # [T - 1]: what imagination would read there
        decoded = {"prior": wm.decode(wm.rssm.feat(prior))["vector"].numpy(),
                   "posterior": wm.decode(wm.rssm.feat({k: v[0, 1:] for k, v in post.items()}))["vector"].numpy()}
    filled = history.sum(2) > 0
    slots = np.where(filled, history.argmax(2) + 1, 0)  # pad number per history slot, 0 where empty
    count = filled.sum(1)
    last = slots[np.arange(len(vec)), np.maximum(count - 1, 0)] * (count > 0)
    before = slots[np.arange(len(vec)), np.maximum(count - 2, 0)] * (count > 1)
    by_history = {}
    for name, mask in {"last pads 1, 2": (before == 1) & (last == 2), "last pad 1": last == 1,
                       "last pad 2, not after 1": (last == 2) & (before != 1), f"last pad {n}": last == n}.items():
        mask = mask & complete.astype(bool) & (countdown == 0)
        if mask.any():
            by_history[name] = (float(mask.mean()), float(out["value"][mask].mean()), float(returns[mask].mean()))

    def right(rec: np.ndarray, at: np.ndarray) -> float:  # every slot: empty where empty, else the right pad
        rows = rec[at - 1, start : start + n * n].reshape(-1, n, n)
        got = ((rows.max(2) > 0.5) == filled[at]) & ((rows.argmax(2) == history[at].argmax(2)) | ~filled[at])
        return float(got.all(1).mean()) if len(at) else float("nan")

    def cell(rows: np.ndarray) -> np.ndarray:  # (column, row) of the position one-hots
        return np.stack([rows[:, : WIDTH - 2].argmax(1), rows[:, WIDTH - 2 : start - n - 1].argmax(1)], 1)

    changed = np.nonzero((np.abs(history[1:] - history[:-1]).sum((1, 2)) > 0) & ~stream["is_first"][1:])[0] + 1
    done = np.nonzero(countdown[1:] == 1.0)[0] + 1
    return {"by_history": by_history, "changes": len(changed), "steps": len(vec),
            "prior_right": right(decoded["prior"], changed), "posterior_right": right(decoded["posterior"], changed),
            "posterior_later": [right(decoded["posterior"], changed[changed + k < len(vec)] + k) for k in (1, 2)],
            "position_right": {name: float((cell(rec) == cell(vec[1:])).all(1).mean())
                               for name, rec in decoded.items()},
            "completions": {name: [round(float(x), 2) for x in values] for name, values in (
                ("prior_countdown", decoded["prior"][done - 1, start + n * n]),
                ("posterior_countdown", decoded["posterior"][done - 1, start + n * n]),
                ("reward_head", out["reward"][done]), ("prior_reward_head", prior_reward[done - 1]))}}


def main(argv: list[str] | None = None) -> None:
    args, run_dir, checkpoint, env, agent = open_probe_run(
        __doc__ or "", "grid-task", argv, 2,
        lambda config, env: None if hasattr(env.unwrapped, "pos") else "this probe reads the built-in grid tasks only",
        {"replay-steps": (6000, "Pin Pad vector runs: how many replay steps the world-model figures read")})
    try:
        print(f"{run_dir} at {checkpoint.name}, {args.episodes} episodes per policy")
        for mode in ("random", "sampled", "greedy"):
            r = play(agent, env, mode, args.episodes, args.seed)
            print(f"{mode:8s} return {r['return']:.2f}  actions {[round(a, 3) for a in r['actions']]}  "
                  f"cells {r['cells']}  top cell {r['top_cell']:.3f}  still {r['still']:.3f}")
            for kind, (share, reward, value) in r["kinds"].items():
                print(f"    cell kind {kind}: share {share:.3f}, reward head {reward:.4f}, value {value:.3f}")
        if hasattr(env.unwrapped, "history") and "vector" in agent.world_model.keys:
            replay = pinpad_replay(agent, checkpoint, env, args.replay_steps)
            print(f"replay, first {replay['steps']:,} steps of lane 0: critic's value against the return that followed")
            for name, (share, value, ret) in replay["by_history"].items():
                print(f"    {name}: share {share:.3f}, value {value:.3f}, return {ret:.3f}")
            later = ", ".join(f"{x:.3f}" for x in replay["posterior_later"])
            print(f"history changed at {replay['changes']} steps; decoded history right: prior "
                  f"{replay['prior_right']:.3f}, posterior {replay['posterior_right']:.3f}, "
                  f"posterior 1 and 2 steps later {later}")
            print("position decoded right over all steps: " + ", ".join(
                f"{name} {share:.3f}" for name, share in replay["position_right"].items()))
            print(f"completions: {replay['completions']}")
    finally:
        env.close()


if __name__ == "__main__":
    main()
