"""The work dir: a private place for a run's scratch files, the S3 cache and staged outputs.

Spill runs and cached objects are read back as trusted data, so every
directory the engine trusts must belong to the user and be closed to others
(``trusted_dir``). A run holds a lock on its scratch directory while it lives;
a later run takes the lock of a dead run's leftovers (killed with SIGKILL, the
machine rebooted) and removes them (``scratch_dir``).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import stat
import tempfile
from contextlib import contextmanager
from typing import Iterator

from .errors import JobError, JobLoadError

log = logging.getLogger(__name__)

SCRATCH_PREFIX = "mr-run-"
LOCK_NAME = ".lock"


def default_work_dir() -> str:
    """``mr-<uid>`` in the system temporary directory: private to the user, kept between runs for the cache."""
    return trusted_dir(os.path.join(tempfile.gettempdir(), f"mr-{os.getuid()}"), "the default work dir",
                       private=True)


def work_dir_for(given: str | None) -> str:
    """The work dir to use: ``-w DIR`` as given (it must take files), or the default one."""
    if given is None:
        return default_work_dir()
    check_writable(given, "work dir")
    return given


def trusted_dir(path: str, what: str, private: bool = False) -> str:
    """``path``, created (mode 0700) if missing; JobLoadError unless it is a real directory of this user's
    that no one else can write to (nor read, if ``private``), and that this user can write to."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as e:
        raise JobLoadError(f"{what} {path}: cannot create it: {e.strerror}") from None
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise JobLoadError(f"{what} {path} is not a directory (a link or a file is there); remove it or give "
                           "another work dir with -w DIR")
    if info.st_uid != os.geteuid():
        raise JobLoadError(f"{what} {path} belongs to another user (uid {info.st_uid}), who could plant files "
                           "that this run would trust; remove it or give another work dir with -w DIR")
    closed = 0o077 if private else 0o022
    if info.st_mode & closed:
        raise JobLoadError(f"{what} {path} is open to other users (mode {stat.S_IMODE(info.st_mode):04o}); "
                           f"run 'chmod go-{'rwx' if private else 'w'} {path}' or give another work dir with -w DIR")
    check_writable(path, what)
    return path


def check_writable(path: str, what: str) -> None:
    """JobLoadError if files cannot be made in ``path`` (read-only file system, permissions)."""
    if not os.access(path, os.W_OK | os.X_OK):
        reason = "read-only file system" if _read_only(path) else "permission denied"
        raise JobLoadError(f"{what} {path}: cannot write there ({reason}); give a writable one with -w DIR")


def _read_only(path: str) -> bool:
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)


@contextmanager
def scratch_dir(work_dir: str) -> Iterator[str]:
    """A fresh directory for one run's spills, locked while the run lives and removed afterwards.

    Leftovers of dead runs in ``work_dir`` are removed first.
    """
    remove_dead_runs(work_dir)
    try:
        path = tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=work_dir)
    except OSError as e:
        raise JobLoadError(f"work dir {work_dir}: cannot make a scratch directory there: {e.strerror}") from None
    lock = os.open(os.path.join(path, LOCK_NAME), os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)  # a forked worker shares it; it ends when every holder is gone
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(lock)


def remove_dead_runs(work_dir: str) -> None:
    """Remove the scratch directories in ``work_dir`` whose run is gone (their lock is free)."""
    for entry in os.scandir(work_dir):
        if not entry.name.startswith(SCRATCH_PREFIX) or not entry.is_dir(follow_symlinks=False):
            continue
        if take_lock_of_dead(os.path.join(entry.path, LOCK_NAME)):
            log.info("removing %s, left by a run that died", entry.path)
            shutil.rmtree(entry.path, ignore_errors=True)


def take_lock_of_dead(path: str) -> bool:
    """True if ``path`` is a lock file of this user's that no live process holds (its owner died)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False  # no lock yet (a run starting), or not ours to judge
    try:
        if os.fstat(fd).st_uid != os.geteuid():
            return False
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    finally:
        os.close(fd)


def no_space(path: str, error: OSError) -> JobError:
    """The one-line error for a full (or failing) disk under ``path``."""
    return JobError(f"{path}: {error.strerror.lower() if error.strerror else error}; free some space there "
                    "or choose another place")
