#!/usr/bin/env python3
"""The engine against its floors, on the same files and cores, in the same run.

Generates (once, cached under bench/out/) at least 1 GB of synthetic pings as
LZMA-alone files, then times with every core:

  floors   parallel `xz --format=lzma -dc`          (decompression alone)
           parallel decompress + orjson parse       (the least any parsing job can cost)
  jobs     jobs/count.py (dims only)                 target: within 1.15x of parallel xz
           jobs/channel_os.py (parses every ping)    target: within 1.05x of decompress+parse
           jobs/histogram_aggregation.py             target: within 1.25x of decompress+parse
  memory   peak RSS of the aggregation on a tenth of the data and on all of it (flat: ratio near 1)

    python bench/engine_bench.py
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import orjson

from measure import DATA, MR, ROOT, generated_data, mr_environment, parallel_xz, split, stored_files, warm_up

sys.path.insert(0, ROOT)

from storage import RecordReader  # noqa: E402
from storage.allocator import keep_freed_memory  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pings", type=int, default=25000, help="default: 25,000 (about 1.05 GB)")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--data", default=DATA, help="where the generated data is kept between runs (as DATA-PINGS)")
    args = parser.parse_args()
    keep_freed_memory()

    data = generated_data(args.pings, args.cores, args.data)
    files = stored_files(data)
    compressed = sum(os.path.getsize(f) for f in files)
    print(f"{len(files)} files, {compressed / 1e6:.1f} MB compressed, {args.cores} cores\n")
    warm_up(files)

    halves = split(files, args.cores)
    rows = []
    xz = best_of(3, lambda: parallel_xz(files, args.cores))
    rows.append(("floor: parallel xz -dc", xz, None, None))
    parse, records, raw = best_of(3, lambda: parallel_parse(halves), with_result=True)
    rows.append(("floor: decompress + orjson parse", parse, None, None))

    for job, floor, target in (("count.py", xz, 1.15), ("channel_os.py", parse, 1.05),
                               ("histogram_aggregation.py", parse, 1.25)):
        seconds = best_of(3, lambda: run_job(job, data, args.cores))
        rows.append((f"mr run jobs/{job}", seconds, seconds / floor, target))

    small = peak_rss(["run", os.path.join(ROOT, "jobs", "histogram_aggregation.py"), "-d", data,
                      "--sample", "0.1"])
    large = peak_rss(["run", os.path.join(ROOT, "jobs", "histogram_aggregation.py"), "-d", data])

    print(f"{records:,} pings, {raw / 1e6:.1f} MB uncompressed\n")
    print(f"{'':<38}{'seconds':>9}{'pings/s':>10}{'MB/s':>8}{'ratio':>8}{'target':>8}")
    for name, seconds, ratio, target in rows:
        line = f"{name:<38}{seconds:>9.2f}{records / seconds:>10,.0f}{raw / seconds / 1e6:>8.0f}"
        if ratio is not None:
            line += f"{ratio:>7.2f}x{target:>7.2f}x" + ("" if ratio <= target else "  MISSED")
        print(line)
    print(f"\npeak RSS, histogram aggregation: {small / 1024:.0f} MB on a 10% sample, "
          f"{large / 1024:.0f} MB on all data ({large / small:.2f}x for ~10x the data)")
    return 0


def parse_files(paths: list[str]) -> tuple[int, int]:
    keep_freed_memory()
    records = raw = 0
    for path in paths:
        reader = RecordReader(path)
        for _, payload in reader:
            orjson.loads(payload)
            records += 1
        raw += reader.uncompressed_bytes
    return records, raw


def parallel_parse(halves: list[list[str]]) -> tuple[int, int]:
    with ProcessPoolExecutor(len(halves)) as pool:
        results = list(pool.map(parse_files, halves))
    return sum(r for r, _ in results), sum(b for _, b in results)


def run_job(job: str, data: str, cores: int) -> None:
    subprocess.run(MR + ["run", os.path.join(ROOT, "jobs", job), "-d", data, "-m", str(cores), "-o", "-"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=mr_environment())


def peak_rss(arguments: list[str]) -> int:
    probe = ("import resource, subprocess, sys;"
             "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL);"
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    return int(subprocess.run([sys.executable, "-c", probe, *MR, *arguments], capture_output=True, text=True,
                              check=True, env=mr_environment()).stdout)


def best_of(times: int, function, with_result: bool = False):
    best, result = None, None
    for _ in range(times):
        start = time.perf_counter()
        result = function()
        seconds = time.perf_counter() - start
        best = seconds if best is None else min(best, seconds)
    return (best, *result) if with_result else best


if __name__ == "__main__":
    sys.exit(main())
