"""Env steps per second of `forethought train` at a preset's train ratio, idle and beside a CPU-bound neighbour.

Each measurement is a real `forethought train` process (its own local Ray, one env runner) on a fresh
run folder. The rate is read from its ``metrics.jsonl``: env steps between the first record at or after
``--skip`` env steps and the last one, over the wall time between them, so that Ray's start, the build
and the random-action prefill are excluded. A neighbour is one more process on the machine, started
before the run and stopped after it: ``busy`` is a pure-Python busy loop, ``numpy`` a single-threaded
numpy matrix-product loop (a typical data-processing job). With ``--baseline REV`` the same settings
run at commit REV too (a git worktree, its own ``forethought`` on PYTHONPATH), the sides alternating.

    python -m benchmarks.train_throughput                          # keydoor_vector, idle and busy
    python -m benchmarks.train_throughput --baseline 1404872 --neighbours busy numpy
    python -m benchmarks.train_throughput --compare scale.learner_threads=auto   # a setting against the default
    python -m benchmarks.train_throughput --quick                  # the debug preset, a smoke test
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import print_table, spread, write_results
from benchmarks.learner_timing import ROOT, worktree
from forethought.tracking import read_metrics

NEIGHBOURS = {
    "busy": "while True: pass",
    "numpy": ("import os; os.environ['OPENBLAS_NUM_THREADS'] = os.environ['OMP_NUM_THREADS'] = '1'\n"
              "import numpy as np\na = np.random.rand(400, 400)\nwhile True: a = (a @ a) / 400.0"),
}


def measure(tree: Path, presets: list[str], steps: int, skip: int, neighbour: str, work: Path,
            overrides: tuple[str, ...] = ()) -> float:
    """Env steps per second of one `forethought train` run of ``tree`` beside ``neighbour`` ('' for none)."""
    run_dir = work / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(tree), "RAY_AUTH_MODE": "disabled", "WANDB_MODE": "disabled"}
    other = subprocess.Popen([sys.executable, "-c", NEIGHBOURS[neighbour]]) if neighbour else None
    try:
        command = [sys.executable, "-m", "forethought.cli", "train", "-c", *presets, f"run.dir={run_dir}",
                   "run.wandb=disabled", f"train.steps={steps}", "train.eval_episodes=0",
                   f"train.log_every={skip // 4}", f"train.checkpoint_every={10 * steps}", *overrides, "--quiet"]
        result = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, timeout=3600)
    finally:
        if other is not None:
            other.terminate()
            other.wait()
    if result.returncode != 0:
        raise SystemExit(f"`{' '.join(command)}` in {tree} failed:\n{result.stderr[-2000:]}")
    records = read_metrics(run_dir)
    first = next(r for r in records if r["step"] >= skip)
    last = records[-1]
    return (last["step"] - first["step"]) / (last["time_s"] - first["time_s"])


def main() -> None:
    # a SIGTERM (kill, a scheduler) ends the run through the finally blocks, which stop the neighbour process
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", nargs="+", default=["keydoor_vector"], help="presets, stacked (default "
                        "keydoor_vector)")
    parser.add_argument("--steps", type=int, help="env steps per run (default 6000; 800 with --quick)")
    parser.add_argument("--skip", type=int, help="env steps left out of the rate at the start (default 2000, past "
                        "the prefill; 400 with --quick)")
    parser.add_argument("--neighbours", nargs="+", choices=sorted(NEIGHBOURS), default=["busy"],
                        help="kinds of neighbour process to measure beside (default busy)")
    parser.add_argument("--repeats", type=int, help="runs per setting (default 2; 1 with --quick)")
    parser.add_argument("--baseline", metavar="REV", help="also measure commit REV, alternating with this checkout")
    parser.add_argument("--compare", metavar="KEY=VALUE", nargs="+", default=[],
                        help="also measure this checkout with these overrides (one more side), e.g. "
                             "scale.learner_threads=auto")
    parser.add_argument("--set", metavar="KEY=VALUE", nargs="+", default=[], dest="common",
                        help="overrides for every side, the baseline's too (e.g. train.train_ratio=32, when a "
                             "preset's ratio changed since the baseline)")
    parser.add_argument("--quick", action="store_true", help="the debug preset, short runs: a smoke test")
    args = parser.parse_args()
    presets = [*args.preset, "debug"] if args.quick else args.preset
    steps = args.steps or (800 if args.quick else 6000)
    skip = args.skip or (400 if args.quick else 2000)
    repeats = args.repeats or (1 if args.quick else 2)
    common = tuple(args.common)
    sides: dict[str, tuple[Path, tuple[str, ...]]] = {"here": (ROOT, common)}
    if args.compare:
        sides[f"here {' '.join(args.compare)}"] = (ROOT, (*common, *args.compare))
    if args.baseline:
        sides[f"baseline {args.baseline}"] = (worktree(args.baseline), common)
    settings = ["", *args.neighbours]

    rates: dict[tuple[str, str], list[float]] = {(t, n): [] for t in sides for n in settings}
    with tempfile.TemporaryDirectory() as work:
        for repeat in range(repeats):
            order = list(rates) if repeat % 2 == 0 else list(rates)[::-1]
            for tree, neighbour in order:
                begin = time.perf_counter()
                tree_path, overrides = sides[tree]
                rate = measure(tree_path, presets, steps, skip, neighbour, Path(work), overrides)
                rates[tree, neighbour].append(rate)
                print(f"repeat {repeat + 1}/{repeats} {tree}, {neighbour or 'idle'}: "
                      f"{rates[tree, neighbour][-1]:.1f} env steps/s ({time.perf_counter() - begin:.0f} s)", flush=True)

    rows: list[dict[str, Any]] = []
    for (tree, neighbour), samples in rates.items():
        idle = rates[tree, ""]
        row: dict[str, Any] = {"side": tree, "neighbour": neighbour or "none", "env_steps_per_s": spread(samples)}
        row["neighbour_over_idle"] = spread([a / b for a, b in zip(samples, idle, strict=True)])
        base = next((t for t in sides if t.startswith("baseline")), None)
        if base:
            row["over_baseline"] = spread([a / b for a, b in zip(samples, rates[base, neighbour], strict=True)])
        rows.append(row)
    table = [{"side": r["side"], "neighbour": r["neighbour"],
              "env steps/s": f"{r['env_steps_per_s']['median']:.1f}",
              "range": f"{r['env_steps_per_s']['min']:.1f}-{r['env_steps_per_s']['max']:.1f}",
              "of idle": f"{r['neighbour_over_idle']['median']:.0%}",
              "over baseline": f"{r['over_baseline']['median']:.2f}x" if "over_baseline" in r else "-"} for r in rows]
    print()
    print_table(table, ["side", "neighbour", "env steps/s", "range", "of idle", "over baseline"])
    print(f"\n`forethought train -c {' '.join([*presets, *common])}`, {steps:,} env steps per run, rate over steps "
          f"{skip:,}-{steps:,} (Ray start, build and prefill excluded), {repeats} repeat(s) per setting, "
          "settings alternating")
    path = write_results("train_throughput-quick" if args.quick else "train_throughput", rows, {
        "presets": presets, "steps": steps, "skip": skip, "repeats": repeats, "baseline": args.baseline,
        "compare": args.compare, "set": args.common,
        "neighbours": {name: NEIGHBOURS[name] for name in args.neighbours},
        "excluded": f"Ray start, algorithm build and the first {skip} env steps (prefill included)"})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
