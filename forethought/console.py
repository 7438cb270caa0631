"""A quiet console: third-party messages go to ``logs/third_party.log`` in the run folder, and a finished
run ends with a short summary.

Ray, RLlib and W&B announce themselves at start (deprecation notes, the object-store warning, the
new-API-stack note, W&B's Weave advertisement), some from C++ straight to the process's stderr.
Python loggers of those libraries are sent to the log file for the whole run; while Ray starts and
builds its actors and while W&B starts, the process's stderr itself (file descriptor 2) points at
the file too, which catches what native code prints there.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LOG_NAME = "logs/third_party.log"
#: the loggers of libraries whose messages are noise on a console (their warnings stay in the log file)
LIBRARY_LOGGERS = ("ray", "wandb", "py.warnings")


def log_path(run_dir: Path) -> Path:
    """Where a run's third-party messages go."""
    path = run_dir / LOG_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def route_library_logs(run_dir: Path) -> None:
    """Send the library loggers (and Python warnings) to the run's log file instead of the console."""
    handler = logging.FileHandler(log_path(run_dir))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.forethought_run_log = True  # type: ignore[attr-defined]
    logging.captureWarnings(True)
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            # console handlers go, and so does an earlier run's log file (several runs in one process)
            if getattr(old, "forethought_run_log", False) or (
                    isinstance(old, logging.StreamHandler) and not isinstance(old, logging.FileHandler)):
                logger.removeHandler(old)
                if isinstance(old, logging.FileHandler):
                    old.close()
        logger.addHandler(handler)
        logger.propagate = False


@contextlib.contextmanager
def stderr_to_log(run_dir: Path) -> Iterator[None]:
    """Point the process's stderr (file descriptor 2, native code included) at the run's log file while
    inside; exceptions still reach the console, after the context has put stderr back."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(log_path(run_dir), "a") as file:
        os.dup2(file.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def _value(value: Any) -> str:
    return "-" if value is None else f"{value:.3g}"


def format_summary(summary: dict[str, Any]) -> str:
    """The lines a finished run ends with: budget, time, returns and where its files are."""
    lines = [
        f"done        {summary['env_steps']:,} env steps in {_duration(summary['wall_s'])} "
        f"({summary['env_steps_per_s']:.1f} env steps/s, {summary['updates']:,} updates)",
        f"return      exploring {_value(summary['exploring_return'])} (last {summary['exploring_episodes']} "
        f"episodes), greedy {_value(summary['greedy_return'])} ({summary['greedy_episodes']} episodes)",
        f"run folder  {summary['run_dir']}  (metrics.jsonl, checkpoints/, report/, eval.json, {LOG_NAME})",
    ]
    if summary.get("wandb_dir"):
        lines.append(f"W&B         {summary['wandb_dir']}  (offline; upload with `wandb sync {summary['wandb_dir']}`)"
                     if summary.get("wandb_mode") == "offline" else f"W&B         {summary['wandb_dir']}")
    return "\n".join(lines)
