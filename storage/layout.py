"""File naming in the storage layout: dimensions <-> paths, and the life stages of a log file.

A log goes through three names, each recognisable from its suffix alone:

    <buildid>.<date>.v<N>.log                          active: writers append to it
    <buildid>.<date>.v<N>.log.<unique>.compressme      pending: rotated, waiting for the compressor
    <buildid>.<date>.v<N>.log.<unique>.lzma            compressed: complete, read by jobs

and, while the compressor works, ``<compressed name>.partial``, which nothing reads.
Dimension values come from pings, so ``check_name_lengths`` refuses a path
whose names the file system cannot hold, counting the suffixes a log gains
later: a log that can be created can always be rotated and compressed.
"""

from __future__ import annotations

import os
import uuid
from typing import Sequence

from .codecs import CODECS, Codec, codec_for_name
from .errors import LayoutError

ACTIVE_SUFFIX = ".log"
PENDING_SUFFIX = ".compressme"
PARTIAL_SUFFIX = ".partial"
_UNIQUE_LENGTH = len(uuid.uuid4().hex)
LONGEST_ADDED_SUFFIX = 1 + _UNIQUE_LENGTH + max(len(PENDING_SUFFIX), *(len(c.suffix) + len(PARTIAL_SUFFIX)
                                                                      for c in CODECS))
"""What rotation and compression add to an active log's name at most (``.<unique>.lzma.partial``)."""
DEFAULT_NAME_MAX = 255


class NameTooLong(LayoutError):
    """A dimension value makes a directory or file name longer than the file system allows."""


def check_name_lengths(path: str, base_dir: str, name_max: int) -> None:
    """NameTooLong unless every name below ``base_dir`` in ``path`` (an active log) fits in ``name_max`` bytes."""
    *directories, file_name = os.path.relpath(path, base_dir).split(os.sep)
    for name in directories:
        if len(os.fsencode(name)) > name_max:
            raise NameTooLong(f"directory name of {len(os.fsencode(name))} bytes, more than the "
                              f"{name_max} the file system allows: {name[:40]}...")
    if len(os.fsencode(file_name)) + LONGEST_ADDED_SUFFIX > name_max:
        raise NameTooLong(f"log file name of {len(os.fsencode(file_name))} bytes, more than the "
                          f"{name_max - LONGEST_ADDED_SUFFIX} the file system allows with the suffixes "
                          f"rotation adds: {file_name[:40]}...")


def name_max(directory: str) -> int:
    """The longest file name (in bytes) allowed in ``directory``, or in its nearest existing parent."""
    while True:
        try:
            return os.pathconf(directory, "PC_NAME_MAX")
        except FileNotFoundError:
            parent = os.path.dirname(os.path.abspath(directory))
            if parent == directory:
                return DEFAULT_NAME_MAX
            directory = parent
        except (OSError, ValueError):
            return DEFAULT_NAME_MAX


def log_path(base_dir: str, parts: Sequence[str], version: int) -> str:
    """The active log file for already-cleaned path parts (see ``Schema.apply``)."""
    *directories, build_id, submission_date = parts
    return os.path.join(base_dir, *directories, f"{build_id}.{submission_date}.v{version}{ACTIVE_SUFFIX}")


def pending_path(active_path: str) -> str:
    """A fresh, unique name to rotate an active log to."""
    return f"{active_path}.{uuid.uuid4().hex}{PENDING_SUFFIX}"


def compressed_path(pending: str, codec: Codec) -> str:
    """Where the compressor puts a pending log's compressed copy."""
    return pending[: -len(PENDING_SUFFIX)] + codec.suffix


def is_pending(file_name: str) -> bool:
    return file_name.endswith(PENDING_SUFFIX)


def is_record_file(file_name: str) -> bool:
    """True for files a reader should see: active logs and complete compressed files."""
    return codec_for_name(file_name) is not None


def is_file_at(fd: int, path: str) -> bool:
    """Is the open file ``fd`` still the file at ``path`` (not renamed or removed since)?"""
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_ino, mine.st_dev) == (on_disk.st_ino, on_disk.st_dev)


def dimensions_from_path(base_dir: str, path: str, levels: int | None = None) -> list[str]:
    """Recover the path parts a stored file was filed under.

    Directory names, then the first two dot-separated parts of the file name.
    ``levels`` (the schema's dimension count), if given, is checked too.
    """
    base = os.path.realpath(base_dir)
    full = os.path.realpath(path)
    if os.path.commonpath([base, full]) != base or full == base:
        raise LayoutError(f"{path}: not inside the storage directory {base_dir}")
    *directories, file_name = os.path.relpath(full, base).split(os.sep)
    name_parts = file_name.split(".")
    if len(name_parts) < 3:
        raise LayoutError(f"{path}: file name is not <buildid>.<submission_date>.v<N>.log...")
    parts = directories + name_parts[:2]
    if levels is not None and len(parts) != levels:
        raise LayoutError(f"{path}: {len(parts)} dimensions in the path, the schema has {levels}; "
                          "is the data directory the root of the layout?")
    return parts
