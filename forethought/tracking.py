"""Metrics go to ``metrics.jsonl`` in the run folder, to the console, and to Weights & Biases.

W&B runs offline by default (no account, no network); ``run.wandb=online`` syncs live and
``disabled`` turns it off. A run folder keeps one W&B run id, so a resumed run continues the
same W&B run.
"""

from __future__ import annotations

import json
import netrc
import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from tqdm import tqdm

from forethought.config import Config, ConfigError

CONSOLE_KEYS = ("episode/return", "eval/return", "episode/length", "perf/env_steps_per_s", "perf/train_ratio",
                "world_model/loss", "actor_critic/entropy")


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The records of a run folder's ``metrics.jsonl``, in the order written (what :class:`Tracker` writes)."""
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines() if line.strip()]


class Tracker:
    """One sink for metric records: JSONL always, the console, and W&B unless disabled."""

    def __init__(self, run_dir: Path, config: Config, console: bool = True, resume_step: int = 0):
        self.run_dir = run_dir
        self.console = console
        self.artifacts = config.run.wandb_artifacts
        path = run_dir / "metrics.jsonl"
        if path.exists():  # a run resumed from a checkpoint drops the records written after it
            kept = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= resume_step]
            path.write_text("".join(line + "\n" for line in kept))
        self.wandb: Any = None
        if config.run.wandb != "disabled":
            self.wandb = start_wandb(run_dir, config)
        self.file = open(path, "a")

    def log(self, record: dict[str, Any]) -> None:
        """Write one record, keyed by its ``step`` (env steps)."""
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.wandb is not None:
            self.wandb.log({k: v for k, v in record.items() if k != "step" and v is not None}, step=int(record["step"]))
        if self.console:
            parts = [f"{k.split('/')[-1]} {record[k]:.3g}" for k in CONSOLE_KEYS if record.get(k) is not None]
            tqdm.write(f"step {record['step']:>9,}  " + "  ".join(parts))

    def media(self, step: int, videos: dict[str, Path]) -> None:
        """Videos (mp4 or gif files) for W&B at env step ``step``, by name (e.g. ``report/openloop_image``)."""
        if self.wandb is not None and videos:
            import wandb

            # not committed: the record of this env step (logged next, or already) completes the row
            self.wandb.log({name: wandb.Video(str(path), format="gif" if path.suffix == ".gif" else "mp4")
                            for name, path in videos.items()}, step=step, commit=False)

    def checkpoint(self, weights: Path, step: int) -> None:
        """The agent's weights of a checkpoint as a W&B model artifact (with run.wandb_artifacts)."""
        if self.wandb is not None and self.artifacts:
            import wandb

            artifact = wandb.Artifact(f"{self.wandb.name}-agent", type="model", metadata={"env_step": step},
                                      description="the agent's weights (RLlib module state: numpy arrays by name)")
            artifact.add_file(str(weights), name="module_state.pkl")
            self.wandb.log_artifact(artifact, aliases=["latest", f"step_{step}"])

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


def has_wandb_key() -> bool:
    """Whether an online W&B run would find an API key (WANDB_API_KEY, or `wandb login`'s netrc entry)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def check_wandb_key(config: Config) -> None:
    """Refuse run.wandb=online without an API key, in one sentence (called before Ray starts)."""
    if config.run.wandb == "online" and not has_wandb_key():
        raise ConfigError("run.wandb=online needs a W&B API key: run `wandb login` or set WANDB_API_KEY; or keep "
                          "run.wandb=offline (the default) and upload later with `wandb sync`")


def start_wandb(run_dir: Path, config: Config) -> Any:
    """The W&B run of a run folder (one id per folder, so a resumed run continues it); online without a key or a
    reachable server is refused with one sentence."""
    import wandb

    run = config.run
    check_wandb_key(config)
    id_file = run_dir / "wandb_id.txt"
    if not id_file.exists():  # `wandb agent` names the run it made for this command
        id_file.write_text(os.environ.get("WANDB_RUN_ID") or secrets.token_hex(4))
    try:
        return wandb.init(
            project=run.project, dir=str(run_dir), mode=run.wandb, id=id_file.read_text().strip(), resume="allow",
            name=run.name or run_dir.name, group=run.group or None, tags=list(run.tags) or None,
            notes=run.notes or None, config=config.model_dump(mode="json"),
            settings=wandb.Settings(silent=True, console="off",
                                    init_timeout=float(os.environ.get("WANDB_INIT_TIMEOUT", 90))))
    except Exception as error:  # W&B raises several kinds (CommError, UsageError, timeouts) for one cause
        if run.wandb != "online":
            raise
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"run.wandb=online could not start a W&B run ({first}); check the network and the key, "
                          "or keep run.wandb=offline and upload later with `wandb sync`") from None
