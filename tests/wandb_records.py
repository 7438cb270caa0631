"""Read back what an offline W&B run wrote: the records of its .wandb file (a LevelDB-style log of protobufs)."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2

HEADER = 7  # ":W&B", two magic bytes, one version byte
BLOCK = 32 * 1024


def records(path: Path) -> list[Any]:
    """Every Record in the file, in order."""
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    out, pending, pos = [], b"", HEADER
    while pos + 7 <= len(data):
        if BLOCK - (pos % BLOCK) < 7:  # a block's tail too short for a record header is padding
            pos += BLOCK - (pos % BLOCK)
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:
            break
        pending = chunk if kind in (1, 2) else pending + chunk  # full, first / middle, last
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            out.append(record)
    return out


def run_files(run_dir: Path) -> list[Path]:
    """The offline run files under ``run_dir``, oldest first (a resumed run adds one)."""
    return sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"))


def history(run_dir: Path) -> list[dict[str, Any]]:
    """The logged rows of the offline runs under ``run_dir``, in order."""
    rows = []
    for path in run_files(run_dir):
        for record in records(path):
            if record.WhichOneof("record_type") == "history":
                rows.append({(item.key or "/".join(item.nested_key)): json.loads(item.value_json)
                             for item in record.history.item})
    return rows
