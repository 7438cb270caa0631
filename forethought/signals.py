"""SIGTERM and SIGINT as requests to stop: the training loop finishes its iteration, checkpoints and exits.

Schedulers, Kubernetes and Ray send SIGTERM on preemption and wait a grace period before SIGKILL;
Ctrl-C sends SIGINT. Either one asks the loop to stop at its next iteration boundary (seconds at most),
write a checkpoint of the current state and exit with 128 + the signal's number (143, 130). A second
signal stops at once, as Ctrl-C twice does elsewhere.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(Exception):
    """Training stopped on a signal after writing a checkpoint; the message says where it is."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell's code for a process ended by this signal: 143 for SIGTERM, 130 for SIGINT."""
        return 128 + self.signum


class StopRequests:
    """A context in which SIGTERM and SIGINT set ``signum`` instead of killing the process.

    Handlers are installed only in the main thread (Python delivers signals there) and the previous
    ones come back on exit.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def name(self) -> str:
        """The signal's name (e.g. SIGTERM), or '' while none has arrived."""
        return signal.Signals(self.signum).name if self.signum else ""

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:  # the second signal: stop now
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous.clear()
