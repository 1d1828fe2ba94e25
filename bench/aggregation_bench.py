#!/usr/bin/env python3
"""The shipped histogram aggregation against decompression alone, on 4,000 and 20,000 generated pings.

jobs/histogram_aggregation.py reads histograms with the C extension and never
parses a ping with orjson, so what bounds it is decompression: parallel
`xz --format=lzma -dc` over the same files, one process per core, measured in
the same run. Each is run --rounds times, interleaved, and the best counts.
Targets: at most 1.45x the floor on 4,000 pings (where start-up weighs more)
and 1.25x on 20,000. The job writes its output and sidecar to a file, as a
user's run does.

    python bench/aggregation_bench.py [--pings 4000 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

from measure import ROOT, Timings, generated_data, interleaved, mr, parallel_xz, stored_files, warm_up

JOB = os.path.join(ROOT, "jobs", "histogram_aggregation.py")
TARGETS = {4000: 1.45, 20000: 1.25}
"""Pings -> the most the aggregation may take, relative to the floor; other sizes have no target."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pings", type=int, nargs="+", default=sorted(TARGETS))
    parser.add_argument("--rounds", type=int, default=3, help="runs of each, interleaved; the best counts")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    print(f"{args.cores} cores, best of {args.rounds}\n")
    print(f"{'':>7}{'wall-clock seconds':^34}{'CPU seconds':^25}")
    print(f"{'pings':>7}{'xz -dc':>9}{'mr run':>9}{'ratio':>8}{'target':>8}{'xz -dc':>9}{'mr run':>9}{'ratio':>7}"
          f"{'spread':>8}")
    missed = False
    for pings in args.pings:
        data = generated_data(pings, args.cores)
        files = stored_files(data)
        warm_up(files)
        with tempfile.TemporaryDirectory(prefix="aggregation-bench-") as work:
            output = os.path.join(work, "aggregates.jsonl")
            floor, job = Timings("xz"), Timings("mr run")
            interleaved(args.rounds, [
                (floor, lambda: parallel_xz(files, args.cores)),
                (job, lambda: mr("run", JOB, "-d", data, "-o", output, "-m", str(args.cores), "-w", work)),
            ])
        ratio = job.best / floor.best
        target = TARGETS.get(pings)
        missed |= target is not None and ratio > target
        print(f"{pings:>7,}{floor.best:>9.2f}{job.best:>9.2f}{ratio:>7.2f}x"
              + (f"{target:>7.2f}x" if target else f"{'-':>8}")
              + f"{floor.best_cpu:>9.2f}{job.best_cpu:>9.2f}{job.best_cpu / floor.best_cpu:>6.2f}x"
              f"{max(floor.spread, job.spread):>7.2f}x" + ("  MISSED" if target and ratio > target else ""))
    print("\nThe targets are on wall-clock time. CPU seconds are those of every process of a run, which other load "
          "on the machine\ndisturbs less. Spread: the slowest run of either over its fastest, a measure of that load.")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
