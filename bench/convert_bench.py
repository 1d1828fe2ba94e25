#!/usr/bin/env python3
"""Conversion throughput: synthetic raw record logs -> mr convert's pipeline -> storage.

Payloads are mr gen's pings (about 310 histograms each from the real
8d3810543edc Histograms.json) in verbose ver-1 form, gzip-compressed in a v2
record log as the acquisition server writes them; the converted output is
checked against the pings they came from. Prints pings/s for conversion on 1 and on N processes
(compression excluded), per core, and for decoding alone as the floor.

    python bench/convert_bench.py --pings 3000
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench.synthetic import raw_pings  # noqa: E402
from converter import ConvertOptions, RecordLogReader, convert_inputs, decode_payload  # noqa: E402
from converter import encode_record  # noqa: E402
from storage import Schema, find_files  # noqa: E402
from storage.allocator import keep_freed_memory  # noqa: E402
from storage.commands import format_bytes  # noqa: E402

HISTOGRAMS = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "histograms",
                          "8d3810543edc.Histograms.json")
REVISION_URL = "http://hg.mozilla.org/mozilla-central/rev/8d3810543edc"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pings", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    keep_freed_memory()

    work = tempfile.mkdtemp(prefix="convert-bench-")
    try:
        cache = os.path.join(work, "cache", "8d3810543edc")
        os.makedirs(cache)
        shutil.copy(HISTOGRAMS, os.path.join(cache, "Histograms.json"))
        log_path = os.path.join(work, "incoming.log")
        raw_bytes = 0
        expected = {}
        with open(log_path, "wb") as f:
            for n, (uuid, payload, converted) in enumerate(raw_pings(args.pings, REVISION_URL)):
                expected[uuid] = converted["histograms"]
                body = json.dumps(payload).encode()
                raw_bytes += len(body)
                path = f"{uuid}/saved-session/Firefox/{payload['info']['appVersion']}/" \
                       f"{payload['info']['appUpdateChannel']}/{payload['info']['appBuildID']}"
                f.write(encode_record(path, gzip.compress(body, 1), 1381449600000 + n, "192.0.2.1"))
        print(f"{args.pings} raw pings, {format_bytes(raw_bytes)} of JSON "
              f"({format_bytes(raw_bytes / args.pings)} each), {format_bytes(os.path.getsize(log_path))} log")

        start = time.perf_counter()
        decoded = sum(1 for record in RecordLogReader(log_path) if decode_payload(record.data))
        floor = time.perf_counter() - start
        assert decoded == args.pings

        rows = [("frame + gunzip + parse (floor, 1 process)", floor, 1)]
        for workers in sorted({1, args.workers}):
            options = ConvertOptions(storage=os.path.join(work, f"store{workers}"), schema=Schema.default(),
                                     cache_dir=os.path.join(work, "cache"), url_template=None,
                                     workers=workers, codec="lz4", max_log_size=10**12)
            start = time.perf_counter()
            summary = convert_inputs([log_path], options)
            seconds = time.perf_counter() - start
            if summary.stats.converted != args.pings:
                raise SystemExit(f"converted {summary.stats.converted} of {args.pings}: {summary}")
            stored = {uuid: json.loads(text)["histograms"]
                      for f in find_files(options.storage) for uuid, text in f.open()}
            if stored != expected:
                raise SystemExit("the converted histograms differ from the pings they were made from")
            rows.append((f"mr convert pipeline, {workers} process(es)", seconds, workers))

        print(f"\n{'phase':<44}{'seconds':>9}{'pings/s':>10}{'per core':>10}{'vs floor':>10}")
        for phase, seconds, cores in rows:
            rate = args.pings / seconds
            print(f"{phase:<44}{seconds:>9.2f}{rate:>10.0f}{rate / cores:>10.0f}{seconds / floor:>9.2f}x")
    finally:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
