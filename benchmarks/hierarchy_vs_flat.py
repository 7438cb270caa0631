"""Flat (Dreamer) vs hierarchical (Director, the planner) vs RLlib's PPO on the built-in tasks and MiniGrid DoorKey.

Every run trains one agent on one task with one seed for a fixed env-step budget and stores its
learning curve (return of finished episodes against env steps) and final greedy evaluation in
``benchmarks/results/hierarchy_vs_flat/<task>-<agent>-seed<N>.json``. Runs accumulate across
invocations, so the grid can be filled piece by piece; ``--table-only`` redraws the table and the
figure from what is stored.

    python -m benchmarks.hierarchy_vs_flat --tasks keydoor_vector --agents flat director ppo --seeds 0 1 2
    python -m benchmarks.hierarchy_vs_flat --tasks keychain_vector --agents flat planner --seeds 0 1 2
    python -m benchmarks.hierarchy_vs_flat --table-only

The flat and hierarchical agents run through ``forethought train`` (a subprocess per run, with
the task's preset, and ``<task>_director`` or ``<task>_planner`` for the hierarchical agents); PPO runs RLlib's own
implementation on the same env (``envs.make``, observations flattened to one array).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import RESULTS, ROOT, machine, mean_std, train_run
from forethought.stats import final_return

FOLDER = RESULTS / "hierarchy_vs_flat"
AGENTS = ("flat", "director", "planner", "ppo")
#: task -> (preset, default env-step budget): the first five fit in 30 minutes on 2 CPU cores for every agent; the
#: long-horizon tasks (key chains, Pin Pad with 4 and 5 pads) take their presets' budgets
TASKS: dict[str, tuple[str, int]] = {
    "keydoor_vector": ("keydoor_vector", 50_000),
    "pinpad_vector": ("pinpad_vector", 30_000),
    "minigrid": ("minigrid", 20_000),
    "keydoor": ("keydoor", 20_000),
    "pinpad": ("pinpad", 20_000),
    "keychain_vector": ("keychain_vector", 50_000),
    "keychain4_vector": ("keychain4_vector", 100_000),
    "pinpad4_vector": ("pinpad4_vector", 50_000),
    "pinpad5_vector": ("pinpad5_vector", 50_000),
}
DEFAULT_TASKS = ("keydoor_vector", "pinpad_vector", "minigrid")


def run_forethought(task: str, agent: str, seed: int, steps: int, run_dir: Path) -> dict[str, Any]:
    """Train the flat or hierarchical agent with ``forethought train``; return its curve and evaluation."""
    preset = TASKS[task][0] + {"director": "_director", "planner": "_planner"}.get(agent, "")
    out = train_run([preset], run_dir, seed, ["--steps", str(steps)])
    evaluation = json.loads((run_dir / "eval.json").read_text())["return"]["mean"]
    return {"curve": out["curve"], "eval_return": evaluation, "wall_s": out["wall_s"], "command": out["command"]}


def ppo_observation(env: Any) -> Any:
    """The env with one observation array for RLlib's default model: the image (as floats in [0, 1], which its
    CNN needs) if there is one, else the vector."""
    import gymnasium as gym

    class Single(gym.ObservationWrapper):
        def __init__(self, env: gym.Env):
            super().__init__(env)
            self.key = "image" if "image" in env.observation_space.spaces else "vector"
            space = env.observation_space[self.key]
            self.observation_space = (gym.spaces.Box(0.0, 1.0, space.shape, np.float32) if self.key == "image"
                                      else space)

        def observation(self, observation: dict[str, np.ndarray]) -> np.ndarray:
            value = observation[self.key]
            return value.astype(np.float32) / 255.0 if self.key == "image" else value

    return Single(env)


#: image sizes (height, width) that RLlib's default CNN has a layout for; PPO sees other sizes' envs at 64 x 64
PPO_IMAGE_SIZES = {(42, 42), (64, 64), (84, 84), (10, 10)}


def ppo_config(preset: str, overrides: list[str]) -> tuple[Any, str]:
    """The preset's config for PPO, with images at 64 x 64 where RLlib's default CNN has no layout for the preset's
    size, and a note for the record's command saying so ('' if unchanged)."""
    from forethought.config import load_config

    config = load_config([preset], overrides)
    if tuple(config.env.image_size) in PPO_IMAGE_SIZES:
        return config, ""
    return (load_config([preset], [*overrides, "env.image_size=[64, 64]"]),
            ", images (if any) at 64 x 64, a size RLlib's default CNN has a layout for")


def run_ppo(task: str, seed: int, steps: int, run_dir: Path, preset: str | None = None, eval_every: int = 0,
            eval_episodes: int = 0, quick: bool = False) -> dict[str, Any]:
    """Train RLlib's PPO (new API stack, default model and hyperparameters) on the same env as ``task``'s preset
    (or ``preset``). With ``eval_every``, its greedy return over ``eval_episodes`` episodes after the first
    training iteration past every multiple of ``eval_every`` env steps goes into ``greedy`` (step, return, wall
    seconds; evaluation time excluded). ``quick``: iterations of 256 env steps instead of 4,000 (smoke tests)."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import gymnasium as gym
    import ray
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.tune.registry import register_env

    import envs
    from envs.wrappers import SeededReset
    from forethought.config import env_kwargs

    config, resized = ppo_config(preset or TASKS[task][0], [f"run.dir={run_dir}", f"run.seed={seed}"])
    kwargs = env_kwargs(config)

    def create(env_config: dict[str, Any]) -> gym.Env:
        options = dict(kwargs)
        env = envs.make(options.pop("env_id"), **options)
        return ppo_observation(SeededReset(env, seed + 100_003 * getattr(env_config, "worker_index", 0), override=True))

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             object_store_memory=256 * 2**20)
    register_env("ppo_env", create)
    ppo = PPOConfig().environment("ppo_env").env_runners(num_env_runners=1).debugging(seed=seed, log_level="ERROR")
    if quick:
        ppo = ppo.training(train_batch_size_per_learner=256, minibatch_size=64, num_epochs=2)
    algo = ppo.build_algo()
    curve, greedy, start, step, evaluating = [], [], time.perf_counter(), 0, 0.0
    try:
        while step < steps:
            before = step
            result = algo.train()
            if "num_env_steps_sampled_lifetime" not in result.get("env_runners", {}):
                raise RuntimeError(f"PPO on {task} sampled no env steps: its env runner failed (Ray's worker logs, "
                                   "/tmp/ray/session_latest/logs, say why)")
            step = int(result["env_runners"]["num_env_steps_sampled_lifetime"])
            mean = result["env_runners"].get("episode_return_mean")
            if mean is not None and np.isfinite(mean):
                curve.append([step, float(mean)])
            if eval_every and (step // eval_every > before // eval_every or step >= steps):
                begin = time.perf_counter()
                value = _evaluate_ppo(algo.get_module(), create, seed, eval_episodes)
                evaluating += time.perf_counter() - begin
                greedy.append([step, value, time.perf_counter() - start - evaluating])
        module = algo.get_module()
        evaluation = _evaluate_ppo(module, create, seed, config.train.eval_episodes)
    finally:
        algo.stop()
        ray.shutdown()
    return {"curve": curve, "eval_return": evaluation, "wall_s": time.perf_counter() - start, "greedy": greedy,
            "command": "RLlib PPOConfig() defaults, 1 env runner" + resized + (", quick iterations" if quick else "")}


def _evaluate_ppo(module: Any, create: Any, seed: int, episodes: int) -> float:
    """Mean return of PPO's greedy (most likely) actions over ``episodes`` episodes: the highest logit for a discrete
    action, the Gaussian's mean (RLlib's inputs are the means, then the log standard deviations), clipped to the
    bounds, for a Box action."""
    import gymnasium as gym
    import torch
    from ray.rllib.core.columns import Columns

    env = create({})
    box = isinstance(env.action_space, gym.spaces.Box)
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + 10_000 + episode)
        total, done = 0.0, False
        while not done:
            with torch.no_grad():
                out = module.forward_inference({Columns.OBS: torch.as_tensor(obs[None]).float()})
            inputs = out[Columns.ACTION_DIST_INPUTS][0]
            if box:
                mean = inputs[: int(np.prod(env.action_space.shape))].numpy().reshape(env.action_space.shape)
                action = np.clip(mean, env.action_space.low, env.action_space.high)
            else:
                action = int(inputs.argmax())
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return float(np.mean(returns))


def run(task: str, agent: str, seed: int, steps: int, work: Path) -> Path:
    """One cell of the grid, from scratch; writes and returns its result file."""
    run_dir = work / f"{task}-{agent}-seed{seed}"
    if run_dir.exists():  # an interrupted run, maybe of other code or settings: never resume it
        shutil.rmtree(run_dir)
    if agent == "ppo":
        out = run_ppo(task, seed, steps, run_dir)
    else:
        out = run_forethought(task, agent, seed, steps, run_dir)
    record = {"task": task, "agent": agent, "seed": seed, "steps": steps, **out, "machine": machine()}
    FOLDER.mkdir(parents=True, exist_ok=True)
    path = FOLDER / f"{task}-{agent}-seed{seed}.json"
    path.write_text(json.dumps(record, indent=1))
    return path


def load_runs(folder: Path = FOLDER) -> list[dict[str, Any]]:
    """Every stored run (``<task>-<agent>-seed<S>.json``; not the summary beside them)."""
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*-seed*.json"))]


def summary(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per task and agent, every seed listed: the final return (``final_return``: the mean return of the
    last 100 episodes at the end, ``forethought.stats.final_return``) and the final greedy evaluation
    (``final_greedy``)."""
    cells: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in sorted(runs, key=lambda r: (r["task"], r["agent"], r["seed"])):
        cells.setdefault((r["task"], r["agent"]), []).append(r)
    return [{"task": task, "agent": agent, "seeds": [r["seed"] for r in group], "budget": group[0]["steps"],
             "final_return": [final_return(r["curve"]) for r in group],
             "final_greedy": [r["eval_return"] for r in group], "wall_s": [r["wall_s"] for r in group]}
            for (task, agent), group in sorted(cells.items())]


def _per_seed(values: list[float | None]) -> str:
    return ", ".join("-" if v is None else f"{v:.2f}" for v in values)


def table(rows: list[dict[str, Any]]) -> str:
    """A markdown table of ``summary``'s rows: final return and greedy evaluation, mean ± std and per seed."""
    lines = ["| task | agent | seeds | env steps | final return (mean ± std) | per seed | greedy eval (mean ± std) "
             "| per seed | minutes/run |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['task']} | {row['agent']} | {','.join(map(str, row['seeds']))} | {row['budget']:,} | "
                     f"{mean_std(row['final_return'])} | {_per_seed(row['final_return'])} | "
                     f"{mean_std(row['final_greedy'])} | {_per_seed(row['final_greedy'])} | "
                     f"{np.mean(row['wall_s']) / 60:.1f} |")
    return "\n".join(lines)


def plot(runs: list[dict[str, Any]], path: Path) -> Path:
    """Learning curves, one panel per task: mean over seeds, band from the lowest to the highest seed."""
    from benchmarks.common import band_panels

    panels: dict[str, dict[str, tuple[Any, Any]]] = {}
    for task in sorted({r["task"] for r in runs}):
        for agent in AGENTS:
            group = [r for r in runs if r["task"] == task and r["agent"] == agent and r["curve"]]
            if group:  # from the first point any seed has (no episode has ended before it) to the budget
                grid = np.linspace(min(r["curve"][0][0] for r in group), max(r["steps"] for r in group), 101)
                ys = np.stack([np.interp(grid, *np.asarray(r["curve"], float).T, left=np.nan) for r in group])
                panels.setdefault(task, {})[agent] = (grid, ys)
    return band_panels(panels, path, "episode return")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(DEFAULT_TASKS))
    parser.add_argument("--agents", nargs="+", choices=AGENTS, default=list(AGENTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=0, help="env-step budget per run; 0 takes the task's default")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "hierarchy_vs_flat",
                        help="folder for the runs' own files (checkpoints, metrics)")
    parser.add_argument("--table-only", action="store_true", help="only redraw the table and figure from stored runs")
    args = parser.parse_args(argv)
    if not args.table_only:
        for task in args.tasks:
            for agent in args.agents:
                for seed in args.seeds:
                    print(f"{task} / {agent} / seed {seed} ...", flush=True)
                    path = run(task, agent, seed, args.steps or TASKS[task][1], args.work)
                    print(f"  -> {path}", flush=True)
    runs = load_runs()
    if not runs:
        raise SystemExit(f"no stored runs in {FOLDER}; run some first (see --help)")
    rows = summary(runs)
    print(table(rows))
    (FOLDER / "table.md").write_text(table(rows) + "\n")
    (FOLDER / "summary.json").write_text(json.dumps(rows, indent=1) + "\n")
    print(f"figure: {plot(runs, FOLDER / 'curves.png')}")


if __name__ == "__main__":
    main()
