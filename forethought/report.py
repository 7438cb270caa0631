"""What an agent makes of replayed data, written for people to look at: videos and arrays.

``write_report`` runs ``agent.report`` on a replayed batch and writes, into ``folder``:
- ``report.npz``: every array of the report (open-loop errors of vector keys, decoded goals, ...);
- per image key, ``report_<key>.<fmt>``: a video whose rows are the true observations, the world
  model's open-loop predictions, their error (mid-grey where none) and, for the hierarchical agent, the
  manager's goals decoded into observations; one column per replayed sequence.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from forethought.video import write_video

ROWS = ("openloop/{key}_true", "openloop/{key}_pred", "openloop/{key}_error", "goals/{key}")


def report_frames(report: Mapping[str, np.ndarray], key: str, columns: int = 4) -> list[np.ndarray]:
    """Frames [H * rows, W * columns, C] tiling the report's videos of one image key: the true observations, the
    open-loop predictions, their error (grey where none) and (hierarchical agents) the decoded goals, one row each."""
    rows = [report[name.format(key=key)][:columns] for name in ROWS if name.format(key=key) in report]
    if not rows:
        raise KeyError(f"the report has no videos of image key '{key}'")
    steps = rows[0].shape[1]
    # [rows, B, T, H, W, C] -> [T, rows * H, B * W, C]
    grid = np.stack(rows).transpose(2, 0, 3, 1, 4, 5)
    _, n_rows, height, n_cols, width, channels = grid.shape
    return list(grid.reshape(steps, n_rows * height, n_cols * width, channels))


def write_report(agent: Any, batch: Mapping[str, np.ndarray], folder: Path, video_format: str = "mp4",
                 fps: int = 8) -> list[Path]:
    """Write the agent's report on a replayed batch into ``folder``; returns the files written."""
    device = next(agent.parameters()).device
    tensors = {k: torch.as_tensor(np.asarray(v), device=device) for k, v in batch.items()}
    with torch.no_grad():
        report = {k: v.detach().cpu().numpy() for k, v in agent.report(tensors).items()}
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "report.npz"]
    np.savez_compressed(paths[0], **report)
    for key in agent.world_model.encoder.cnn_keys:
        paths.append(write_video(report_frames(report, key), folder / f"report_{key}.{video_format}", fps))
    return paths
