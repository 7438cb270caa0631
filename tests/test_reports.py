"""Report statistics (golden values) and video files."""

import imageio.v3 as iio
import numpy as np
import pytest

from forethought.stats import summarize
from forethought.video import write_video


def test_summary_golden_values():
    out = summarize([1.0, 2.0, 3.0, 4.0])
    assert out["mean"] == 2.5 and out["min"] == 1.0 and out["max"] == 4.0
    assert out["std"] == pytest.approx(1.2909944, rel=1e-6)
    # Student t with 3 degrees of freedom: t_0.975 = 3.1824463
    assert out["ci_low"] == pytest.approx(2.5 - 2.0542600, rel=1e-6)
    assert out["ci_high"] == pytest.approx(2.5 + 2.0542600, rel=1e-6)


def test_single_value_has_no_interval_and_empty_is_refused():
    assert summarize([3.0]) == {"mean": 3.0, "std": 0.0, "ci_low": None, "ci_high": None, "min": 3.0, "max": 3.0}
    with pytest.raises(ValueError, match="empty"):
        summarize([])


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_videos_hold_every_frame_enlarged(tmp_path, suffix):
    frames = [np.full((16, 20, 3), 10 * i, np.uint8) for i in range(12)]
    path = write_video(frames, tmp_path / f"clip{suffix}", fps=10)
    read = np.stack(list(iio.imiter(path)))
    assert read.shape[0] == 12 and read.shape[1:3] == (256, 320)
    assert abs(float(read[5].mean()) - 50) < 3  # colours survive (mp4 is lossy)


def test_video_refuses_nothing_and_unknown_suffixes(tmp_path):
    with pytest.raises(ValueError, match="no frames"):
        write_video([], tmp_path / "a.mp4")
    with pytest.raises(ValueError, match=r"\.mp4 or \.gif"):
        write_video([np.zeros((8, 8, 3), np.uint8)], tmp_path / "a.avi")
