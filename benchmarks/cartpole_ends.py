"""How a CartPole agent's episodes end, and what its critic makes of the track's edges.

For a run folder (or checkpoint) of ``forethought train -c cartpole``: plays ``--episodes`` greedy and sampled
episodes (env and policy seeded ``--seed`` + i) and prints each one's length, the cart's position and the pole's
angle at its last step (an end at |x| >= 2.4 is the cart leaving the track, at |angle| > 0.21 the pole falling);
then, over the checkpoint's replay lane by lane, the continuation head at the edge and pole terminations and the
critic's value against the discounted return that really followed (``forethought diagnose``'s measures),
bucketed by |x|. The figures of README, Results, "CartPole: sequences around episode ends".

    python -m benchmarks.cartpole_ends runs/CartPole-v1-seed0
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.common import open_probe_run
from forethought.diagnose import agent_discount, agent_lane_streams, agent_outputs, returns_to_go
from forethought.evaluate import AgentPolicy

BUCKETS = ((0.0, 1.0), (1.0, 1.8), (1.8, 2.2), (2.2, 2.5))


def episode_ends(agent: Any, env: Any, episodes: int, seed: int, explore: bool) -> list[tuple[int, float, float]]:
    """(length, cart position, pole angle at the last step) of each episode of ``env``."""
    ends = []
    for i in range(episodes):
        policy = AgentPolicy(agent, explore=explore)
        policy.reset(seed + i)
        obs, _ = env.reset(seed=seed + i)
        length, done = 0, False
        while not done:
            obs, _, terminated, truncated, _ = env.step(policy(obs))
            length, done = length + 1, terminated or truncated
        x, _, angle, _ = env.unwrapped.state
        ends.append((length, round(float(x), 2), round(float(angle), 2)))
    return ends


def main(argv: list[str] | None = None) -> None:
    args, _, checkpoint, env, agent = open_probe_run(
        __doc__ or "", "CartPole", argv, 10,
        lambda config, env: None if config.env.id == "CartPole-v1" else "this probe reads CartPole-v1 runs only")
    try:
        ends_by = {explore: episode_ends(agent, env, args.episodes, args.seed, explore) for explore in (False, True)}
    finally:
        env.close()
    for explore, ends in ends_by.items():
        edge = sum(length < 500 and abs(x) >= 2.4 for length, x, _ in ends)
        print(f"{'sampled' if explore else 'greedy'}: {edge} of {len(ends)} off an edge; (length, x, angle) {ends}")
    for lane, stream in enumerate(agent_lane_streams(agent, checkpoint / "replay.npz")):
        out = agent_outputs(agent, stream)
        returns, complete = returns_to_go(stream["reward"], stream["is_first"], stream["is_terminal"],
                                          agent_discount(agent))
        x, terminal = np.abs(stream["vector"][:, 0]), stream["is_terminal"].astype(bool)
        edge = terminal & (x >= 2.3)
        print(f"lane {lane}: {terminal.sum()} terminations, {edge.sum()} at an edge; continuation head "
              f"{[round(float(c), 2) for c in out['cont'][edge]]} there, {out['cont'][terminal & ~edge].mean():.2f} "
              f"at the pole's")
        for low, high in BUCKETS:
            mask = (x >= low) & (x < high) & complete.astype(bool)
            if mask.any():
                print(f"  |x| {low}-{high}: {mask.sum()} steps, value {out['value'][mask].mean():.1f}, "
                      f"return {returns[mask].mean():.1f}")


if __name__ == "__main__":
    main()
