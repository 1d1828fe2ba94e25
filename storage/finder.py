"""Find the stored files a filter selects, pruning the directory walk level by level.

A directory whose name the filter rejects at its level is never listed, so a
filter on channel or reason skips whole subtrees of a large store.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Iterator

from .errors import StorageError
from .layout import is_record_file
from .reader import RecordReader
from .schema import Schema

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredFile:
    """One record file in the layout, with the dimension values its path names."""

    path: str
    dimensions: tuple[str, ...]
    size: int

    @property
    def relative(self) -> str:
        """Its path within the layout: the same on any disk and under any S3 prefix."""
        return "/".join((*self.dimensions[:-2], os.path.basename(self.path)))

    def layout_order(self) -> tuple[str, ...]:
        """Sort key giving the order ``find_files`` walks in (directory by directory, then file name)."""
        return tuple(self.relative.split("/"))

    def open(self) -> RecordReader:
        return RecordReader(self.path, self.dimensions)


def find_files(base_dir: str, selection: Schema | None = None) -> list[StoredFile]:
    """Every record file under ``base_dir`` that ``selection`` allows, in path order.

    ``selection`` defaults to every file laid out by the built-in schema.
    """
    if not os.path.isdir(base_dir):
        raise StorageError(f"{base_dir}: data directory does not exist")
    selection = Schema.selecting(selection)
    return list(_walk(base_dir, selection, level=0, parts=()))


def _walk(directory: str, selection: Schema, level: int, parts: tuple[str, ...]) -> Iterator[StoredFile]:
    file_level = len(selection.dimensions) - 2
    with os.scandir(directory) as listing:
        entries = sorted(listing, key=lambda entry: entry.name)
    for entry in entries:
        if level < file_level:
            if entry.is_dir() and selection.allows(level, entry.name):
                yield from _walk(entry.path, selection, level + 1, parts + (entry.name,))
        elif entry.is_file() and is_record_file(entry.name):
            name_parts = entry.name.split(".", 2)
            if len(name_parts) < 3:
                log.debug("%s: not a layout file name, skipped", entry.path)
                continue
            dimensions = parts + tuple(name_parts[:2])
            if selection.allows(file_level, dimensions[-2]) and selection.allows(file_level + 1, dimensions[-1]):
                yield StoredFile(entry.path, dimensions, entry.stat().st_size)
