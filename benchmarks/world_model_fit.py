"""How well a fresh world model learns a run's stored experience: training on a fixed replay, without the agent.

Builds a new world model from a run's config (plus any ``KEY=VALUE`` overrides, e.g. ``agent.world_model.lr=1e-3``),
trains it alone on windows drawn uniformly from the replay of the run's checkpoint (the run's batch size and
sequence length), and every ``--every`` updates prints the mean of its loss terms since the last report. On Pin Pad
vector runs it also prints ``grid_behaviour.pinpad_replay``'s figures on the replay's first lane: how often the
posterior and the prior decode the history right where it changed and the agent's cell over all steps, and what the
reward head reads at completions. A world-model setting can so be judged in minutes, on the very data where the
agent's own model fell short, before a whole training run. The figures of README, Results, "Pin Pad vector: the
world model misses the history's shift".

    python -m benchmarks.world_model_fit runs/forethought-PinPadVector3-v0-seed0 --updates 2000
    python -m benchmarks.world_model_fit RUN agent.world_model.lr=1e-3 --json fit.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np


def fit(run_dir: Path, checkpoint: Path, overrides: list[str], updates: int, every: int, seed: int,
        replay_steps: int) -> list[dict[str, Any]]:
    """Train a fresh world model on ``checkpoint``'s replay; one report per ``every`` updates (and at the end)."""
    import torch

    from benchmarks.grid_behaviour import pinpad_replay
    from forethought.config import load_config
    from forethought.evaluate import make_env
    from forethought.loading import build_agent_for
    from forethought.replay import STEP_KEYS, Replay

    config = load_config([str(run_dir / "config.yaml")], [f"run.dir={run_dir}", *overrides])
    env = make_env(config)
    torch.manual_seed(seed)
    agent = build_agent_for(config, env.observation_space, env.action_space)
    model = agent.world_model
    replay = Replay.from_file(checkpoint / "replay.npz")
    replay.rng = np.random.default_rng(seed)  # the fit's own draws, not the run's saved stream
    keys = [*model.keys, *STEP_KEYS]
    pinpad = hasattr(env.unwrapped, "history") and "vector" in model.keys
    reports: list[dict[str, Any]] = []
    terms: list[dict[str, float]] = []
    begin = time.perf_counter()
    try:
        for update in range(1, updates + 1):
            batch = replay.sample(config.train.batch_size, config.train.batch_length)
            terms.append(model.update({k: torch.as_tensor(batch[k]) for k in keys}))
            if update % every and update != updates:
                continue
            report: dict[str, Any] = {"updates": update, "seconds": round(time.perf_counter() - begin, 1)}
            report.update({k: float(np.mean([t[k] for t in terms])) for k in terms[0]})
            terms = []
            if pinpad:
                model.eval()
                report["pinpad"] = pinpad_replay(agent, checkpoint, env, replay_steps)
                model.train()
            reports.append(report)
            print_report(report)
    finally:
        env.close()
    return reports


def print_report(report: dict[str, Any]) -> None:
    """Print one report in a few lines."""
    print(f"{report['updates']:,} updates, {report['seconds']:.0f} s: loss {report['world_model/loss']:.3f}, "
          f"KL {report['world_model/kl']:.2f}, posterior entropy {report['world_model/post_entropy']:.1f} nats, "
          + ", ".join(f"{k.split('/')[1]} {v:.4f}" for k, v in report.items()
                      if k.startswith("world_model/loss_") and k[-3:] not in ("dyn", "rep")), flush=True)
    p = report.get("pinpad")
    if p:
        print(f"    history changed at {p['changes']} steps; decoded right there: prior {p['prior_right']:.2f}, "
              f"posterior {p['posterior_right']:.2f}, posterior one step later {p['posterior_later'][0]:.2f}; "
              f"cell right: prior {p['position_right']['prior']:.3f}, "
              f"posterior {p['position_right']['posterior']:.3f}; "
              f"reward head at completions: posterior {p['completions']['reward_head']}, prior "
              f"{p['completions']['prior_reward_head']}", flush=True)


def main(argv: list[str] | None = None) -> None:
    import torch

    from benchmarks.common import machine
    from forethought import run_folder
    from forethought.config import ConfigError

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", type=Path, help="a run folder or one of its checkpoints (it must hold replay.npz)")
    parser.add_argument("overrides", nargs="*", help="config overrides for the fresh world model, KEY=VALUE")
    parser.add_argument("--updates", type=int, default=2000, help="world-model updates in all")
    parser.add_argument("--every", type=int, default=1000, help="updates between reports")
    parser.add_argument("--seed", type=int, default=0, help="seeds the model's weights and the replay's draws")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--replay-steps", type=int, default=6000, help="Pin Pad: replay steps the figures read")
    parser.add_argument("--json", type=Path, help="also write the reports (and the command) to this file")
    args = parser.parse_args(argv)
    if args.updates < 1 or args.every < 1:
        parser.error(f"--updates and --every must be at least 1, got {args.updates} and {args.every}")
    torch.set_num_threads(args.threads)
    try:
        run_dir, checkpoint = run_folder.find_checkpoint(args.target, None)
    except run_folder.CheckpointError as error:
        raise SystemExit(str(error)) from None
    if not (checkpoint / "replay.npz").exists():
        raise SystemExit(f"'{checkpoint}' holds no replay.npz: this probe trains on a checkpoint's stored replay")
    print(f"a fresh world model on the replay of {checkpoint}" + (f", with {' '.join(args.overrides)}"
                                                                   if args.overrides else ""))
    try:
        reports = fit(run_dir, checkpoint, args.overrides, args.updates, args.every, args.seed, args.replay_steps)
    except ConfigError as error:
        raise SystemExit(str(error)) from None
    if args.json:
        args.json.write_text(json.dumps({"target": str(checkpoint), "overrides": args.overrides,
                                         "seed": args.seed, "machine": machine(),
                                         "reports": reports}, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
