"""Metrics go to ``metrics.jsonl`` in the run folder, to the console, and to Weights & Biases.

W&B runs offline by default (no account, no network); ``run.wandb=online`` syncs live and
``disabled`` turns it off. A run folder keeps one W&B run id, so a resumed run continues the
same W&B run.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from tqdm import tqdm

from forethought.config import Config

CONSOLE_KEYS = ("episode/return", "episode/length", "perf/env_steps_per_s", "perf/train_ratio",
                "world_model/loss", "actor_critic/entropy")


class Tracker:
    """One sink for metric records: JSONL always, the console, and W&B unless disabled."""

    def __init__(self, run_dir: Path, config: Config, console: bool = True, resume_step: int = 0):
        self.run_dir = run_dir
        self.console = console
        path = run_dir / "metrics.jsonl"
        if path.exists():  # a run resumed from a checkpoint drops the records written after it
            kept = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= resume_step]
            path.write_text("".join(line + "\n" for line in kept))
        self.file = open(path, "a")
        self.wandb: Any = None
        if config.run.wandb != "disabled":
            import wandb

            id_file = run_dir / "wandb_id.txt"
            if not id_file.exists():
                id_file.write_text(secrets.token_hex(4))
            self.wandb = wandb.init(
                project=config.run.project, dir=str(run_dir), mode=config.run.wandb, id=id_file.read_text().strip(),
                resume="allow", name=run_dir.name, config=config.model_dump(mode="json"),
                settings=wandb.Settings(silent=True, console="off"),
            )

    def log(self, record: dict[str, Any]) -> None:
        """Write one record, keyed by its ``step`` (env steps)."""
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.wandb is not None:
            self.wandb.log({k: v for k, v in record.items() if k != "step" and v is not None}, step=int(record["step"]))
        if self.console:
            parts = [f"{k.split('/')[-1]} {record[k]:.3g}" for k in CONSOLE_KEYS if record.get(k) is not None]
            tqdm.write(f"step {record['step']:>9,}  " + "  ".join(parts))

    @property
    def wandb_dir(self) -> str:
        """The W&B run's own folder (what ``wandb sync`` takes), or '' when W&B is disabled."""
        return str(Path(self.wandb.dir).parent) if self.wandb is not None else ""

    def summary(self, values: dict[str, Any]) -> None:
        """Final values (e.g. the evaluation) for the W&B run's summary."""
        if self.wandb is not None:
            self.wandb.summary.update(values)

    def finish(self) -> None:
        self.file.close()
        if self.wandb is not None:
            self.wandb.finish()
