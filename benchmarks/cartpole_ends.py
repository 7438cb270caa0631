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

import argparse
from pathlib import Path

import numpy as np

from forethought import loading, run_folder
from forethought.config import load_config
from forethought.diagnose import _agent_outputs, agent_discount, lane_streams, returns_to_go
from forethought.evaluate import AgentPolicy, make_env

BUCKETS = ((0.0, 1.0), (1.0, 1.8), (1.8, 2.2), (2.2, 2.5))


def episode_ends(agent: object, config: object, episodes: int, seed: int, explore: bool) -> list[tuple[int, float,
                                                                                                       float]]:
    """(length, cart position, pole angle at the last step) of each episode."""
    env = make_env(config)  # type: ignore[arg-type]
    ends = []
    try:
        for i in range(episodes):
            policy = AgentPolicy(agent, explore=explore)
            policy.reset(seed + i)
            obs, _ = env.reset(seed=seed + i)
            length, done = 0, False
            while not done:
                obs, _, terminated, truncated, _ = env.step(policy(obs))
                length, done = length + 1, terminated or truncated
            x, _, angle, _ = env.unwrapped.state  # type: ignore[attr-defined]
            ends.append((length, round(float(x), 2), round(float(angle), 2)))
    finally:
        env.close()
    return ends


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", type=Path, help="a CartPole run folder or one of its checkpoints")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=100, help="episode i is seeded SEED + i")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    try:
        run_dir, checkpoint = run_folder.find_checkpoint(args.target, None)
    except run_folder.CheckpointError as error:
        raise SystemExit(str(error)) from None
    config = load_config([str(run_dir / "config.yaml")], [f"run.dir={run_dir}"])
    if config.env.id != "CartPole-v1":
        raise SystemExit(f"'{run_dir}' trained on {config.env.id}; this probe reads CartPole-v1 runs only")
    env = make_env(config)
    agent = loading.load_agent(checkpoint, config, env.observation_space, env.action_space)
    env.close()
    for explore in (False, True):
        ends = episode_ends(agent, config, args.episodes, args.seed, explore)
        edge = sum(length < 500 and abs(x) >= 2.4 for length, x, _ in ends)
        print(f"{'sampled' if explore else 'greedy'}: {edge} of {len(ends)} off an edge; (length, x, angle) {ends}")
    keys = [*agent.world_model.keys, "action", "reward", "is_first", "is_terminal"]
    for lane, stream in enumerate(lane_streams(checkpoint / "replay.npz")):
        stream = {k: stream[k] for k in keys}
        out = _agent_outputs(agent, stream)
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
