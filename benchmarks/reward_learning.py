"""How many world-model updates it takes to predict a sparse reward, from a fixed random-policy replay.

This isolates the world model from the actor. A uniformly random policy fills a replay with ``--steps`` env
steps (seeded); a fresh world model of the preset trains by its own update on windows drawn as training
draws them (``train.batch_size`` x ``train.batch_length``, ``train.reward_fraction``), and every ``--every``
updates its heads are measured on a held-out random replay (another seed): on every rewarded step, seen with
the ``train.batch_length - 1`` steps before it as context, the mean predicted reward and the share predicted
at least half of what was paid; the continuation head on terminal steps; both heads on the other steps of
random windows. Settings are override sets compared over the same seeds and replays; each row gives, per
seed, the updates until 90% of held-out rewarded steps were predicted at least half (null: not within
``--updates``).

    python -m benchmarks.reward_learning -c keydoor_vector --steps 15000 --updates 1200 \\
        --compare train.reward_fraction=0 train.reward_fraction=0.25 train.reward_fraction=0.5
    python -m benchmarks.reward_learning --quick      # debug sizes, seconds: a smoke test
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from benchmarks.common import print_table, write_results

RECOGNISED = 0.9  # share of held-out rewarded steps predicted at least half: "the reward head has it"


def random_replay(config: Any, steps: int, seed: int) -> Any:
    """A one-lane replay of ``steps`` env steps of a uniformly random policy, in training's layout."""
    import torch

    import envs
    from forethought.config import env_kwargs
    from forethought.replay import Replay
    from forethought.spaces import action_spec, replay_spec

    env = envs.make(**env_kwargs(config))
    spec = action_spec(env.action_space)
    replay = Replay(replay_spec(env.observation_space, spec), 2 * steps, 1, seed=seed,  # room for episodes' last rows
                    reward_fraction=config.train.reward_fraction)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    reward, first, episode, rows = 0.0, True, 0, []
    for t in range(steps):
        action = env.action_space.sample()
        rows.append({**obs, "action": spec.from_env(torch.as_tensor(np.asarray(action))).numpy(), "reward": reward,
                     "is_first": first, "is_terminal": False})
        obs, paid, terminated, truncated, _ = env.step(action)
        reward, first = float(paid), False
        if terminated or truncated or t == steps - 1:
            rows.append({**obs, "action": np.zeros(spec.dim, np.float32), "reward": reward, "is_first": False,
                         "is_terminal": terminated})
            replay.add(str(episode), {k: np.stack([r[k] for r in rows]) for k in rows[0]}, done=True)
            obs, _ = env.reset()
            reward, first, episode, rows = 0.0, True, episode + 1, []
    env.close()
    return replay


def held_out_windows(replay: Any, length: int, others: int, seed: int) -> dict[str, dict[str, np.ndarray]]:
    """'rewarded': a window ending at each rewarded step of ``replay``; 'others': ``others`` random windows."""
    stream = {k: v[0, :replay.filled[0]] for k, v in replay.data.items()}
    ends = np.nonzero(stream["reward"] != 0)[0]
    ends = ends[ends >= length - 1]
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(stream["reward"]) - length, others)
    pick = lambda first: {k: v[first[:, None] + np.arange(length)] for k, v in stream.items()}  # noqa: E731
    return {"rewarded": pick(ends - length + 1), "others": pick(starts)}


def measure(world_model: Any, windows: dict[str, dict[str, np.ndarray]]) -> dict[str, float]:
    """The heads' figures on the held-out windows."""
    from forethought.diagnose import world_model_outputs

    hit = world_model_outputs(world_model, windows["rewarded"])
    paid = np.abs(windows["rewarded"]["reward"][:, -1])
    predicted = hit["reward"][:, -1].numpy()
    terminal = windows["rewarded"]["is_terminal"][:, -1]
    rest = world_model_outputs(world_model, windows["others"])
    plain = windows["others"]["reward"] == 0
    return {"reward_on_rewarded": float(predicted.mean()),
            "rewarded_predicted_half": float((np.abs(predicted) >= 0.5 * paid).mean()),
            "reward_on_others": float(rest["reward"].numpy()[plain].mean()),
            "cont_on_terminal": float(hit["cont"][:, -1].numpy()[terminal].mean()) if terminal.any() else float("nan"),
            "cont_on_others": float(rest["cont"].numpy()[~windows["others"]["is_terminal"]].mean())}


def run(presets: list[str], overrides: list[str], steps: int, updates: int, every: int, seed: int
        ) -> dict[str, Any]:
    """One world model trained from scratch; its figures every ``every`` updates."""
    import torch

    import envs
    from forethought.config import env_kwargs, load_config
    from forethought.loading import build_agent_for

    config = load_config(presets, [*overrides, f"run.seed={seed}", "run.wandb=disabled"])
    torch.manual_seed(seed)
    train, test = random_replay(config, steps, seed), random_replay(config, steps, seed + 10_000)
    windows = held_out_windows(test, config.train.batch_length, 256, seed)
    env = envs.make(**env_kwargs(config))
    world_model = build_agent_for(config, env.observation_space, env.action_space).world_model
    env.close()
    curve, begin = [], time.perf_counter()
    for update in range(1, updates + 1):
        sample = train.sample(config.train.batch_size, config.train.batch_length)
        world_model.update({k: torch.as_tensor(v) for k, v in sample.items()})
        if update % every == 0 or update == updates:
            curve.append({"updates": update, "seconds": time.perf_counter() - begin, **measure(world_model, windows)})
    return {"rewarded_train": int((train.data["reward"] != 0).sum()),
            "rewarded_held_out": len(windows["rewarded"]["reward"]), "curve": curve}


def _mean_std(values: list[float]) -> str:
    return f"{np.mean(values):.3g} ± {np.std(values, ddof=1):.2g}" if len(values) > 1 else f"{values[0]:.3g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--configs", nargs="+", default=["keydoor_vector"], help="presets, stacked")
    parser.add_argument("--compare", nargs="+", default=["train.reward_fraction=0"], metavar="KEYS",
                        help="settings to compare, each one or more KEY=VALUE joined by commas")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=15000, help="env steps in each random replay")
    parser.add_argument("--updates", type=int, default=1200, help="world-model updates per run")
    parser.add_argument("--every", type=int, default=100, help="updates between measurements")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--quick", action="store_true", help="debug sizes, 2,000 steps, 60 updates, one seed")
    parser.add_argument("--tag", help="written to benchmarks/results/reward_learning-TAG-<machine>.json (runs side "
                        "by side keep their own files)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    presets = [*args.configs, "debug"] if args.quick else args.configs
    if args.quick:
        args.steps, args.updates, args.every, args.seeds = 2000, 60, 20, args.seeds[:1]
    rows, table = [], []
    for setting in args.compare:
        overrides = [o for o in setting.split(",") if o]
        runs = {seed: run(presets, overrides, args.steps, args.updates, args.every, seed) for seed in args.seeds}
        reached = {seed: next((p["updates"] for p in r["curve"] if p["rewarded_predicted_half"] >= RECOGNISED), None)
                   for seed, r in runs.items()}
        final = {seed: r["curve"][-1] for seed, r in runs.items()}
        rows.append({"setting": setting, "presets": presets, "seeds": args.seeds, "steps": args.steps,
                     "updates": args.updates, "updates_to_recognised": [reached[s] for s in args.seeds],
                     "runs": [runs[s] for s in args.seeds]})
        table.append({"setting": setting, "rewarded steps (train/held out)": ", ".join(
            f"{runs[s]['rewarded_train']}/{runs[s]['rewarded_held_out']}" for s in args.seeds),
            f"updates to {RECOGNISED:.0%} (per seed)": ", ".join(str(reached[s]) for s in args.seeds),
            "final predicted half": _mean_std([final[s]["rewarded_predicted_half"] for s in args.seeds]),
            "final reward on rewarded": _mean_std([final[s]["reward_on_rewarded"] for s in args.seeds]),
            "final cont on terminal": _mean_std([final[s]["cont_on_terminal"] for s in args.seeds]),
            "s/run": f"{np.mean([final[s]['seconds'] for s in args.seeds]):.0f}"})
        print(table[-1], flush=True)
    print()
    print_table(table, list(table[0]))
    name = "-".join(["reward_learning", *(["quick"] if args.quick else []), *([args.tag] if args.tag else [])])
    path = write_results(name, rows,
                         {"recognised": RECOGNISED, "threads": args.threads})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
