"""Feed the map phase from the cache: download on threads, hand over each bundle once its files are local.

Bundles whose files are all local go to the workers at once; the downloads
run in schedule order, so the first bundles complete first and mapping starts
while later objects are still arriving. A file that cannot be downloaded is
reported (the coordinator fails the job, or leaves it out with
--allow-partial) and its bundle goes on without it.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Callable

from storage.cache import Cache, DownloadCancelled
from storage.remote import RemoteObject
from storage.s3 import S3Error

from .mapper import MapTask

log = logging.getLogger(__name__)

Ready = Callable[[MapTask], None]
Failed = Callable[[str, str], None]
"""Called with the file's path and a one-line reason."""


class Fetcher:
    def __init__(self, cache: Cache, client: Any, bucket: str, downloads: dict[str, RemoteObject],
                 threads: int = 8, attempts: int = 4):
        self.cache = cache
        self.client = client
        self.bucket = bucket
        self.downloads = downloads
        self.threads = threads
        self.attempts = attempts
        self.fetched_files = 0
        self.fetched_bytes = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool: ThreadPoolExecutor | None = None

    @property
    def total_bytes(self) -> int:
        return sum(o.size for o in self.downloads.values())

    def start(self, tasks: list[MapTask], ready: Ready, failed: Failed) -> None:
        """Hand every bundle to ``ready``: local ones now, the others as their downloads finish."""
        waiting = []
        for task in tasks:
            needed = [f.path for f in task.files if f.path in self.downloads]
            if needed:
                waiting.append((task, needed))
            else:
                ready(task)
        if not waiting:
            return
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="mr-fetch")
        for task, needed in waiting:
            bundle = _Bundle(task, len(needed), ready, failed)
            for path in needed:
                self._pool.submit(self._fetch, path, bundle)

    def stop(self) -> None:
        """Abandon the downloads under way (their temporary files are removed) and the queued ones."""
        self._stop.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _fetch(self, path: str, bundle: "_Bundle") -> None:
        obj = self.downloads[path]
        try:
            self.cache.fetch(self.client, self.bucket, obj, self.attempts, self._stop)
        except DownloadCancelled:
            return
        except S3Error as e:
            bundle.file_done(path, str(e))
            return
        except Exception as e:  # a bug or a local disk problem: still the coordinator's to report
            bundle.file_done(path, f"s3://{self.bucket}/{obj.key}: download failed: {e!r}")
            return
        with self._lock:
            self.fetched_files += 1
            self.fetched_bytes += obj.size
        log.debug("downloaded s3://%s/%s (%d bytes)", self.bucket, obj.key, obj.size)
        bundle.file_done(path, None)


class _Bundle:
    """Counts a bundle's downloads down; hands it over (without failed files) when the last one ends."""

    def __init__(self, task: MapTask, pending: int, ready: Ready, failed: Failed):
        self.task = task
        self.pending = pending
        self.ready = ready
        self.failed = failed
        self.lost: set[str] = set()
        self._lock = threading.Lock()

    def file_done(self, path: str, problem: str | None) -> None:
        if problem is not None:
            self.failed(path, problem)
        with self._lock:
            if problem is not None:
                self.lost.add(path)
            self.pending -= 1
            if self.pending:
                return
        self.ready(replace(self.task, files=tuple(f for f in self.task.files if f.path not in self.lost)))
