"""Ctrl-C and SIGTERM during a conversion: the first asks the run to stop once the batches in flight are
done (so every record stored is counted, journaled and rotated), a second one stops it at once."""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

from mapreduce.lifecycle import Interrupted

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Whether, and by which signal, the run was asked to stop."""

    def __init__(self):
        self.signum: int | None = None

    def __bool__(self) -> bool:
        return self.signum is not None

    def interruption(self) -> Interrupted | None:
        return Interrupted(self.signum) if self.signum is not None else None

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            raise Interrupted(signum)
        self.signum = signum


@contextlib.contextmanager
def stop_gently() -> Iterator[StopRequest]:
    """Within this block the first SIGINT or SIGTERM only sets the request (main thread only)."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {signum: signal.signal(signum, request._handle) for signum in _SIGNALS}
    try:
        yield request
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
