"""The learner's torch thread count, chosen while it trains: as many threads as pay, on this machine, now.

Several torch threads wait for each other at every operation. On an idle machine a second thread makes a
small model's update about 1.4 times faster; beside one busy process on two cores the same two threads make
it about 2.5 times slower than one thread (figures in the README). No fixed count is right on both, so
``scale.learner_threads=auto`` measures: the learner times every update, and every ``period`` updates (sooner
at the start: after 5, 25, 50 and 100 updates) it tries its neighbouring thread counts (half and double, within
the cores this process may use) for a few updates each and keeps whichever was fastest by a clear margin. A
probe that is already much slower than the current count stops after one update, so a busy machine costs
about one slow update per period.
"""

from __future__ import annotations

import os
import statistics
from collections import deque
from collections.abc import Callable


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows
        return os.cpu_count() or 1


def candidate_counts(max_threads: int) -> list[int]:
    """1, 2, 4, ... up to ``max_threads``, and ``max_threads`` itself."""
    counts, n = [], 1
    while n < max_threads:
        counts.append(n)
        n *= 2
    return [*counts, max_threads]


class ThreadTuner:
    """Picks a thread count from the durations of the updates made with it.

    Call ``threads`` before an update (and apply it), then ``record(seconds)`` after it. ``apply`` is called
    with every new count (``torch.set_num_threads`` in the learner).
    """

    def __init__(self, max_threads: int, apply: Callable[[int], None], start: int = 1, period: int = 200,
                 settle: int = 5, probe: int = 3, margin: float = 0.05):
        self.counts = candidate_counts(max(1, max_threads))
        self.apply = apply
        self.period, self.settle, self.probe_updates, self.margin = period, settle, probe, margin
        self.current = min(self.counts, key=lambda n: abs(n - start))
        self.recent: deque[float] = deque(maxlen=max(settle, probe) * 2)
        self.since_probe = 0
        self.gap = settle  # updates before the next round of probes: settle, then 25, 50, ... up to period
        self.skip = 3  # the first updates (a compiled learner compiles in them, caches warm up)
        self.trial: int | None = None  # the count being probed
        self.pending: list[int] = []  # counts still to probe in this round
        self.trial_times: dict[int, list[float]] = {}
        #: counts that have run an update: torch.compile guards on the thread count, so a compiled learner
        #: compiles again at the first update with a new count, which measures the compiler, not the count
        self.seen = {self.current}
        apply(self.current)

    @property
    def threads(self) -> int:
        """The count the next update runs with."""
        return self.trial if self.trial is not None else self.current

    def record(self, seconds: float) -> None:
        """The duration of the update just made with ``threads`` threads."""
        if self.skip:
            self.skip -= 1
            return
        if self.trial is None:
            self.recent.append(seconds)
            self.since_probe += 1
            if len(self.counts) > 1 and self.since_probe >= self.gap and len(self.recent) >= self.settle:
                self._start_round()
            return
        if self.trial not in self.seen:
            self.seen.add(self.trial)
            return
        times = self.trial_times.setdefault(self.trial, [])
        times.append(seconds)
        base = statistics.median(self.recent)
        if len(times) >= self.probe_updates or seconds > 1.5 * base:  # enough, or clearly slower already
            self._next_trial()

    def _start_round(self) -> None:
        i = self.counts.index(self.current)
        self.pending = [self.counts[j] for j in (i + 1, i - 1) if 0 <= j < len(self.counts)]
        self.trial_times = {self.current: list(self.recent)}
        self._next_trial()

    def _next_trial(self) -> None:
        if self.pending:
            self.trial = self.pending.pop(0)
            self.trial_times.pop(self.trial, None)
            self.apply(self.trial)
            return
        self.trial = None
        medians = {n: statistics.median(t) for n, t in self.trial_times.items() if t}
        best = min(medians, key=lambda n: medians[n])
        if best != self.current and medians[best] < (1 - self.margin) * medians[self.current]:
            self.current = best
            self.recent.clear()
        self.apply(self.current)
        self.since_probe = 0
        self.gap = min(self.period, max(25, 2 * self.gap))  # early rounds come soon: the first updates are noisy
