"""Signals for mr's processes: the coordinator stops on SIGTERM as on Ctrl-C; workers leave both to it.

The coordinator turns SIGINT and SIGTERM into ``Interrupted``, so a stop asked
for by a signal is told apart from a job's own code raising KeyboardInterrupt
(which is reported like any other exception from the job), and the exit status
says which signal it was (130, 143). A worker also dies with its coordinator
(Linux's parent-death signal), so a coordinator killed outright (SIGKILL, the
OOM killer) leaves no worker waiting forever on its queue.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import signal

_PR_SET_PDEATHSIG = 1


class Interrupted(KeyboardInterrupt):
    """The run was asked to stop by a signal (Ctrl-C, SIGTERM)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def status(self) -> int:
        """The exit status a shell gives a process the signal ended: 128 + the signal's number."""
        return 128 + self.signum


def stop_on_signals() -> None:
    """In the coordinator: Ctrl-C and SIGTERM (a batch system, the cluster watcher) stop the run."""
    signal.signal(signal.SIGINT, _interrupt)
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
    raise Interrupted(signum)
