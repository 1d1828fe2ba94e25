"""Signals for mr's processes: the coordinator stops on SIGTERM as on Ctrl-C; workers leave both to it.

A worker also dies with its coordinator (Linux's parent-death signal), so a
coordinator killed outright (SIGKILL, the OOM killer) leaves no worker waiting
forever on its queue.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import signal

_PR_SET_PDEATHSIG = 1


def stop_on_terminate() -> None:
    """In the coordinator: SIGTERM (a batch system, the cluster watcher) stops the run like Ctrl-C."""
    signal.signal(signal.SIGTERM, _interrupt)


def become_worker() -> None:
    """In a forked worker: ignore Ctrl-C and die on SIGTERM (the coordinator stops us), and with the coordinator."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: a killed coordinator may leave workers behind


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
