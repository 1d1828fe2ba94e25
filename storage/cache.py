"""The local cache of a bucket: files that are whole or absent, and manifests of what each listing found.

A cached object lives at ``<root>/<its key>``, so ``<root>/<prefix>`` is a
storage layout that any local command reads. A key that is not a clean
relative path (an empty, ``.`` or ``..`` part) or that is too long for the
local file system cannot be cached: it is refused by name, never written
elsewhere or shortened. A download goes to a hidden
temporary name in the same directory (which no reader takes for a record file)
and is renamed only when every byte has arrived and matched the ETag, so a
killed run leaves nothing a later run could read as whole. The ETag is kept in
an extended attribute where the file system allows, and a cached file is
reused only if its size (and that ETag) still match the bucket's.

Each listing writes a manifest: the bucket, prefix and filter, and every
object found. A later run that reads the cache without listing checks the
manifests to tell whether the cache can hold everything its filter needs.
"""

from __future__ import annotations

import errno
import functools
import glob
import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import botocore.exceptions

from .errors import SchemaError
from .remote import Listing, RemoteObject
from .s3 import S3_ERRORS, S3Error, explain
from .s3names import key_problem
from .schema import Schema

log = logging.getLogger(__name__)

ETAG_ATTRIBUTE = "user.mr.etag"
DOWNLOAD_SUFFIX = ".download"
MANIFESTS = ".manifests"
MANIFEST_FIELDS = ("bucket", "prefix", "filter", "listed", "objects")
CHUNK_BYTES = 1 << 20
PERMANENT_ERRORS = {"403", "404", "AccessDenied", "NoSuchKey", "NoSuchBucket", "InvalidAccessKeyId"}
LOCAL_DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENAMETOOLONG}
"""Errors of the cache's own disk, which waiting does not cure."""
TEMPORARY_EXTRA = len(f"..{1 << 22}-{1 << 22}{DOWNLOAD_SUFFIX}")
"""What a download's temporary name adds to the file's name: a dot, the pid and thread id (at most 2**22
each on Linux), the suffix."""


class DownloadCancelled(Exception):
    """The run is stopping; the download was abandoned and its temporary file removed."""


class UncacheableKey(S3Error):
    """An S3 key that cannot be a file under the cache: not a clean relative path, or too long here."""


@dataclass
class Coverage:
    """What the cache can say about a filter: the newest listing that covered it, and what is gone since."""

    manifest: dict | None
    absent: list[dict] = field(default_factory=list)
    """Objects that listing found and the filter needs, which are not (whole) in the cache."""

    @property
    def absent_bytes(self) -> int:
        return sum(o["size"] for o in self.absent)


class Cache:
    def __init__(self, root: str):
        self.root = root

    def path_for(self, key: str) -> str:
        """Where ``key`` is cached; UncacheableKey if it cannot be, inside the cache, on this file system."""
        problem = key_problem(key)
        path = os.path.join(self.root, *key.split("/"))
        if problem is None:
            problem = self._length_problem(key, path)
        if problem:
            raise UncacheableKey(f"cannot be cached under {self.root}: {problem}")
        return path

    def _length_problem(self, key: str, path: str) -> str | None:
        name_max, path_max = self._limits
        *directories, name = (os.fsencode(part) for part in key.split("/"))
        longest = max(directories, key=len, default=b"")
        if len(longest) > name_max:
            return f"a part is {len(longest)} bytes long, the file system allows {name_max}"
        if len(name) + TEMPORARY_EXTRA > name_max:
            return (f"its file name is {len(name)} bytes long, the file system allows {name_max - TEMPORARY_EXTRA} "
                    f"(its limit of {name_max} less {TEMPORARY_EXTRA} for the download's temporary name)")
        if len(os.fsencode(path)) + TEMPORARY_EXTRA >= path_max:
            return f"the path would be longer than the file system allows ({path_max} bytes)"
        return None

    @functools.cached_property
    def _limits(self) -> tuple[int, int]:
        """The longest file name and path the cache's file system takes."""
        existing = os.path.abspath(self.root)
        while not os.path.isdir(existing):
            existing = os.path.dirname(existing)
        try:
            return os.pathconf(existing, "PC_NAME_MAX"), os.pathconf(existing, "PC_PATH_MAX")
        except (OSError, ValueError):
            return 255, 4096

    def layout_root(self, prefix: str) -> str:
        """The directory where the layout under ``prefix`` is cached."""
        prefix = prefix.strip("/")
        return self.path_for(prefix) if prefix else self.root

    # -- files -------------------------------------------------------------------

    def holds(self, obj: RemoteObject) -> bool:
        """Is the object cached whole, with the bucket's size (and ETag, where one was recorded)?"""
        try:
            path = self.path_for(obj.key)
            if os.stat(path).st_size != obj.size:
                return False
        except (FileNotFoundError, UncacheableKey):
            return False
        recorded = _get_etag(path)
        return recorded is None or recorded == obj.etag

    def fetch(self, client: Any, bucket: str, obj: RemoteObject, attempts: int = 4,
              stop: threading.Event | None = None) -> None:
        """Download ``obj`` into the cache, retrying with backoff; S3Error naming the key if it cannot."""
        try:
            final = self.path_for(obj.key)
        except UncacheableKey as e:
            raise UncacheableKey(f"s3://{bucket}/{obj.key}: {e}") from None
        directory, name = os.path.split(final)
        temporary = os.path.join(directory, f".{name}.{os.getpid()}-{threading.get_native_id()}{DOWNLOAD_SUFFIX}")
        for attempt in range(1, attempts + 1):
            try:
                if attempt == 1:
                    os.makedirs(directory, exist_ok=True)
                    _remove_abandoned(directory, name)
                _download(client, bucket, obj, temporary, stop)
                break
            except DownloadCancelled:
                _unlink(temporary)
                raise
            except (*S3_ERRORS, OSError, _Mismatch) as e:
                _unlink(temporary)
                if attempt == attempts or _is_permanent(e):
                    reason = str(explain(e, bucket, obj.key)) if isinstance(e, S3_ERRORS) else str(e)
                    raise S3Error(f"s3://{bucket}/{obj.key}: download failed after {attempt} attempt(s): "
                                  f"{reason}") from None
                delay = min(0.5 * 2 ** (attempt - 1), 8.0)
                log.warning("s3://%s/%s: download attempt %d failed (%s); retrying in %.1f s",
                            bucket, obj.key, attempt, e, delay)
                time.sleep(delay)
        _set_etag(temporary, obj.etag)
        os.replace(temporary, final)

    # -- manifests -----------------------------------------------------------------

    def record_listing(self, bucket: str, prefix: str, selection: Schema | None, listing: Listing) -> str:
        """Write the manifest of one listing (replacing an older one of the same bucket, prefix and filter)."""
        document = {"bucket": bucket, "prefix": prefix.strip("/"), "filter": Schema.selecting(selection).document(),
                    "listed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "objects": [{"key": o.key, "size": o.size, "etag": o.etag} for o in listing.objects]}
        identity = json.dumps([bucket, document["prefix"], document["filter"]], sort_keys=True)
        path = os.path.join(self.root, MANIFESTS, hashlib.sha256(identity.encode()).hexdigest()[:20] + ".json")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        temporary = f"{path}.{os.getpid()}.tmp"
        with open(temporary, "w", encoding="utf-8") as f:
            json.dump(document, f)
        os.replace(temporary, path)
        return path

    def coverage(self, prefix: str, selection: Schema | None, bucket: str | None = None) -> Coverage:
        """The newest manifest (of ``bucket``, or any) whose filter covers ``selection``, and what of it is gone."""
        wanted = Schema.selecting(selection)
        covering = [m for m in self._manifests()
                    if m["prefix"] == prefix.strip("/") and (bucket is None or m["bucket"] == bucket)
                    and m["filter"].covers(wanted)]
        if not covering:
            return Coverage(None)
        newest = max(covering, key=lambda m: m["listed"])
        root_length = len(newest["prefix"]) + 1 if newest["prefix"] else 0
        absent = [o for o in newest["objects"]
                  if wanted.matches(_parts(o["key"][root_length:]))
                  and not self.holds(RemoteObject(o["key"], "", (), o["size"], o["etag"]))]
        return Coverage(newest, absent)

    def _manifests(self) -> list[dict]:
        """Every manifest, its filter parsed; one that cannot be read (another version's, damaged) is skipped."""
        found = []
        for path in sorted(glob.glob(os.path.join(self.root, MANIFESTS, "*.json"))):
            try:
                with open(path, encoding="utf-8") as f:
                    manifest = json.load(f)
                if not isinstance(manifest, dict) or set(MANIFEST_FIELDS) - set(manifest):
                    raise ValueError(f"not a manifest (expected the fields {', '.join(MANIFEST_FIELDS)})")
                found.append(dict(manifest, filter=Schema.from_document(manifest["filter"], path)))
            except (OSError, ValueError, RecursionError, SchemaError) as e:
                log.warning("%s: unreadable cache manifest, ignored (%s)", path, e)
        return found


class _Mismatch(Exception):
    """What arrived is not what the listing described (size or checksum)."""


def _download(client: Any, bucket: str, obj: RemoteObject, temporary: str, stop: threading.Event | None) -> None:
    response = client.get_object(Bucket=bucket, Key=obj.key)
    checksum = hashlib.md5() if _is_plain_md5(obj.etag) else None
    received = 0
    with open(temporary, "wb") as f:
        for chunk in response["Body"].iter_chunks(CHUNK_BYTES):
            if stop is not None and stop.is_set():
                response["Body"].close()
                raise DownloadCancelled(obj.key)
            f.write(chunk)
            received += len(chunk)
            if checksum is not None:
                checksum.update(chunk)
    if received != obj.size:
        raise _Mismatch(f"received {received} bytes, the listing said {obj.size}")
    if checksum is not None and checksum.hexdigest() != obj.etag:
        raise _Mismatch(f"MD5 {checksum.hexdigest()} does not match the ETag {obj.etag}")


def _is_plain_md5(etag: str) -> bool:
    return len(etag) == 32 and all(c in "0123456789abcdef" for c in etag)


def _is_permanent(error: BaseException) -> bool:
    if isinstance(error, botocore.exceptions.ClientError):
        return error.response.get("Error", {}).get("Code", "") in PERMANENT_ERRORS
    if isinstance(error, OSError):
        return error.errno in LOCAL_DISK_ERRORS
    return isinstance(error, botocore.exceptions.NoCredentialsError)


def _remove_abandoned(directory: str, name: str) -> None:
    """Remove temporary downloads of ``name`` left by processes that no longer run (killed runs)."""
    for leftover in glob.glob(os.path.join(glob.escape(directory), f".{glob.escape(name)}.*{DOWNLOAD_SUFFIX}")):
        pid = os.path.basename(leftover)[len(name) + 2:].split("-", 1)[0]
        if pid.isdigit() and not _is_running(int(pid)):
            _unlink(leftover)


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _set_etag(path: str, etag: str) -> None:
    try:
        os.setxattr(path, ETAG_ATTRIBUTE, etag.encode())
    except OSError:
        pass  # no extended attributes here: the size alone decides


def _get_etag(path: str) -> str | None:
    try:
        return os.getxattr(path, ETAG_ATTRIBUTE).decode()
    except OSError:
        return None


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _parts(relative: str) -> list[str]:
    *directories, name = relative.split("/")
    return directories + name.split(".", 2)[:2]
