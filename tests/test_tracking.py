"""W&B tracking read back from a real offline run: group, tags and notes, metrics and media keyed by env steps,
checkpoints as model artifacts; online without a key or a server refused in one sentence, nothing trained."""

import json
import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio

from tests.wandb_records import history, records, run_files

ROOT = Path(__file__).resolve().parent.parent
FORETHOUGHT = Path(sys.executable).parent / "forethought"


def train(run_dir: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(FORETHOUGHT), "train", "-c", "keydoor", "debug", f"run.dir={run_dir}", *args, "--quiet"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600,
                          env={**os.environ, "RAY_AUTH_MODE": "disabled", "WANDB_MODE": "offline", **(env or {})})


def test_offline_run_holds_config_metrics_videos_and_weights(tmp_path):
    run_dir = tmp_path / "run"
    result = train(run_dir, "train.report_every=128", "train.eval_every=128", "run.group=keydoor-sweep",
                   "run.tags=[pixels, smoke]", "run.notes=what the test reads back", "run.wandb_artifacts=true",
                   "train.steps=320")
    assert result.returncode == 0, result.stderr[-3000:]
    (path,) = run_files(run_dir)
    run = next(r.run for r in records(path) if r.WhichOneof("record_type") == "run")
    assert (run.run_group, list(run.tags), run.notes) == ("keydoor-sweep", ["pixels", "smoke"],
                                                          "what the test reads back")
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert config["run"]["group"] == "keydoor-sweep" and config["train"]["report_every"] == 128

    rows = history(run_dir)
    log = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [row["_step"] for row in rows] == [r["step"] for r in log]  # one row per record, keyed by env steps
    reported = [row for row in rows if "report/image/path" in row]
    assert [row["_step"] for row in reported][:2] == [128, 256] and reported[-1]["_step"] == log[-1]["step"]
    for row in reported:  # each report row also holds the greedy evaluation of that step and its first episode
        assert row["eval/return"] is not None and row["eval/video/_type"] == "video-file"
    files = path.parent / "files"
    episode = list(iio.imiter(files / reported[0]["eval/video/path"]))
    report_video = list(iio.imiter(files / reported[0]["report/image/path"]))
    assert len(episode) > 1 and len(report_video) == 16  # the report shows batch_length steps
    assert (run_dir / "report" / "step_0000000128" / "report_image.mp4").exists()

    artifacts = [r.artifact for r in records(path) if r.WhichOneof("record_type") == "artifact"]
    assert artifacts and artifacts[-1].type == "model" and "latest" in artifacts[-1].aliases
    assert [entry.path for entry in artifacts[-1].manifest.contents] == ["module_state.pkl"]


def test_online_without_a_key_or_a_server_is_refused_in_one_sentence(tmp_path):
    home = tmp_path / "home"  # no ~/.netrc from `wandb login` here
    home.mkdir()
    no_key = {"HOME": str(home), "WANDB_API_KEY": "", "WANDB_MODE": "online"}
    result = train(tmp_path / "a", "run.wandb=online", "train.steps=64", env=no_key)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "forethought: error: run.wandb=online needs a W&B API key: run `wandb login` or set WANDB_API_KEY; or keep "
        "run.wandb=offline (the default) and upload later with `wandb sync`"]
    assert not (tmp_path / "a").exists()  # refused before anything was written
    unreachable = {**no_key, "WANDB_API_KEY": "x" * 40, "WANDB_BASE_URL": "http://127.0.0.1:9",
                   "WANDB_INIT_TIMEOUT": "10"}
    result = train(tmp_path / "b", "run.wandb=online", "train.steps=64", env=unreachable)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith("forethought: error: run.wandb=online could not start a W&B run (")
    assert not (tmp_path / "b" / "checkpoints").exists() and not (tmp_path / "b" / "metrics.jsonl").exists()
