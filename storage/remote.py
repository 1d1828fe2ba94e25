"""List the storage layout in an S3 bucket, visiting only the prefixes a filter allows.

The bucket holds the layout exactly as on disk under an optional prefix. The
listing goes level by level with ``Delimiter="/"``: a directory level the
filter names by a list of values is not listed at all (its prefixes are built
from the values), and a level listed is cut down to the allowed names before
the next level is visited. A selective filter therefore never lists the whole
bucket. Prefixes of one level are listed in parallel.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .layout import is_record_file
from .s3 import S3_ERRORS, explain
from .schema import Schema, ValueSet

log = logging.getLogger(__name__)

LISTING_THREADS = 16


@dataclass(frozen=True)
class RemoteObject:
    """One record file in the bucket."""

    key: str
    relative: str
    """The key below the prefix: the file's path in the layout, the same as on disk."""
    dimensions: tuple[str, ...]
    size: int
    etag: str


@dataclass
class Listing:
    objects: list[RemoteObject]
    """In layout order (directory by directory, then file name), like ``find_files``."""
    list_calls: int
    prefixes: int
    """Prefixes visited (listed, or known from the filter and passed through)."""

    @property
    def total_bytes(self) -> int:
        return sum(o.size for o in self.objects)


def list_layout(client: Any, bucket: str, prefix: str, selection: Schema | None = None) -> Listing:
    """Every record object under ``prefix`` that ``selection`` allows (default: every one)."""
    return _Lister(client, bucket, Schema.selecting(selection)).run(_as_prefix(prefix))


def _as_prefix(prefix: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/" if prefix else ""


class _Lister:
    def __init__(self, client: Any, bucket: str, selection: Schema):
        self.client = client
        self.bucket = bucket
        self.selection = selection
        self.calls = 0
        self.visited = 0
        self._lock = threading.Lock()

    def run(self, root: str) -> Listing:
        file_level = len(self.selection.dimensions) - 2
        level_prefixes: list[tuple[str, tuple[str, ...]]] = [(root, ())]
        with ThreadPoolExecutor(LISTING_THREADS) as pool:
            for level in range(file_level):
                self.visited += len(level_prefixes)
                level_prefixes = [child for children in pool.map(lambda p: self._children(p, level), level_prefixes)
                                  for child in children]
            self.visited += len(level_prefixes)
            objects = [o for found in pool.map(lambda p: self._files(root, p, file_level), level_prefixes)
                       for o in found]
        log.info("listed s3://%s/%s: %d prefixes, %d list calls, %d objects", self.bucket, root,
                 self.visited, self.calls, len(objects))
        return Listing(objects, self.calls, self.visited)

    def _children(self, entry: tuple[str, tuple[str, ...]], level: int) -> list[tuple[str, tuple[str, ...]]]:
        """The allowed sub-prefixes of one directory level, sorted by name."""
        prefix, parts = entry
        allowed = self.selection.dimensions[level].allowed
        if isinstance(allowed, ValueSet):
            # No need to ask: a missing one lists empty one level down. A value that is no single path
            # part ("a/b", "..") names no directory, on disk or here.
            names = sorted(name for name in allowed.values if _is_path_part(name))
        else:
            names = sorted(name for name in self._list(prefix, want="prefixes") if name in allowed)
        return [(f"{prefix}{name}/", parts + (name,)) for name in names]

    def _files(self, root: str, entry: tuple[str, tuple[str, ...]], file_level: int) -> list[RemoteObject]:
        prefix, parts = entry
        found = []
        for name, size, etag in sorted(self._list(prefix, want="objects")):
            name_parts = name.split(".", 2)
            if not is_record_file(name) or len(name_parts) < 3:
                continue
            dimensions = parts + tuple(name_parts[:2])
            if self.selection.allows(file_level, dimensions[-2]) and self.selection.allows(file_level + 1,
                                                                                          dimensions[-1]):
                key = prefix + name
                found.append(RemoteObject(key, key[len(root):], dimensions, size, etag))
        return found

    def _list(self, prefix: str, want: str) -> list:
        """Names directly under ``prefix``: sub-prefixes, or (name, size, etag) of objects."""
        names: list = []
        arguments = {"Bucket": self.bucket, "Prefix": prefix, "Delimiter": "/"}
        while True:
            with self._lock:
                self.calls += 1
            try:
                page = self.client.list_objects_v2(**arguments)
            except S3_ERRORS as e:
                raise explain(e, self.bucket, prefix or None) from None
            if want == "prefixes":
                names.extend(filter(None, (_last_part(p["Prefix"], prefix) for p in page.get("CommonPrefixes", ()))))
            else:
                names.extend((o["Key"][len(prefix):], o["Size"], o["ETag"].strip('"'))
                             for o in page.get("Contents", ()))
            if not page.get("IsTruncated"):
                return names
            arguments["ContinuationToken"] = page["NextContinuationToken"]


def _last_part(child: str, parent: str) -> str | None:
    """The directory name a listed prefix adds, or None (with a warning) for one that is not a path part."""
    name = child[len(parent):].rstrip("/")
    if not _is_path_part(name):
        log.warning("S3 prefix %r is not part of a storage layout (an empty, '.' or '..' part); skipped", child)
        return None
    return name


def _is_path_part(name: str) -> bool:
    return name not in ("", ".", "..") and "/" not in name
