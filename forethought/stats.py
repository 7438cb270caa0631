"""Summary statistics of episode returns, shared by evaluation and training reports."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats


def summarize(values: Sequence[float], confidence: float = 0.95) -> dict[str, float | None]:
    """Mean, sample standard deviation and Student-t confidence interval of the mean.

    With a single value the spread is 0 and the interval is undefined (None).
    """
    x = np.asarray(values, np.float64)
    if x.size == 0:
        raise ValueError("cannot summarize an empty list of values")
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if x.size > 1 else 0.0
    low: float | None = None
    high: float | None = None
    if x.size > 1:
        half = float(stats.t.ppf(0.5 + confidence / 2, df=x.size - 1)) * std / math.sqrt(x.size)
        low, high = mean - half, mean + half
    return {"mean": mean, "std": std, "ci_low": low, "ci_high": high, "min": float(x.min()), "max": float(x.max())}


def final_return(curve: Sequence[Sequence[float]]) -> float | None:
    """A run's final return, the one measure every table and test uses: the exploring return of its last
    record, i.e. the mean return of its last (up to) 100 finished episodes. ``curve`` holds [env step, that
    mean] pairs in order; None when no episode has ended."""
    return float(curve[-1][1]) if len(curve) else None
