#!/usr/bin/env python3
"""Spill runs: the plain-data format (msgpack, checksummed) against the pickles it replaced, on the same entries.

Two kinds of realistic entries, from `mr gen` pings:

  counts      (channel, OS, version, build id) -> [count], many distinct tuple keys, as a counting job spills
  histograms  (channel, major version, uuid) -> [histograms_of(ping)], the aggregation's packed sets

Each is written as one run and read back, best of a few tries, with the engine's
writer and reader (and its flat order keys) and with copies of the pickle-based
ones they replaced (with the nested order keys of then).
Prints entries/s and MB/s (MB of the entries' pickled size, the same yardstick for
both) and the file sizes. Times are CPU seconds of this process (the work is
single-threaded), so other load on a shared machine does not skew the comparison.

    python bench/spill_bench.py [--pings 2000]
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
import sys
import tempfile
import time
from typing import Callable, Iterator

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

import lz4.frame  # noqa: E402

from converter.synthetic import generate  # noqa: E402
from mapreduce.keys import order_key  # noqa: E402
from mapreduce.spill import read_run, write_run  # noqa: E402
from mapreduce.telemetry import histograms_of, loads  # noqa: E402
from storage import find_files  # noqa: E402

PICKLE_BATCH_BYTES = 256 << 10
PICKLE_MAX_BATCH = 4096


def write_pickled_run(path: str, entries) -> int:
    """The writer spills used before: pickled batches (adaptive length) in an lz4 frame."""
    with lz4.frame.open(path, "wb") as f:
        batch, limit = [], 16
        for entry in entries:
            batch.append(entry)
            if len(batch) >= limit:
                data = pickle.dumps(batch, protocol=5)
                f.write(data)
                batch = []
                if len(data) < PICKLE_BATCH_BYTES // 2:
                    limit = min(limit * 2, PICKLE_MAX_BATCH)
                elif len(data) > PICKLE_BATCH_BYTES * 2:
                    limit = max(1, limit // 2)
        if batch:
            f.write(pickle.dumps(batch, protocol=5))
    return os.path.getsize(path)


def nested_order_key(key) -> tuple:
    """The order key the pickled runs held: (type tag, value) with containers nested."""
    kind = type(key)
    if kind is str:
        return (4, key)
    if kind is int or kind is float:
        return (3,) if kind is float and math.isnan(key) else (2, key)
    if kind is tuple:
        return (6, tuple(nested_order_key(k) for k in key))
    return (0,) if key is None else (1, key) if kind is bool else (5, key)


def read_pickled_run(path: str) -> Iterator:
    with lz4.frame.open(path, "rb") as f:
        while True:
            try:
                batch = pickle.load(f)
            except EOFError:
                return
            yield from batch


def pings(count: int, directory: str) -> list[tuple[str, list[str], str]]:
    store = os.path.join(directory, "store")
    generate(store, count, seed=11, codec="lz4", workers=os.cpu_count() or 1)
    return [(uuid, stored.dimensions, text) for stored in find_files(store) for uuid, text in stored.open()]


def count_entries(source, order_key=order_key) -> list:
    counts: dict[tuple, int] = {}
    for _, dims, text in source:
        info = loads(text)["info"]
        key = (dims[2], info.get("OS", ""), dims[3], dims[4])
        counts[key] = counts.get(key, 0) + 1
    # As many spills would hold them: every key once per (file, spill) tag.
    return sorted((order_key(key), (spill, 0), key, [count]) for spill in range(40) for key, count in counts.items())


def histogram_entries(source, order_key=order_key) -> list:
    return sorted((order_key(key), (0, 0), key, [histograms_of(text)])
                  for key, text in (((dims[2], dims[3].split(".")[0], uuid), text) for uuid, dims, text in source))


def best_of(times: int, function: Callable[[], object]) -> float:
    best = None
    for _ in range(times):
        started = time.process_time()
        function()
        seconds = time.process_time() - started
        best = seconds if best is None else min(best, seconds)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pings", type=int, default=2000)
    parser.add_argument("--tries", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="spill-bench-") as directory:
        source = pings(args.pings, directory)
        print(f"{len(source):,} pings\n")
        print(f"{'entries':<12}{'format':<16}{'count':>9}{'write/s':>12}{'MB/s':>8}{'read/s':>12}{'MB/s':>8}"
              f"{'file MB':>9}")
        for name, make in (("counts", count_entries), ("histograms", histogram_entries)):
            megabytes = len(pickle.dumps(make(source, nested_order_key), protocol=5)) / 1e6
            for label, write, read, entries in (
                    ("pickle (before)", write_pickled_run, read_pickled_run, make(source, nested_order_key)),
                    ("plain (after)", write_run, read_run, make(source))):
                path = os.path.join(directory, f"{name}.run")
                write_seconds = best_of(args.tries, lambda: write(path, entries))
                read_seconds = best_of(args.tries, lambda: sum(1 for _ in read(path)))
                assert list(read(path)) == entries
                print(f"{name:<12}{label:<16}{len(entries):>9,}{len(entries) / write_seconds:>12,.0f}"
                      f"{megabytes / write_seconds:>8.0f}{len(entries) / read_seconds:>12,.0f}"
                      f"{megabytes / read_seconds:>8.0f}{os.path.getsize(path) / 1e6:>9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
