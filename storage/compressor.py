"""Turn pending (rotated) logs into compressed files beside them, surviving a crash at any point.

The compressed copy is written under a ``.partial`` name, synced, and renamed into
place; only then is the pending log removed. So at every instant each record is
in a pending log or a complete compressed file, never only in a half-written
one, and running the compressor again finishes whatever an earlier run left.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Callable

from .codecs import COMPRESSORS, LZMA, Codec
from .layout import PARTIAL_SUFFIX, compressed_path, is_file_at, is_pending

log = logging.getLogger(__name__)

COPY_CHUNK = 1 << 20


@dataclass
class CompressionStats:
    files: int = 0
    raw_bytes: int = 0
    compressed_bytes: int = 0

    def add(self, other: "CompressionStats") -> None:
        self.files += other.files
        self.raw_bytes += other.raw_bytes
        self.compressed_bytes += other.compressed_bytes


def find_pending(base_dir: str) -> list[str]:
    """Every pending log under ``base_dir``, in a stable order."""
    found = []
    for directory, subdirs, files in os.walk(base_dir):
        subdirs.sort()
        found.extend(os.path.join(directory, name) for name in sorted(files) if is_pending(name))
    return found


def compress_file(pending: str, codec: Codec = LZMA) -> CompressionStats:
    """Compress one pending log and remove it; a no-op if another process got there first."""
    try:
        fd = os.open(pending, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return CompressionStats()
    with os.fdopen(fd, "rb") as source:
        # Writers release a rotated log within one write; the lock also keeps
        # two compressors from working on the same file.
        fcntl.flock(fd, fcntl.LOCK_EX)
        if not is_file_at(fd, pending):
            return CompressionStats()
        final = compressed_path(pending, codec)
        if not os.path.exists(final):
            _write_compressed(source, final, codec)
        else:
            log.info("%s: already compressed by an earlier run; removing the pending copy", pending)
        raw_bytes = os.fstat(fd).st_size
        os.unlink(pending)
        _sync_directory(os.path.dirname(pending))
    log.debug("compressed %s (%d bytes) to %s", pending, raw_bytes, final)
    return CompressionStats(1, raw_bytes, os.path.getsize(final))


def compress_pending(base_dir: str, codec_name: str = "lzma", workers: int = 1,
                     on_progress: Callable[[CompressionStats, int], None] | None = None) -> CompressionStats:
    """Compress every pending log under ``base_dir`` with ``workers`` processes.

    ``on_progress(totals so far, raw bytes of all pending logs)`` is called after each log.
    """
    codec = COMPRESSORS[codec_name]
    pending = find_pending(base_dir)
    pending_bytes = sum(os.path.getsize(path) for path in pending)
    total = CompressionStats()
    if workers > 1 and len(pending) > 1:
        with ProcessPoolExecutor(min(workers, len(pending))) as pool:
            results = pool.map(compress_file, pending, [codec] * len(pending))
            for stats in results:
                total.add(stats)
                if on_progress:
                    on_progress(total, pending_bytes)
    else:
        for path in pending:
            total.add(compress_file(path, codec))
            if on_progress:
                on_progress(total, pending_bytes)
    if total.files:
        log.info("compressed %d logs: %d -> %d bytes", total.files, total.raw_bytes, total.compressed_bytes)
    return total


def _write_compressed(source, final: str, codec: Codec) -> None:
    """Compress ``source`` into ``final``; on failure (disk full) remove the partial copy and name it."""
    partial = final + PARTIAL_SUFFIX
    try:
        with open(partial, "wb") as raw:  # truncates what a crashed run left
            with codec.open_write(raw) as compressed:
                shutil.copyfileobj(source, compressed, COPY_CHUNK)
            raw.flush()
            os.fsync(raw.fileno())
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise OSError(e.errno, e.strerror, partial) from None
    os.rename(partial, final)
    _sync_directory(os.path.dirname(final))


def _sync_directory(directory: str) -> None:
    fd = os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
