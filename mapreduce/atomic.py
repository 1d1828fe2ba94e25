"""Files that appear whole or not at all: written under a temporary name beside them, renamed when complete.

The temporary file is locked while it is written, so a later writer of the
same file can tell a dead writer's leftover (lock free: killed with SIGKILL,
the machine rebooted) from a live one's and remove it. Files get the mode the
user's umask gives, as any other program's new files do.
"""

from __future__ import annotations

import fcntl
import glob
import logging
import os
import tempfile
from contextlib import contextmanager
from typing import IO, Iterator

from .errors import OutputError
from .workdir import take_lock_of_dead

log = logging.getLogger(__name__)

TEMPORARY_SUFFIX = ".partial"


@contextmanager
def atomic_file(path: str, mode: str = "w") -> Iterator[IO]:
    """A file object for ``path``'s future content (``mode`` "w" for text, "wb" for bytes).

    ``path`` is replaced when the block ends without an error; on an error the
    temporary file is removed and ``path`` is left as it was. OutputError if
    the finished file cannot be put in place (a full disk, a failing device).
    """
    directory, name = os.path.split(os.path.abspath(path))
    remove_dead_temporaries(directory, name)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=TEMPORARY_SUFFIX)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.fchmod(fd, 0o666 & ~current_umask())
        text = {"encoding": "utf-8", "newline": ""} if "b" not in mode else {}
        with os.fdopen(fd, mode, **text) as f:
            fd = -1  # the file object owns it now
            yield f
            try:
                f.flush()
                os.fsync(f.fileno())
                os.replace(temporary, path)  # while still locked: no one takes this for a leftover
            except OSError as e:
                raise OutputError(f"writing {path} failed: {e.strerror or e}") from None
    except BaseException:
        if fd >= 0:
            os.close(fd)
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def remove_dead_temporaries(directory: str, name: str) -> None:
    """Remove temporary files for ``name`` in ``directory`` left by writers that died."""
    for leftover in glob.glob(os.path.join(glob.escape(directory), f".{glob.escape(name)}.*{TEMPORARY_SUFFIX}")):
        if take_lock_of_dead(leftover):
            log.info("removing %s, left by a run that died", leftover)
            try:
                os.unlink(leftover)
            except FileNotFoundError:
                pass


def current_umask() -> int:
    """The process's umask, read without changing it (another thread may be creating files)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
