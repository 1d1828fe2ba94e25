"""The inputs of a run that reads an S3 bucket: listed and fetched through the cache, or the cache alone.

Every source yields ``StoredFile``s; a file with the same layout path in the
data directory and in the bucket is read once (the local copy wins, so nothing
is downloaded for it). With --local-only the bucket is not contacted: the
cache's manifests tell whether it can hold everything the filter selects.
An object whose key cannot be a file in the cache (too long for the file
system) stays in the plan under its ``s3://`` name and fails as its download
would: the job fails naming it, or leaves it out with --allow-partial.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from storage import Schema, StoredFile, find_files
from storage.cache import Cache, UncacheableKey
from storage.commands import format_bytes
from storage.remote import list_layout
from storage.s3 import S3Settings, check_bucket, make_client
from storage.s3names import bucket_problem, prefix_problem

from .errors import JobLoadError
from .fetch import Fetcher
from .inputs import Inputs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class S3Source:
    bucket: str
    prefix: str
    cache: Cache
    settings: S3Settings
    download_threads: int = 8

    def __post_init__(self) -> None:
        """Refuse, before any request, a bucket or prefix that cannot work, and a prefix the cache cannot hold."""
        if bucket_problem(self.bucket):
            raise JobLoadError(f"--bucket: {bucket_problem(self.bucket)}")
        if prefix_problem(self.prefix):
            raise JobLoadError(f"--prefix: {prefix_problem(self.prefix)}")
        try:
            self.cache.layout_root(self.prefix)
        except UncacheableKey as e:
            raise JobLoadError(f"--prefix {self.prefix!r}: {e}") from None


def s3_inputs(source: S3Source, selection: Schema | None, data_dir: str | None) -> Inputs:
    """List the bucket under the filter, record the listing, and plan downloads of what is not cached."""
    selection = Schema.selecting(selection)  # a bad filter is refused before S3 is asked anything
    files = _local(data_dir, selection)
    client = make_client(source.settings)
    check_bucket(client, source.bucket)
    listing = list_layout(client, source.bucket, source.prefix, selection)
    source.cache.record_listing(source.bucket, source.prefix, selection, listing)
    downloads = {}
    local = cached = 0
    for obj in listing.objects:
        if obj.relative in files:
            local += 1
            continue
        try:
            path = source.cache.path_for(obj.key)
        except UncacheableKey:
            path = f"s3://{source.bucket}/{obj.key}"  # its download fails, naming the key and why
        files[obj.relative] = StoredFile(path, obj.dimensions, obj.size)
        if source.cache.holds(obj):
            cached += 1
        else:
            downloads[path] = obj
    log.info("s3://%s/%s: %d objects, %s match the filter (%d list calls); %d already cached, %d also local, "
             "%d to download (%s)", source.bucket, source.prefix.strip("/"), len(listing.objects),
             format_bytes(listing.total_bytes), listing.list_calls, cached, local, len(downloads),
             format_bytes(sum(o.size for o in downloads.values())))
    fetcher = Fetcher(source.cache, client, source.bucket, downloads, source.download_threads) if downloads else None
    return Inputs(_in_layout_order(files), fetcher, listing)


def cached_inputs(source: S3Source, selection: Schema | None, data_dir: str | None, strict: bool) -> Inputs:
    """--local-only: the cache (and data dir), after checking a listing covered this filter and nothing is gone."""
    warnings = []
    where = f"s3://{source.bucket}/{source.prefix.strip('/')}"
    coverage = source.cache.coverage(source.prefix, selection, source.bucket)
    if coverage.manifest is None:
        warnings.append(f"no earlier run listed {where} with a filter covering this one, so the cache may "
                        "lack files this filter selects")
    elif coverage.absent:
        absent = coverage.absent
        warnings.append(f"{len(absent)} objects ({format_bytes(coverage.absent_bytes)}) that the listing of "
                        f"{coverage.manifest['listed']} found are not (whole) in the cache: {absent[0]['key']}"
                        + (f" and {len(absent) - 1} more" if len(absent) > 1 else ""))
    if warnings and strict:
        raise JobLoadError(f"--local-only: {warnings[0]}; refusing (--strict). Run without --local-only to list "
                           "and download what is missing")
    for warning in warnings:
        log.warning("--local-only: %s. THE RESULT MAY BE INCOMPLETE: run without --local-only to list and "
                    "download what is missing (or add --strict to refuse)", warning)
    files = _local(data_dir, selection)
    root = source.cache.layout_root(source.prefix)
    if os.path.isdir(root):
        for stored in find_files(root, selection):
            files.setdefault(stored.relative, stored)
    return Inputs(_in_layout_order(files), warnings=warnings)


def _local(data_dir: str | None, selection: Schema | None) -> dict[str, StoredFile]:
    return {f.relative: f for f in find_files(data_dir, selection)} if data_dir else {}


def _in_layout_order(files: dict[str, StoredFile]) -> list[StoredFile]:
    return sorted(files.values(), key=StoredFile.layout_order)
