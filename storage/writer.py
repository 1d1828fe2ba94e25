"""Append pings to the layout's active logs, safely from many processes at once, rotating full logs.

Every append takes an exclusive ``flock`` on the log, checks that the open file is
still the one at the log's path (another process may have rotated it away), and
writes the whole line in one ``write``. Rotation renames the log while holding
the same lock, so once a log is pending no writer can append to it again and the
compressor may take it: a line that ``write`` returned for is never lost.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Sequence

from . import fastjson
from .layout import check_name_lengths, is_file_at, log_path, name_max, pending_path
from .schema import Schema

log = logging.getLogger(__name__)

DEFAULT_MAX_LOG_SIZE = 500_000_000
"""Bytes of uncompressed log before rotation (the production setting)."""


@dataclass
class WriterStats:
    records: int = 0
    bytes: int = 0
    rotations: int = 0
    cleaned_payloads: int = 0
    """String payloads that had CR/LF replaced by spaces."""


class LayoutWriter:
    """Files pings under ``base_dir`` according to ``schema``.

    ``version`` is the payload format version written into file names
    (``.v2.log`` for converted pings). Use as a context manager, or call
    ``close()``; ``rotate_all()`` hands every log this writer touched to the
    compressor, e.g. at the end of a conversion run.
    """

    def __init__(self, base_dir: str, schema: Schema | None = None, *,
                 max_log_size: int = DEFAULT_MAX_LOG_SIZE, version: int = 1, max_open_files: int = 64):
        if max_log_size <= 0:
            raise ValueError(f"max_log_size must be positive, got {max_log_size}")
        self.base_dir = base_dir
        self.schema = schema or Schema.default()
        self.max_log_size = max_log_size
        self.version = version
        self.max_open_files = max_open_files
        self.stats = WriterStats()
        self._open: OrderedDict[str, int] = OrderedDict()
        self._touched: set[str] = set()
        self._name_max = name_max(base_dir)

    def write(self, uuid: str, payload: str | Any, dimensions: Sequence[Any]) -> str:
        """Append one ``uuid<TAB>json`` line; returns the log path it went to.

        ``dimensions`` are raw values in schema order; the schema cleans them.
        A string payload is written as is (CR/LF become spaces); anything else
        is dumped as minimal JSON. Raises NameTooLong (nothing written) for a
        value too long for a file name, and an OSError naming the log if the
        write fails (the log is left as it was).
        """
        if not uuid or any(c in uuid for c in "\t\r\n"):
            raise ValueError(f"ping id {uuid!r} is empty or contains a tab or line break")
        if isinstance(payload, str):
            body = self._one_line(uuid, payload).encode("utf-8")
        else:
            body = fastjson.dumps(payload)
        path = log_path(self.base_dir, self.schema.apply(dimensions), self.version)
        line = b"%s\t%s\n" % (uuid.encode("utf-8"), body)
        self._append(path, line)
        self.stats.records += 1
        self.stats.bytes += len(line)
        return path

    def rotate_all(self) -> list[str]:
        """Rotate every non-empty log this writer has written to; returns the pending paths."""
        touched = sorted(self._touched)
        self._touched.clear()
        self._close_all()
        pending = [rotate_log(path) for path in touched]
        self.stats.rotations += sum(1 for p in pending if p)
        return [p for p in pending if p]

    @property
    def touched(self) -> set[str]:
        """The active logs this writer has appended to since the last ``rotate_all``."""
        return set(self._touched)

    def close(self) -> None:
        self._close_all()

    def __enter__(self) -> "LayoutWriter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------

    def _one_line(self, uuid: str, payload: str) -> str:
        if "\n" in payload or "\r" in payload:
            log.warning("ping %s: payload contains line breaks; replaced them with spaces", uuid)
            self.stats.cleaned_payloads += 1
            payload = payload.replace("\r", " ").replace("\n", " ")
        return payload

    def _append(self, path: str, line: bytes) -> None:
        try:
            self._append_locked(path, line)
        except OSError as e:
            if e.filename is None:  # os.write and friends do not say which file
                raise OSError(e.errno, e.strerror, path) from None
            raise

    def _append_locked(self, path: str, line: bytes) -> None:
        while True:
            fd = self._fd(path)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if not is_file_at(fd, path):
                    self._forget(path)  # rotated by another process: open the new log
                    continue
                size_before = os.fstat(fd).st_size
                _write_whole(fd, line, size_before)
                if size_before + len(line) >= self.max_log_size:
                    self._rotate(path)
                return
            finally:
                if self._open.get(path) == fd:
                    fcntl.flock(fd, fcntl.LOCK_UN)

    def _rotate(self, path: str) -> None:
        """Rename a full log to a pending name. The caller holds the log's lock."""
        os.rename(path, pending_path(path))
        self.stats.rotations += 1
        self._forget(path)

    def _fd(self, path: str) -> int:
        fd = self._open.get(path)
        if fd is not None:
            self._open.move_to_end(path)
            return fd
        check_name_lengths(path, self.base_dir, self._name_max)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        try:
            fd = os.open(path, flags, 0o644)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(path, flags, 0o644)
        self._open[path] = fd
        self._touched.add(path)
        while len(self._open) > self.max_open_files:
            _, oldest = self._open.popitem(last=False)
            os.close(oldest)
        return fd

    def _forget(self, path: str) -> None:
        fd = self._open.pop(path, None)
        if fd is not None:
            os.close(fd)  # also releases its lock

    def _close_all(self) -> None:
        for path in list(self._open):
            self._forget(path)


def rotate_log(path: str) -> str | None:
    """Hand one active log to the compressor, safely against concurrent writers.

    Returns the pending path, or None if the log is empty or gone (another
    process rotated it first).
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if not is_file_at(fd, path) or os.fstat(fd).st_size == 0:
            return None
        pending = pending_path(path)
        os.rename(path, pending)
        log.debug("rotated %s to %s", path, pending)
        return pending
    finally:
        os.close(fd)


def _write_whole(fd: int, data: bytes, size_before: int) -> None:
    """Write all of ``data`` or nothing: a failed or interrupted write (disk full, Ctrl-C) is cut back off."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view):]
    except BaseException:
        os.ftruncate(fd, size_before)
        raise
