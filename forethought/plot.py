"""``forethought plot``: learning curves of runs, grouped by a config field, and when each reaches a threshold.

Each run folder gives its ``config.yaml`` and the records of ``metrics.jsonl`` that hold the metric. Runs
are grouped by the value of a dotted config field (``agent.name`` by default); a group's curve is the mean
over its runs and a Student-t 95% interval of that mean, on the union of the runs' x values, each run
linearly interpolated between its own records and counted only within its own range (so a shorter run
does not drag the end of the curve). The table is read from the raw records: the env step and the wall
second at which a run's metric first reaches the threshold, and its final value (its last record's).
"""

from __future__ import annotations

import csv
import glob
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy import stats

from forethought.config import ConfigError
from forethought.tracking import read_metrics

X_KEYS = {"env_steps": ("step", "env steps"), "wall": ("time_s", "wall seconds")}


@dataclass
class Curve:
    """One run's metric against env steps and wall seconds."""

    run: Path
    group: str
    steps: np.ndarray
    seconds: np.ndarray
    values: np.ndarray

    def x(self, axis: str) -> np.ndarray:
        return self.steps if axis == "env_steps" else self.seconds


def expand(patterns: Sequence[str]) -> list[Path]:
    """Run folders named by paths or glob patterns (a folder with metrics.jsonl), in order, without repeats."""
    runs: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else []
        if matches:  # a pattern may also match a sweep's other folders (logs/, tune/): only run folders count
            found = [Path(m) for m in matches if (Path(m) / "metrics.jsonl").exists()]
            if not found:
                raise ConfigError(f"'{pattern}' matches no run folder (none of its {len(matches)} matches holds "
                                  "metrics.jsonl)")
        else:
            path = Path(pattern)
            if not (path / "metrics.jsonl").exists():
                raise ConfigError(f"'{pattern}' is not a run folder (no metrics.jsonl)" if path.exists() else
                                  f"'{pattern}' matches no run folder")
            found = [path]
        runs += [path for path in found if path not in runs]
    return runs


def field(config: dict[str, Any], dotted: str) -> str:
    """The value of a dotted config field, as text."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(f"config field '{dotted}' is not in the runs' config.yaml; give --group a dotted field "
                              "such as agent.name, env.id or run.seed")
        node = node[part]
    return str(node)


def load(runs: Sequence[Path], metric: str, group: str) -> list[Curve]:
    """Each run's records of ``metric``; runs without one are refused by name."""
    curves = []
    for run in runs:
        config = yaml.safe_load((run / "config.yaml").read_text()) if (run / "config.yaml").exists() else {}
        rows = read_metrics(run)
        rows = [r for r in rows if r.get(metric) is not None]
        if not rows:
            raise ConfigError(f"run '{run}' has no '{metric}' records; pick another --metric (for example "
                              "episode/return, eval/return or world_model/loss)")
        curves.append(Curve(run, field(config, group), np.array([r["step"] for r in rows], float),
                            np.array([r["time_s"] for r in rows], float), np.array([r[metric] for r in rows], float)))
    return curves


def band(curves: Sequence[Curve], axis: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x, mean, low and high (Student-t 95% interval of the mean; the mean itself where one run covers x)."""
    grid = np.unique(np.concatenate([c.x(axis) for c in curves]))
    values = np.full((len(curves), len(grid)), np.nan)
    for i, c in enumerate(curves):
        inside = (grid >= c.x(axis)[0]) & (grid <= c.x(axis)[-1])
        values[i, inside] = np.interp(grid[inside], c.x(axis), c.values)
    count = np.sum(~np.isnan(values), 0)  # at least one: every x is some run's own
    mean = np.nanmean(values, 0)
    half = np.zeros(len(grid))
    many = count > 1
    if many.any():
        spread = np.nanstd(values[:, many], 0, ddof=1)
        half[many] = stats.t.ppf(0.975, count[many] - 1) * spread / np.sqrt(count[many])
    return grid, mean, mean - half, mean + half


def threshold_rows(curves: Sequence[Curve], threshold: float | None) -> list[dict[str, Any]]:
    """Per run: its group, when its metric first reaches ``threshold`` (env steps and wall seconds, or None)
    and its final value."""
    rows = []
    for c in curves:
        hit = np.nonzero(c.values >= threshold)[0] if threshold is not None else np.array([], int)
        rows.append({"run": str(c.run), "group": c.group,
                     "steps_to_threshold": int(c.steps[hit[0]]) if hit.size else None,
                     "seconds_to_threshold": float(c.seconds[hit[0]]) if hit.size else None,
                     "final": float(c.values[-1]), "final_step": int(c.steps[-1])})
    return rows


def markdown(rows: Sequence[dict[str, Any]], metric: str, threshold: float | None) -> str:
    """The table as markdown, one row per run, then each group's mean final value and its spread."""
    reach = f"env steps to {threshold:g}" if threshold is not None else None
    head = ["group", "run", *([reach, "wall s to threshold"] if reach else []), f"final {metric}", "at env step"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        cells = [r["group"], Path(r["run"]).name]
        if reach:
            cells += [f"{r['steps_to_threshold']:,}" if r["steps_to_threshold"] is not None else "not reached",
                      f"{r['seconds_to_threshold']:.0f}" if r["seconds_to_threshold"] is not None else "-"]
        cells += [f"{r['final']:.4g}", f"{r['final_step']:,}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for group in dict.fromkeys(r["group"] for r in rows):
        finals = [r["final"] for r in rows if r["group"] == group]
        spread = f" ± {np.std(finals, ddof=1):.4g} (std, ddof=1)" if len(finals) > 1 else ""
        lines.append(f"{group}: final {metric} {np.mean(finals):.4g}{spread} over {len(finals)} run(s)")
    return "\n".join(lines)


def draw(curves: Sequence[Curve], metric: str, axis: str, out: Path, threshold: float | None) -> list[Path]:
    """The PNG and the SVG of the groups' curves; their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    groups = list(dict.fromkeys(c.group for c in curves))
    for colour, group in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"] * 4, groups, strict=False):
        members = [c for c in curves if c.group == group]
        grid, mean, low, high = band(members, axis)
        ax.plot(grid, mean, color=colour, label=f"{group} ({len(members)} run{'s' if len(members) > 1 else ''})")
        if len(members) > 1:
            ax.fill_between(grid, low, high, color=colour, alpha=0.2, linewidth=0)
    if threshold is not None:
        ax.axhline(threshold, color="grey", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    ax.set_xlabel(X_KEYS[axis][1])
    ax.set_ylabel(metric)
    ax.set_title(f"{metric}: mean and 95% interval over runs")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = [out.with_suffix(".png"), out.with_suffix(".svg")]
    for path in paths:
        fig.savefig(path, dpi=120)
    plt.close(fig)
    return paths


def plot(patterns: Sequence[str], metric: str = "eval/return", axis: str = "env_steps", group: str = "agent.name",
         threshold: float | None = None, out: Path = Path("plot.png")) -> dict[str, Any]:
    """Draw the curves and write the table (markdown and CSV beside the plot); what was written."""
    if axis not in X_KEYS:
        raise ConfigError(f"--x must be one of {', '.join(X_KEYS)}, got '{axis}'")
    curves = load(expand(patterns), metric, group)
    paths = draw(curves, metric, axis, out, threshold)
    rows = threshold_rows(curves, threshold)
    table = markdown(rows, metric, threshold)
    md, table_csv = out.with_suffix(".md"), out.with_suffix(".csv")
    md.write_text(table + "\n")
    with table_csv.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return {"plots": [str(p) for p in paths], "table": table, "markdown": str(md), "csv": str(table_csv),
            "rows": rows}
