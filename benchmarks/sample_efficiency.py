"""Sample efficiency: the flat agent against RLlib's PPO, env steps and wall seconds to each task's threshold.

Every run trains one agent on one task with one seed for the task's env-step budget, evaluating greedily
(the most likely action) every ``eval_every`` env steps on episodes of their own; the flat agent through
``forethought train`` (a subprocess per run, the task's preset), PPO through RLlib with its default model and
hyperparameters on the same env (``benchmarks.hierarchy_vs_flat.run_ppo``). A run's record goes to
``benchmarks/results/sample_efficiency/<task>-<agent>-seed<S>.json``; runs accumulate, so the grid fills
piece by piece, and ``--table-only`` redraws from what is stored.

Final greedy return, everywhere: the greedy evaluation at the end of the budget. Steps to threshold: the
first evaluation at or above the task's threshold (null: not reached); wall seconds to it exclude PPO's
evaluation time and the flat agent's Ray start (its run's own clock). Pin Pad has no threshold: its target
is an exploring return above PPO's at the budget with a greedy return above 0.

    python -m benchmarks.sample_efficiency                                   # the whole grid, 3 seeds
    python -m benchmarks.sample_efficiency --tasks cartpole keydoor_vector --agents flat --seeds 0 1 2
    python -m benchmarks.sample_efficiency --table-only
    python -m benchmarks.sample_efficiency --quick                           # debug sizes, a smoke test
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import RESULTS, ROOT, band_panels, machine, mean_std, train_run, write_results
from forethought.stats import final_return

AGENTS = ("flat", "ppo")


@dataclass(frozen=True)
class Task:
    preset: str
    threshold: float | None
    budget: int
    eval_every: int
    episodes: int


#: issue 14's targets: greedy return at least ``threshold`` within ``budget`` env steps
TASKS: dict[str, Task] = {
    "keydoor_vector": Task("keydoor_vector", 0.9, 15_000, 2_500, 10),
    "minigrid": Task("minigrid", 0.9, 25_000, 5_000, 10),
    "cartpole": Task("cartpole", 450.0, 8_000, 2_000, 10),  # 10 greedy episodes, as its learning test
    "pinpad_vector": Task("pinpad_vector", None, 30_000, 5_000, 5),
    "keydoor": Task("keydoor", 0.9, 30_000, 5_000, 10),
    "pendulum": Task("pendulum", -200.0, 10_000, 2_000, 5),
}


def run_flat(task: Task, seed: int, run_dir: Path, quick: bool) -> dict[str, Any]:
    """``forethought train`` of the task's preset; its greedy and exploring curves from metrics.jsonl."""
    presets = [task.preset, "debug"] if quick else [task.preset]
    out = train_run(presets, run_dir, seed, [f"train.steps={task.budget}", f"train.eval_every={task.eval_every}",
                                             f"train.eval_episodes={task.episodes}"])
    return {key: out[key] for key in ("greedy", "curve", "wall_s", "command")}


def run(name: str, agent: str, seed: int, work: Path, folder: Path, quick: bool) -> Path:
    """One cell of the grid, from scratch; writes and returns its record."""
    task = TASKS[name]
    if quick:
        task = Task(task.preset, task.threshold, 512, 256, 2)
    run_dir = work / f"{name}-{agent}-seed{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)  # never resume a run of other code or settings
    if agent == "ppo":
        from benchmarks.hierarchy_vs_flat import run_ppo

        out = run_ppo(name, seed, task.budget, run_dir, task.preset, task.eval_every, task.episodes, quick)
    else:
        out = run_flat(task, seed, run_dir, quick)
    record = {"task": name, "agent": agent, "seed": seed, "budget": task.budget, "threshold": task.threshold,
              **out, "machine": machine()}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{agent}-seed{seed}.json"
    path.write_text(json.dumps(record, indent=1))
    return path


def to_threshold(record: dict[str, Any]) -> tuple[int | None, float | None]:
    """(env steps, wall seconds) of the first greedy evaluation at or above the threshold."""
    if record["threshold"] is None:
        return None, None
    hit = next((point for point in record["greedy"] if point[1] >= record["threshold"]), None)
    return (int(hit[0]), float(hit[2])) if hit else (None, None)


def final_greedy(record: dict[str, Any]) -> float | None:
    return float(record["greedy"][-1][1]) if record["greedy"] else None


def summary(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per task and agent: every seed's steps to threshold and final greedy return."""
    cells: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in sorted(records, key=lambda r: (r["task"], r["agent"], r["seed"])):
        cells.setdefault((record["task"], record["agent"]), []).append(record)
    rows = []
    for (task, agent), group in cells.items():
        reached = [to_threshold(r) for r in group]
        rows.append({"task": task, "agent": agent, "seeds": [r["seed"] for r in group], "budget": group[0]["budget"],
                     "threshold": group[0]["threshold"], "steps_to_threshold": [s for s, _ in reached],
                     "seconds_to_threshold": [w for _, w in reached],
                     "final_greedy": [final_greedy(r) for r in group],
                     "final_exploring": [final_return(r["curve"]) for r in group],
                     "wall_s": [r["wall_s"] for r in group]})
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| task | agent | seeds | budget | threshold | env steps to threshold (per seed) | wall s to threshold "
             "| final greedy (mean ± std) | final greedy (per seed) | final exploring (mean ± std) | minutes/run |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        steps = ", ".join("not reached" if s is None else f"{s:,}" for s in row["steps_to_threshold"])
        walls = ", ".join("-" if w is None else f"{w:.0f}" for w in row["seconds_to_threshold"])
        per_seed = ", ".join("-" if g is None else f"{g:.2f}" for g in row["final_greedy"])
        threshold = "-" if row["threshold"] is None else f"{row['threshold']:g}"
        lines.append(f"| {row['task']} | {row['agent']} | {','.join(map(str, row['seeds']))} | {row['budget']:,} | "
                     f"{threshold} | {steps if row['threshold'] is not None else '-'} | {walls} | "
                     f"{mean_std(row['final_greedy'])} | {per_seed} | {mean_std(row['final_exploring'])} | "
                     f"{np.mean(row['wall_s']) / 60:.1f} |")
    return "\n".join(lines)


def plot(records: list[dict[str, Any]], path: Path) -> Path:
    """Greedy return against env steps, a panel per task: mean over seeds, band from the lowest to the highest."""
    panels: dict[str, dict[str, tuple[Any, Any]]] = {}
    for task in sorted({r["task"] for r in records}):
        for agent in AGENTS:
            group = [r for r in records if r["task"] == task and r["agent"] == agent and r["greedy"]]
            if group:  # np.interp holds each curve at its first evaluation before it
                grid = np.linspace(0, group[0]["budget"], 51)
                ys = np.stack([np.interp(grid, *np.asarray([p[:2] for p in r["greedy"]], float).T) for r in group])
                panels.setdefault(task, {})[agent] = (grid, ys)
    return band_panels(panels, path, "greedy return", {t: TASKS[t].threshold for t in panels if t in TASKS})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    parser.add_argument("--agents", nargs="+", choices=AGENTS, default=list(AGENTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "sample_efficiency",
                        help="folder for the runs' own files (checkpoints, metrics)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the records (in sample_efficiency/), "
                        "the summary JSON and the figure go (default benchmarks/results)")
    parser.add_argument("--table-only", action="store_true", help="only redraw the table, JSON and figure")
    parser.add_argument("--quick", action="store_true", help="debug sizes, 512 env steps, one seed (a smoke test); "
                        "records go to sample_efficiency-quick/")
    args = parser.parse_args(argv)
    folder = args.results / ("sample_efficiency-quick" if args.quick else "sample_efficiency")
    if args.quick:
        args.seeds = args.seeds[:1]
    if not args.table_only:
        for task in args.tasks:
            for agent in args.agents:
                for seed in args.seeds:
                    print(f"{task} / {agent} / seed {seed} ...", flush=True)
                    print(f"  -> {run(task, agent, seed, args.work, folder, args.quick)}", flush=True)
    records = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    if not records:
        raise SystemExit(f"no stored runs in {folder}; run some first (see --help)")
    rows = summary(records)
    print(table(rows))
    (folder / "table.md").write_text(table(rows) + "\n")
    path = write_results("sample_efficiency-quick" if args.quick else "sample_efficiency", rows,
                         {"final_greedy": "the greedy evaluation at the end of the budget",
                          "steps_to_threshold": "first greedy evaluation at or above the threshold; null: not reached"},
                         args.results)
    print(f"wrote {path}; figure: {plot(records, folder / 'greedy.png')}")


if __name__ == "__main__":
    main()
