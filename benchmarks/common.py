"""What every benchmark shares: the machine description, repeat statistics and the JSON record."""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from forethought.tracking import read_metrics

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = RESULTS.parent.parent


def machine() -> dict[str, Any]:
    """CPU model and cores, memory, GPU name if any, and the versions that matter."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = None
    try:
        memory = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    versions = {"python": platform.python_version()}
    for package in ("torch", "ray", "gymnasium", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    gpu = None
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": memory, "gpu": gpu, "versions": versions}


def spread(samples: list[float]) -> dict[str, float]:
    """Median and spread (min, max, interquartile range) of repeated measurements."""
    ordered = sorted(samples)
    quartiles = statistics.quantiles(ordered, n=4) if len(ordered) > 1 else [ordered[0]] * 3
    return {"median": statistics.median(ordered), "min": ordered[0], "max": ordered[-1],
            "iqr": quartiles[2] - quartiles[0], "repeats": len(ordered)}


def write_results(name: str, rows: list[dict[str, Any]], extra: dict[str, Any] | None = None,
                  folder: Path = RESULTS) -> Path:
    """Write ``folder``/NAME-MACHINE.json (benchmarks/results/ by default) with the command line, machine and rows."""
    info = machine()
    tag = re.sub(r"\W+", "-", info["gpu"]).strip("-").lower() if info["gpu"] else f"cpu{info['cores']}"
    path = folder / f"{name}-{tag}.json"
    folder.mkdir(parents=True, exist_ok=True)
    record = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "machine": info, "rows": rows,
              **(extra or {})}
    path.write_text(json.dumps(record, indent=2))
    return path


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """Print rows as an aligned text table."""
    cells = [[str(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))


def band_panels(panels: dict[str, dict[str, tuple[Any, Any]]], path: Path, ylabel: str,
                thresholds: dict[str, float] | None = None) -> Path:
    """One panel per task: per agent, the mean over seeds of curves ``ys [seeds, points]`` on ``grid [points]``
    (NaN where a seed has no value yet) with a band from the lowest to the highest seed; a dotted line at each
    task's threshold. Saved as a PNG at ``path``."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), 3.5), squeeze=False)
    for ax, (task, agents) in zip(axes[0], panels.items(), strict=True):
        for agent, (grid, ys) in agents.items():
            with warnings.catch_warnings():  # points before a seed's first value are NaN for that seed
                warnings.simplefilter("ignore", RuntimeWarning)
                low, mean, high = np.nanmin(ys, 0), np.nanmean(ys, 0), np.nanmax(ys, 0)
            line = ax.plot(grid, mean, label=f"{agent} ({len(ys)} seed{'s' * (len(ys) > 1)})")[0]
            ax.fill_between(grid, low, high, color=line.get_color(), alpha=0.2)
        if (thresholds or {}).get(task) is not None:
            ax.axhline((thresholds or {})[task], color="grey", linestyle=":", linewidth=1)
        ax.set_title(task)
        ax.set_xlabel("env steps")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def mean_std(values: list[float | None]) -> str:
    """Mean ± standard deviation over seeds (ddof=1) of the known values; one value alone; "-" for none."""
    import numpy as np

    known = [v for v in values if v is not None]
    if not known:
        return "-"
    return f"{np.mean(known):.2f} ± {np.std(known, ddof=1):.2f}" if len(known) > 1 else f"{known[0]:.2f}"


def train_run(presets: list[str], run_dir: Path, seed: int, overrides: list[str]) -> dict[str, Any]:
    """``forethought train -c PRESETS`` into ``run_dir`` (a subprocess, W&B off, no progress bar), as the
    benchmarks that compare agents run it. Returns the run's ``records`` (metrics.jsonl), its exploring
    ``curve`` ([env step, mean return of the last 100 episodes]), its greedy evaluations ``greedy`` ([env step,
    return, the run's own clock]), ``wall_s`` and the ``command``; a failed run raises with its stderr's end."""
    command = [str(Path(sys.executable).parent / "forethought"), "train", "-c", *presets, f"run.dir={run_dir}",
               f"run.seed={seed}", "run.wandb=disabled", *overrides, "--quiet"]
    begin = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    records = read_metrics(run_dir)
    return {"records": records, "wall_s": time.perf_counter() - begin, "command": " ".join(command[1:]),
            "curve": [[r["step"], r["episode/return"]] for r in records if r.get("episode/return") is not None],
            "greedy": [[r["step"], r["eval/return"], r["time_s"]] for r in records if r.get("eval/return") is not None]}


def open_probe_run(description: str, what: str, argv: list[str] | None, episodes: int,
                   check: Callable[[Any, Any], str | None], options: dict[str, tuple[int, str]] | None = None
                   ) -> tuple[argparse.Namespace, Path, Path, Any, Any]:
    """The command line of a probe that plays a run's agent (a target, ``--episodes``, ``--seed`` and the integer
    ``options``, each --name: (default, help)), then the run
    folder, checkpoint, env and agent (on one torch thread). ``check(config, env)`` returns why the run does not
    suit the probe, or None; a reason, a missing run or a missing checkpoint ends the command with that sentence."""
    import torch

    from forethought import loading, run_folder
    from forethought.config import load_config
    from forethought.evaluate import make_env

    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", type=Path, help=f"a {what} run folder or one of its checkpoints")
    parser.add_argument("--episodes", type=int, default=episodes)
    parser.add_argument("--seed", type=int, default=100, help="episode i is seeded SEED + i")
    for name, (default, text) in (options or {}).items():
        parser.add_argument(f"--{name}", type=int, default=default, help=text)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    try:
        run_dir, checkpoint = run_folder.find_checkpoint(args.target, None)
    except run_folder.CheckpointError as error:
        raise SystemExit(str(error)) from None
    config = load_config([str(run_dir / "config.yaml")], [f"run.dir={run_dir}"])
    env = make_env(config)
    reason = check(config, env)
    if reason:
        env.close()
        raise SystemExit(f"'{run_dir}' trained on {config.env.id}; {reason}")
    agent = loading.load_agent(checkpoint, config, env.observation_space, env.action_space)
    return args, run_dir, checkpoint, env, agent
