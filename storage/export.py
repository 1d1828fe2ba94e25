"""Upload stored, compressed logs to S3 under the same relative key; remove local files only once verified.

Re-running resumes: a file already in the bucket with the right size and
ETag is skipped (and, with ``delete``, removed locally then). Pending logs are
compressed first. A failure leaves the file where it is, to be retried.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from .codecs import COMPRESSORS
from .compressor import compress_pending
from .layout import PARTIAL_SUFFIX
from .s3 import S3Error, upload_verified

log = logging.getLogger(__name__)

_COMPRESSED_SUFFIXES = tuple(c.suffix for c in COMPRESSORS.values())


@dataclass
class ExportStats:
    files: int = 0
    bytes: int = 0
    skipped: int = 0
    deleted: int = 0
    failed: list[str] = field(default_factory=list)
    """'path: reason' for each file that could not be uploaded and verified."""


def compressed_files(storage: str) -> list[str]:
    """Every complete compressed log under ``storage``, in path order."""
    found = []
    for directory, subdirs, files in os.walk(storage):
        subdirs.sort()
        found.extend(os.path.join(directory, name) for name in sorted(files)
                     if name.endswith(_COMPRESSED_SUFFIXES) and not name.endswith(PARTIAL_SUFFIX))
    return found


def export_logs(storage: str, client: Any, bucket: str, prefix: str = "", delete: bool = False,
                workers: int = 4, codec: str = "lzma",
                on_progress: Callable[[ExportStats, int, int], None] | None = None) -> ExportStats:
    """Export every compressed log; ``on_progress(stats, bytes done, bytes in all)`` after each file."""
    compress_pending(storage, codec)
    sizes = {path: os.path.getsize(path) for path in compressed_files(storage)}
    total, done = sum(sizes.values()), 0
    stats = ExportStats()
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for status, path, size, problem in pool.map(
                lambda path: _export_one(client, storage, path, bucket, prefix, delete), sizes):
            if status == "failed":
                stats.failed.append(f"{path}: {problem}")
                log.error("%s: not exported: %s", path, problem)
            else:
                stats.files += status == "uploaded"
                stats.bytes += size if status == "uploaded" else 0
                stats.skipped += status == "skipped"
                stats.deleted += delete
            done += sizes[path]
            if on_progress:
                on_progress(stats, done, total)
    return stats


def key_for(storage: str, path: str, prefix: str) -> str:
    relative = os.path.relpath(path, storage).replace(os.sep, "/")
    return f"{prefix.strip('/')}/{relative}" if prefix.strip("/") else relative


def _export_one(client: Any, storage: str, path: str, bucket: str, prefix: str, delete: bool):
    key = key_for(storage, path, prefix)
    try:
        size = os.path.getsize(path)
        status = "uploaded" if upload_verified(client, path, bucket, key, skip_existing=True) else "skipped"
        if delete:
            os.remove(path)
        log.debug("%s %s -> s3://%s/%s", status, path, bucket, key)
        return status, path, size, None
    except (S3Error, OSError) as e:  # the upload, or the local file
        return "failed", path, 0, str(e)
