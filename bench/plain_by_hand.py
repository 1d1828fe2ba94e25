#!/usr/bin/env python3
"""The plain-Python histogram aggregation written by hand, without the engine: the floor for
bench/plain_python_bench.py.

Worker processes take whole files from a queue (largest first), decompress them
(LZMA-alone or xz), parse each ping with orjson and keep one dict per process
from (channel, major version, histogram name) to ``[pings, sums]``, merged with
the same ``zip`` list comprehension as bench/jobs/plain_aggregation.py. The
parent merges the workers' dicts and writes the same JSON lines, sorted by key:

    python bench/plain_by_hand.py DATA_DIR OUTPUT [--workers 2]
"""

from __future__ import annotations

import argparse
import gc
import lzma
import multiprocessing
import os
import sys

import orjson

from measure import stored_files

CHUNK = 1 << 20
"""Decompressed bytes handled at a time."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir")
    parser.add_argument("output")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    tasks, results = multiprocessing.Queue(), multiprocessing.Queue()
    for path in sorted(stored_files(args.data_dir), key=os.path.getsize, reverse=True):
        tasks.put(path)
    workers = [multiprocessing.Process(target=worker, args=(args.data_dir, tasks, results))
               for _ in range(args.workers)]
    for process in workers:
        tasks.put(None)
        process.start()
    totals: dict = {}
    for _ in workers:
        merge_into(totals, results.get())
    for process in workers:
        process.join()
    with open(args.output, "wb") as out:
        for (channel, version, name), (pings, sums) in sorted(totals.items()):
            out.write(orjson.dumps({"channel": channel, "version": version, "histogram": name,
                                    "pings": pings, "values": sums}) + b"\n")
    return 0


def worker(root: str, tasks, results) -> None:
    gc.disable()  # nothing here makes cycles; the collector's passes over millions of fresh lists only cost time
    totals: dict = {}
    while (path := tasks.get()) is not None:
        # reason/appName/channel/version/file
        _, _, channel, version, _ = os.path.relpath(path, root).split(os.sep)
        version = version.split(".", 1)[0]
        for line in lines(path):
            histograms = orjson.loads(line[line.index(b"\t") + 1:])["histograms"]
            for name, array in histograms.items():
                key = (channel, version, name)
                entry = totals.get(key)
                if entry is None:
                    totals[key] = [1, array]
                else:
                    entry[0] += 1
                    entry[1] = [a + b for a, b in zip(entry[1], array)]
    results.put(totals)


def lines(path: str):
    """The lines of a compressed file, without their newlines."""
    decompressor = lzma.LZMADecompressor(lzma.FORMAT_ALONE if path.endswith(".lzma") else lzma.FORMAT_XZ)
    rest = b""
    with open(path, "rb") as raw:
        data = raw.read(CHUNK // 4)
        while data or not decompressor.needs_input:
            chunk = rest + decompressor.decompress(data, CHUNK)
            *whole, rest = chunk.split(b"\n")
            yield from whole
            data = raw.read(CHUNK // 4) if decompressor.needs_input else b""
            if decompressor.eof:
                break
    if rest:
        yield rest


def merge_into(totals: dict, other: dict) -> None:
    for key, (pings, sums) in other.items():
        entry = totals.get(key)
        if entry is None:
            totals[key] = [pings, sums]
        else:
            entry[0] += pings
            entry[1] = [a + b for a, b in zip(entry[1], sums)]


if __name__ == "__main__":
    sys.exit(main())
