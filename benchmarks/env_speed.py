"""Env steps per second of the built-in tasks, raw and behind Forethought's wrappers.

Both sides run in the same process, alternating, so the ratio (wrapped / raw) is what to read:
it is the cost of the dict observation, episode statistics and seeding wrappers.

    python -m benchmarks.env_speed            # full: 5 repeats of 20,000 steps per task
    python -m benchmarks.env_speed --quick    # seconds: 3 repeats of 2,000 steps
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np

import envs
from benchmarks.common import print_table, spread, write_results

TASKS = ["forethought/PinPad4-v0", "forethought/PinPadVector4-v0", "forethought/KeyDoor-v0",
         "forethought/KeyDoorVector-v0"]


def steps_per_second(env: gym.Env, steps: int, seed: int) -> float:
    """Random-action steps per second, resetting at episode ends; reset time is included."""
    rng = np.random.default_rng(seed)
    actions = rng.integers(env.action_space.n, size=steps)
    env.reset(seed=seed)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(int(action))
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 repeats of 2,000 steps (smoke test)")
    parser.add_argument("--steps", type=int, help="steps per repeat (default 20,000; 2,000 with --quick)")
    parser.add_argument("--repeats", type=int, help="repeats per side (default 5; 3 with --quick)")
    parser.add_argument("--tasks", nargs="+", default=TASKS, help="env ids to measure")
    args = parser.parse_args()
    steps = args.steps or (2_000 if args.quick else 20_000)
    repeats = args.repeats or (3 if args.quick else 5)

    rows = []
    for env_id in args.tasks:
        raw, wrapped = gym.make(env_id), envs.make(env_id)
        steps_per_second(raw, 200, 0), steps_per_second(wrapped, 200, 0)  # warm-up, not timed
        raw_samples, wrapped_samples = [], []
        for repeat in range(repeats):  # alternate the two sides
            raw_samples.append(steps_per_second(raw, steps, repeat))
            wrapped_samples.append(steps_per_second(wrapped, steps, repeat))
        ratios = [w / r for w, r in zip(wrapped_samples, raw_samples, strict=True)]
        rows.append({"env": env_id, "raw_steps_per_s": spread(raw_samples),
                     "wrapped_steps_per_s": spread(wrapped_samples), "ratio": spread(ratios)})
    table = [{"env": r["env"], "raw steps/s": f"{r['raw_steps_per_s']['median']:,.0f}",
              "wrapped steps/s": f"{r['wrapped_steps_per_s']['median']:,.0f}",
              "wrapped/raw": f"{r['ratio']['median']:.2f} ({r['ratio']['min']:.2f}-{r['ratio']['max']:.2f})"}
             for r in rows]
    print_table(table, ["env", "raw steps/s", "wrapped steps/s", "wrapped/raw"])
    path = write_results("env_speed", rows, {"steps": steps, "repeats": repeats})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
