#!/usr/bin/env python3
"""The engine's own cost on a job written in plain Python: `mr run` against the same work done by hand.

bench/jobs/plain_aggregation.py (orjson, and a `zip` list comprehension per
merge) runs under `mr run`; bench/plain_by_hand.py does the same Python work in
a hand-written two-process script (files from a queue, one dict per process,
merged by the parent). Both start a fresh interpreter, use every core and read
the same generated LZMA files (cached under bench/out/). The outputs must hold
the same keys, ping counts and numbers (float sums to within 1e-9: the order of
the additions differs); the ratio mr/by-hand should be at most 1.10x. With
--per-histogram, bench/jobs/plain_aggregation_per_histogram.py (one write per
histogram, about 300 per ping) runs too, to show what each write costs.

    python bench/plain_python_bench.py [--pings 4000 20000] [--rounds 3] [--per-histogram]
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile

import orjson

from measure import ROOT, Timings, generated_data, interleaved, mr, stored_files, warm_up

TARGET = 1.10
JOBS = os.path.join(ROOT, "bench", "jobs")
PER_PING = os.path.join(JOBS, "plain_aggregation.py")
PER_HISTOGRAM = os.path.join(JOBS, "plain_aggregation_per_histogram.py")
BY_HAND = os.path.join(ROOT, "bench", "plain_by_hand.py")
FLOAT_TOLERANCE = 1e-9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pings", type=int, nargs="+", default=[4000, 20000])
    parser.add_argument("--rounds", type=int, default=3, help="runs of each, interleaved; the best counts")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--per-histogram", action="store_true",
                        help="also run the variant that writes each histogram on its own (about 300 writes per "
                             "ping; no target: it shows the cost of context.write and of buffering small values)")
    args = parser.parse_args()
    jobs = [("per ping", PER_PING, TARGET)] + ([("per histogram", PER_HISTOGRAM, None)] if args.per_histogram else [])
    missed = False
    print(f"{args.cores} cores, best of {args.rounds}\n")
    print(f"{'':>22}{'wall-clock seconds':^35}{'CPU seconds':^26}")
    print(f"{'pings':>7}{'writes':>15}{'by hand':>9}{'mr run':>9}{'ratio':>8}{'target':>8}{'by hand':>9}{'mr run':>9}"
          f"{'ratio':>8}{'spread':>8}  outputs")
    for pings in args.pings:
        data = generated_data(pings, args.cores)
        warm_up(stored_files(data))
        with tempfile.TemporaryDirectory(prefix="plain-bench-") as work:
            by_hand_out = os.path.join(work, "by-hand.jsonl")
            by_hand = Timings("by hand")
            runs = [(by_hand, lambda: subprocess.run([sys.executable, BY_HAND, data, by_hand_out,
                                                      "--workers", str(args.cores)], check=True))]
            for name, job, _ in jobs:
                output = os.path.join(work, os.path.basename(job) + "l")
                runs.append((Timings(name), lambda job=job, output=output: mr(
                    "run", job, "-d", data, "-o", output, "-m", str(args.cores), "-w", work)))
            interleaved(args.rounds, runs)
            for (name, job, target), (engine, _) in zip(jobs, runs[1:]):
                verdict = compare(by_hand_out, os.path.join(work, os.path.basename(job) + "l"))
                ratio = engine.best / by_hand.best
                late = target is not None and ratio > target
                missed |= late or not verdict.startswith("same")
                print(f"{pings:>7,}{name:>15}{by_hand.best:>9.2f}{engine.best:>9.2f}{ratio:>7.2f}x"
                      + (f"{target:>7.2f}x" if target else f"{'-':>8}")
                      + f"{by_hand.best_cpu:>9.2f}{engine.best_cpu:>9.2f}{engine.best_cpu / by_hand.best_cpu:>7.2f}x"
                      f"{max(by_hand.spread, engine.spread):>7.2f}x  {verdict}" + ("  MISSED" if late else ""))
    print("\nThe target is on wall-clock time. CPU seconds are those of every process of a run, which other load on "
          "the machine\ndisturbs less. Spread: the slowest run of either over its fastest, a measure of that load.")
    return 1 if missed else 0


def compare(expected_path: str, actual_path: str) -> str:
    """'same ...' if both outputs hold the same rows and numbers, else what differs first."""
    with open(expected_path, "rb") as f:
        expected = f.read()
    with open(actual_path, "rb") as f:
        actual = f.read()
    if expected == actual:
        return "same bytes"
    expected_rows, actual_rows = expected.splitlines(), actual.splitlines()
    if len(expected_rows) != len(actual_rows):
        return f"DIFFER: {len(expected_rows):,} rows / {len(actual_rows):,}"
    inexact = 0
    for left, right in zip(expected_rows, actual_rows):
        a, b = orjson.loads(left), orjson.loads(right)
        values_a, values_b = a.pop("values"), b.pop("values")
        if a != b or len(values_a) != len(values_b):
            return f"DIFFER at {a} / {b}"
        for x, y in zip(values_a, values_b):
            if type(x) is not type(y) or not math.isclose(x, y, rel_tol=FLOAT_TOLERANCE):
                return f"DIFFER in {a}: {x!r} / {y!r}"
            inexact += x != y
    return f"same numbers ({len(expected_rows):,} rows; {inexact:,} float sums differ below 1e-9)"


if __name__ == "__main__":
    sys.exit(main())
