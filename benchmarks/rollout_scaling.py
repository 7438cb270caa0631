"""Env steps per second of RLlib env runners stepping Forethought envs with the debug agent, 1, 2, 4 runners.

Only sampling is timed (no learning): each configuration builds the algorithm, warms up for one
round, then times ``--rounds`` rounds of ``synchronous_parallel_sample`` across all runners. The
efficiency is steps/s divided by (runners x steps/s of one runner). A local Ray gets as many CPUs
as the largest configuration needs (runners + 1), so on a 2-core machine runners share cores and
efficiency says how much of that oversubscription turns into throughput.

    python -m benchmarks.rollout_scaling              # 1, 2, 4 runners, 10 rounds each
    python -m benchmarks.rollout_scaling --quick      # 1 and 2 runners, 3 rounds
"""

from __future__ import annotations

import argparse
import os
import time

from benchmarks.common import print_table, spread, write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 and 2 runners, 3 rounds (about a minute)")
    parser.add_argument("--runners", type=int, nargs="+", help="runner counts (default 1 2 4)")
    parser.add_argument("--rounds", type=int, help="timed rounds per configuration (default 10; 3 with --quick)")
    parser.add_argument("--env", default="forethought/KeyDoorVector-v0", help="env id (default KeyDoorVector)")
    parser.add_argument("--rollout-length", type=int, default=256, help="env steps per runner per round")
    args = parser.parse_args()
    runner_counts = args.runners or ([1, 2] if args.quick else [1, 2, 4])
    rounds = args.rounds or (3 if args.quick else 10)

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray
    from ray.rllib.execution.rollout_ops import synchronous_parallel_sample

    from forethought.config import load_config
    from forethought.train import algorithm_config, register_env

    ray.init(address="local", num_cpus=max(runner_counts) + 1, include_dashboard=False, log_to_driver=False,
             object_store_memory=256 * 2**20)
    register_env()
    rows = []
    for runners in runner_counts:
        config = load_config(["debug"], [f"env.id={args.env}", f"scale.num_env_runners={runners}",
                                         f"train.rollout_length={args.rollout_length}", "env.time_limit=0"])
        algo = algorithm_config(config).build_algo()
        group = algo.env_runner_group
        steps_per_round = args.rollout_length * runners

        def sample(group=group, steps_per_round=steps_per_round) -> int:
            episodes = synchronous_parallel_sample(worker_set=group, max_env_steps=steps_per_round,
                                                   _uses_new_env_runners=True)
            return sum(len(e) for e in episodes)

        sample()  # warm-up: actors started, modules built
        rates = []
        for _ in range(rounds):
            start = time.perf_counter()
            steps = sample()
            rates.append(steps / (time.perf_counter() - start))
        algo.stop()
        rows.append({"runners": runners, "env": args.env, "steps_per_round": steps_per_round,
                     "env_steps_per_s": spread(rates)})
        print(f"measured {runners} runner(s)")
    base = rows[0]["env_steps_per_s"]["median"] / rows[0]["runners"]
    for row in rows:
        row["efficiency"] = row["env_steps_per_s"]["median"] / (row["runners"] * base)
    print_table([{"runners": r["runners"], "env steps/s": f"{r['env_steps_per_s']['median']:,.0f}",
                  "range": f"{r['env_steps_per_s']['min']:,.0f}-{r['env_steps_per_s']['max']:,.0f}",
                  "efficiency": f"{r['efficiency']:.2f}"} for r in rows],
                ["runners", "env steps/s", "range", "efficiency"])
    path = write_results("rollout_scaling", rows, {"rounds": rounds, "cpus": max(runner_counts) + 1})
    print(f"\nwrote {path}")
    ray.shutdown()


if __name__ == "__main__":
    main()
