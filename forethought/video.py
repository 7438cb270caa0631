"""Videos of episodes, written as mp4 (ffmpeg from imageio-ffmpeg) or gif (Pillow)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import imageio.v3 as iio
import numpy as np

MIN_SIDE = 256


def write_video(frames: Sequence[np.ndarray], path: Path, fps: int = 15) -> Path:
    """Write uint8 H x W x 3 frames to ``path`` (.mp4 or .gif); small frames are enlarged crisply."""
    if not frames:
        raise ValueError("no frames to write: was the env made with capture_frames=True?")
    video = np.stack([np.asarray(frame, np.uint8) for frame in frames])
    if video.shape[-1] == 1:
        video = np.repeat(video, 3, axis=-1)
    scale = max(1, -(-MIN_SIDE // min(video.shape[1:3])))
    video = np.repeat(np.repeat(video, scale, axis=1), scale, axis=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gif":
        iio.imwrite(path, video, duration=1000 / fps, loop=0, plugin="pillow")
    elif path.suffix == ".mp4":
        # even sides for yuv420p; ffmpeg then needs no resizing of its own
        video = video[:, : video.shape[1] // 2 * 2, : video.shape[2] // 2 * 2]
        _write_mp4(video, path, fps)
    else:
        raise ValueError(f"video path must end in .mp4 or .gif, got '{path.name}'")
    return path


def _write_mp4(video: np.ndarray, path: Path, fps: int) -> None:
    import imageio.v2 as iio2

    with iio2.get_writer(path, fps=fps, codec="libx264", macro_block_size=1, quality=7) as writer:
        for frame in video:
            writer.append_data(frame)  # type: ignore[attr-defined]
