"""Synthetic converted pings for benchmarks: the real ping's shape, with fresh histogram values.

Each ping keeps the real sample's key set and array lengths (312 histograms,
about 60 kB of JSON) so sizes and compression ratios stay realistic; counts
are redrawn per ping from a seeded generator, so runs are repeatable.
"""

from __future__ import annotations

import json
import os
import random
import uuid
from typing import Iterator

from storage import RecordReader

TEMPLATE = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "pings", "saved_session", "Firefox",
                        "nightly", "22.0a1",
                        "20130226031002.20131011.v2.log.e28a4032eb744f089a1828ac7399e5d8.lzma")

CHANNELS = ("release", "beta", "aurora", "nightly")
VERSIONS = {"release": "21.0", "beta": "22.0", "aurora": "23.0a2", "nightly": "24.0a1"}
OSES = ("WINNT", "Darwin", "Linux")
DATES = ("20131010", "20131011", "20131012")


def template_ping() -> dict:
    _, payload = next(iter(RecordReader(TEMPLATE)))
    return json.loads(payload)


def synthetic_pings(count: int, seed: int = 1) -> Iterator[tuple[str, dict, list[str]]]:
    """Yield ``(uuid, ping, dimension values)`` for ``count`` pings."""
    rng = random.Random(seed)
    template = template_ping()
    for _ in range(count):
        channel = rng.choice(CHANNELS)
        date = rng.choice(DATES)
        build_id = f"{date}0{rng.randint(30000, 30009)}"
        info = dict(template["info"], appUpdateChannel=channel, appVersion=VERSIONS[channel],
                    appBuildID=build_id, OS=rng.choice(OSES))
        histograms = {name: _redraw(rng, values) for name, values in template["histograms"].items()}
        ping = dict(template, info=info, histograms=histograms)
        dimensions = [info["reason"], info["appName"], channel, info["appVersion"], build_id, date]
        yield str(uuid.UUID(int=rng.getrandbits(128), version=4)), ping, dimensions


def _redraw(rng: random.Random, values: list) -> list:
    buckets = values[:-5]
    fresh = [rng.randint(0, 3 * count + 2) if count or rng.random() < 0.1 else 0 for count in buckets]
    total = sum(fresh)
    return fresh + [total * rng.randint(1, 50), round(rng.random() * total, 6), -1, -1, -1]


def raw_pings(definitions, count: int, revision_url: str, seed: int = 1, histograms_per_ping: int = 300):
    """Yield ``(uuid, raw ver-1 payload)`` with ``histograms_per_ping`` real definitions each."""
    rng = random.Random(seed)
    usable = sorted(definitions.usable.values(), key=lambda h: h.name)
    template = template_ping()
    for _ in range(count):
        channel = rng.choice(CHANNELS)
        info = dict(template["info"], appUpdateChannel=channel, appVersion=VERSIONS[channel],
                    appBuildID=f"201310{rng.randint(10, 12)}030202", revision=revision_url, OS=rng.choice(OSES))
        histograms = {}
        for definition in rng.sample(usable, min(histograms_per_ping, len(usable))):
            filled = rng.sample(definition.buckets, min(len(definition.buckets), rng.randint(1, 8)))
            values = {str(bound): rng.randint(1, 500) for bound in filled}
            histograms[definition.name] = {
                "range": [definition.low, definition.high], "bucket_count": definition.bucket_count,
                "histogram_type": definition.type_code, "values": values,
                "sum": sum(values.values()) * 3, "log_sum": rng.random() * 100,
                "log_sum_squares": rng.random() * 1000, "sum_squares_lo": rng.randint(0, 10**6),
                "sum_squares_hi": 0}
        yield str(uuid.UUID(int=rng.getrandbits(128), version=4)), {"ver": 1, "info": info, "histograms": histograms}
