#!/usr/bin/env python3
"""orjson, the standard library's json and simplejson on realistic pings, and on what orjson refuses.

storage/fastjson.py parses with orjson and falls back to another parser for the
documents orjson refuses (NaN/Infinity, numbers beyond the largest float, lone
surrogate escapes) and the values it cannot dump (integers beyond 64 bits).
This measures each library on exactly those, interleaved, best of several
rounds, so the choice of fallback rests on figures from this machine:

    python bench/json_bench.py [--pings 200] [--rounds 9]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import orjson
import simplejson

from histsum_bench import sample_pings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pings", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    if not hasattr(simplejson, "_speedups"):
        print("simplejson's C speedups are not built: its figures would mean nothing", file=sys.stderr)
        return 1
    texts = sample_pings(args.pings)
    refused = {  # documents orjson refuses, as pings
        "NaN": [t.replace('"histograms"', '"x": NaN, "histograms"', 1) for t in texts],
        "1e400": [t.replace('"histograms"', '"x": 1e400, "histograms"', 1) for t in texts],
        "a lone surrogate": [t.replace('"histograms"', '"x": "\\ud800", "histograms"', 1) for t in texts],
    }
    stdlib_decoder, simple_decoder = json.JSONDecoder(), simplejson.JSONDecoder(allow_nan=True)
    stdlib_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
    simple_encoder = simplejson.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=True)
    pings = [stdlib_decoder.decode(t) for t in refused["NaN"]]
    rows = [{"channel": "nightly", "version": "27", "histogram": f"H{i}", "pings": 10**25 + i,
             "values": [1.5, 10**20, 3, float("nan")] * 10} for i in range(len(texts))]
    assert all(stdlib_encoder.encode(v) == simple_encoder.encode(v) for v in pings + rows)  # the same bytes
    print(f"{len(texts):,} pings of {sum(map(len, texts)) / len(texts) / 1000:.0f} kB; "
          f"microseconds per document, best of {args.rounds}\n")
    print(f"{'':<40}{'orjson':>10}{'json':>10}{'simplejson':>12}")
    compare(args.rounds, "loads a ping", texts, orjson.loads, stdlib_decoder.decode, simple_decoder.decode)
    for name, documents in refused.items():
        compare(args.rounds, f"loads a ping with {name}", documents, None, stdlib_decoder.decode,
                simple_decoder.decode)
    compare(args.rounds, "dumps a ping", [stdlib_decoder.decode(t) for t in texts], orjson.dumps,
            stdlib_encoder.encode, simple_encoder.encode)
    compare(args.rounds, "dumps a ping with NaN", pings, None, stdlib_encoder.encode, simple_encoder.encode)
    compare(args.rounds, "dumps a row with integers past 64 bits", rows, None, stdlib_encoder.encode,
            simple_encoder.encode)
    return 0


def compare(rounds: int, name: str, documents: list, *functions) -> None:
    best = [float("inf")] * len(functions)
    for _ in range(rounds):
        for i, function in enumerate(functions):
            if function is not None:
                start = time.perf_counter()
                for document in documents:
                    function(document)
                best[i] = min(best[i], time.perf_counter() - start)
    cells = [f"{'refuses':>10}" if f is None else f"{b / len(documents) * 1e6:>10.1f}"
             for f, b in zip(functions, best)]
    print(f"{name:<40}{cells[0]}{cells[1]}{cells[2]:>12}")


if __name__ == "__main__":
    sys.exit(main())
