#!/usr/bin/env python3
"""The histogram helpers alone, in one process: histograms_of, the combiner's merge and the reducer's merge.

Times the C extension (and, with --python, its Python twin) on realistic pings
from `mr gen`, best of several rounds, so a change to the hot path can be
compared before and after without the engine's noise:

    python bench/histsum_bench.py [--pings 2000] [--rounds 5] [--python]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from converter.synthetic import generate  # noqa: E402
from mapreduce import histsum  # noqa: E402
from storage import find_files  # noqa: E402

COMBINE_EVERY = 50
"""Values a key gathers before the engine combines them (as in the engine)."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pings", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--python", action="store_true", help="also time the Python twin (slow)")
    args = parser.parse_args()
    texts = sample_pings(args.pings)
    megabytes = sum(len(text) for text in texts) / 1e6
    print(f"{len(texts):,} pings, {megabytes:.1f} MB of JSON, best of {args.rounds}\n")
    twins = [("C", load_extension())] + ([("Python", histsum)] if args.python else [])
    for label, module in twins:
        if module is None:
            print(f"{label}: not built")
            continue
        packed = [module.histograms_of(text) for text in texts]
        groups = [packed[i:i + COMBINE_EVERY] for i in range(0, len(packed), COMBINE_EVERY)]
        combined = [module.merge_packed(group)[0] for group in groups]
        report(f"{label} histograms_of", len(texts), args.rounds, lambda: [module.histograms_of(t) for t in texts])
        report(f"{label} merge_packed (combine)", len(texts), args.rounds,
               lambda: [module.merge_packed(group) for group in groups])
        report(f"{label} merge_sets (reduce)", len(texts), args.rounds, lambda: module.merge_sets(combined))
    return 0


def sample_pings(count: int) -> list[str]:
    """The JSON texts of ``count`` realistic pings, as `mr gen` makes them (the same every time)."""
    with tempfile.TemporaryDirectory() as scratch:
        generate(os.path.join(scratch, "data"), count, seed=42, codec="lz4", workers=os.cpu_count() or 1)
        return [text for stored in find_files(os.path.join(scratch, "data")) for _, text in stored.open()]


def load_extension():
    try:
        from mapreduce import _histsum
    except ImportError:
        return None
    return _histsum


def report(name: str, pings: int, rounds: int, function) -> None:
    best = min(timed(function) for _ in range(rounds))
    print(f"{name:<32}{best:>8.3f} s{pings / best:>12,.0f} pings/s{best / pings * 1e6:>9.1f} us/ping")


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


if __name__ == "__main__":
    sys.exit(main())
