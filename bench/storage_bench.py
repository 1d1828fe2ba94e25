#!/usr/bin/env python3
"""Write N synthetic pings through the layout writer, compress them, read them back.

Prints records/s and MB/s (of uncompressed log) for write, compress and read per
codec, next to the bare codec command (`xz --format=lzma -dc`, `lz4 -dc`) on the
same files, and the ratio ours/floor. The reader's target is at most 1.3x.

    python bench/storage_bench.py --pings 5000
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from converter.synthetic import synthetic_pings  # noqa: E402
from storage import LayoutWriter, RecordReader, compress_pending, find_files  # noqa: E402
from storage.allocator import keep_freed_memory  # noqa: E402
from storage.commands import format_bytes  # noqa: E402

# One codec process over every file, its output discarded: the speed of decompression alone.
FLOOR_COMMANDS = {"lzma": "xz --format=lzma -dc {files} > /dev/null",
                  "lz4": "cat {files} | lz4 -dc > /dev/null"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pings", type=int, default=5000)
    parser.add_argument("--data-dir", help="keep the lzma store here (default: a temporary directory)")
    parser.add_argument("--max-log-size", type=int, default=32_000_000, help="rotation size in bytes")
    args = parser.parse_args()
    keep_freed_memory()  # as the mr command does

    work = tempfile.mkdtemp(prefix="storage-bench-")
    lzma_dir = args.data_dir or os.path.join(work, "lzma")
    lz4_dir = os.path.join(work, "lz4")
    try:
        print(f"generating {args.pings} synthetic pings ...", flush=True)
        pings = [(uuid, json.dumps(ping, separators=(",", ":")), dims)
                 for uuid, ping, dims in synthetic_pings(args.pings)]
        raw_bytes = sum(len(uuid) + len(payload) + 2 for uuid, payload, _ in pings)

        results = []
        start = time.perf_counter()
        with LayoutWriter(lzma_dir, max_log_size=args.max_log_size, version=2) as writer:
            for uuid, payload, dims in pings:
                writer.write(uuid, payload, dims)
            writer.rotate_all()
        results.append(("write", time.perf_counter() - start, None))
        shutil.copytree(lzma_dir, lz4_dir)

        for codec, directory in (("lzma", lzma_dir), ("lz4", lz4_dir)):
            start = time.perf_counter()
            stats = compress_pending(directory, codec, workers=1)
            results.append((f"compress {codec} (1 core)", time.perf_counter() - start, None))
            print(f"{codec}: {stats.files} files, {format_bytes(stats.raw_bytes)} -> "
                  f"{format_bytes(stats.compressed_bytes)} ({stats.raw_bytes / stats.compressed_bytes:.1f}x)")

        for codec, directory in (("lzma", lzma_dir), ("lz4", lz4_dir)):
            files = [f.path for f in find_files(directory)]
            ours, records = time_reader(files)
            if records != len(pings):
                raise SystemExit(f"read back {records} records from {codec}, wrote {len(pings)}")
            floor = time_command(FLOOR_COMMANDS[codec], files)
            results.append((f"read {codec}", ours, floor))

        print(f"\n{len(pings)} pings, {format_bytes(raw_bytes)} uncompressed\n")
        print(f"{'phase':<26}{'seconds':>9}{'records/s':>12}{'MB/s':>9}{'floor s':>9}{'ratio':>8}")
        for phase, seconds, floor in results:
            line = f"{phase:<26}{seconds:>9.2f}{len(pings) / seconds:>12.0f}{raw_bytes / seconds / 1e6:>9.1f}"
            if floor is not None:
                line += f"{floor:>9.2f}{seconds / floor:>7.2f}x"
            print(line)
    finally:
        shutil.rmtree(work)
    return 0


def time_reader(files: list[str]) -> tuple[float, int]:
    records = 0
    start = time.perf_counter()
    for path in files:
        for _ in RecordReader(path):
            records += 1
    return time.perf_counter() - start, records


def time_command(command: str, files: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command.format(files=" ".join(shlex.quote(f) for f in files)), shell=True, check=True)
    return time.perf_counter() - start


if __name__ == "__main__":
    sys.exit(main())
