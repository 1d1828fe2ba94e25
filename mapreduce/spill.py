"""Sorted runs on disk: what mappers spill and reducers merge, with memory bounded by one key.

A run is a sequence of entries ``(ordered key, tag, key, values)`` sorted by
``(ordered key, tag)``, pickled in batches into an lz4 frame. The tag is
``(file index, spill number)``: merging runs sorts each key's values by where
they came from, so a reducer sees the same values in the same order however
the files were spread over mappers.
"""

from __future__ import annotations

import heapq
import itertools
import os
import pickle
from typing import Any, Iterable, Iterator

import lz4.frame

BATCH_BYTES = 256 << 10
"""About what a reader holds per open run: big entries (merged histogram sets) come a few at a time."""
MAX_BATCH = 4096
MAX_OPEN_RUNS = 16
"""Runs merged at once; more are merged in passes. Bounds open files, and the reducer's memory
(about MAX_OPEN_RUNS batches) however much data there is."""

Entry = tuple[tuple, tuple, Any, list]


class RunWriter:
    """Writes already-sorted entries to a run under a temporary name; ``close`` renames it into place.

    Entries are pickled in batches of about BATCH_BYTES: the batch length
    starts small and doubles or halves with the size of what it held, so a
    reader holds about that much per run whether entries are counts or whole
    histogram sets.
    """

    def __init__(self, path: str):
        self.path = path
        self.entries = 0
        self._file = lz4.frame.open(path + ".tmp", "wb")
        self._batch: list[Entry] = []
        self._limit = 16

    def add(self, entry: Entry) -> None:
        self._batch.append(entry)
        self.entries += 1
        if len(self._batch) >= self._limit:
            data = self._flush()
            if len(data) < BATCH_BYTES // 2:
                self._limit = min(self._limit * 2, MAX_BATCH)
            elif len(data) > BATCH_BYTES * 2:
                self._limit = max(1, self._limit // 2)

    def close(self) -> int:
        """Finish the run and put it in place; returns its size."""
        if self._batch:
            self._flush()
        self._file.close()
        os.replace(self.path + ".tmp", self.path)
        return os.path.getsize(self.path)

    def _flush(self) -> bytes:
        data = pickle.dumps(self._batch, protocol=5)
        self._file.write(data)
        self._batch = []
        return data


def write_run(path: str, entries: Iterable[Entry]) -> int:
    """Write already-sorted entries as one run; returns the file's size."""
    writer = RunWriter(path)
    for entry in entries:
        writer.add(entry)
    return writer.close()


def read_run(path: str) -> Iterator[Entry]:
    with lz4.frame.open(path, "rb") as f:
        while True:
            try:
                batch = pickle.load(f)
            except EOFError:
                return
            yield from batch


def merge_runs(paths: list[str], work_dir: str) -> Iterator[Entry]:
    """All entries of ``paths`` in (ordered key, tag) order, merging in passes if there are many."""
    paths = sorted(paths)
    generation = 0
    while len(paths) > MAX_OPEN_RUNS:
        merged = []
        for start in range(0, len(paths), MAX_OPEN_RUNS):
            group = paths[start:start + MAX_OPEN_RUNS]
            target = os.path.join(work_dir, f"merge-{generation}-{start}.run")
            write_run(target, heapq.merge(*map(read_run, group)))
            for path in group:
                os.remove(path)
            merged.append(target)
        paths = merged
        generation += 1
    # Entries compare by (ordered key, tag) first, and no two runs share a tag:
    # plain tuple order is the merge order, with no key function to call.
    return heapq.merge(*map(read_run, paths))


def grouped(entries: Iterator[Entry]) -> Iterator[tuple[tuple, Any, Iterator[tuple[tuple, list]]]]:
    """(ordered key, key, the key's (tag, values) in tag order) for each distinct key."""
    for ordered, group in itertools.groupby(entries, key=lambda entry: entry[0]):
        first = next(group)
        yield ordered, first[2], itertools.chain([first[1::2]], (entry[1::2] for entry in group))

