"""Realistic synthetic converted pings for demos, tests and benchmarks, deterministic for a seed.

Histograms come from a real Histograms.json (revision 8d3810543edc, shipped
with the package), in the shape of the real sample ping: 280-340 histograms of
up to 300 buckets (37 numbers per array on average, as in the sample), sparse
the way real ones are, and now and then one of the 1,000-bucket developer-tools
histograms that real pings rarely carry. Channels, versions, build ids, OSes
and submission dates vary.
"""

from __future__ import annotations

import logging
import random
import uuid as uuids
from importlib import resources
from typing import Iterator

from storage import LayoutWriter, Schema, compress_pending

from .histograms import Definitions, Histogram

log = logging.getLogger(__name__)

CHANNELS = {"release": ("24.0", "23.0.1"), "beta": ("25.0",), "aurora": ("26.0a2",), "nightly": ("27.0a1", "26.0a1")}
CHANNEL_WEIGHTS = (50, 20, 10, 20)
OSES = (("WINNT", "6.1"), ("WINNT", "5.1"), ("Darwin", "12.5.0"), ("Linux", "3.8.0"))
OS_WEIGHTS = (55, 20, 15, 10)
REASONS = ("saved-session", "idle-daily")
REASON_WEIGHTS = (90, 10)
FIRST_DATE = 20131010
HISTOGRAMS_PER_PING = (280, 340)
COMMON_MAX_BUCKETS = 300
RARE_CHANCE = 0.01
"""How often a ping carries each of the few very large (1,000-bucket) histograms."""


def shipped_definitions() -> Definitions:
    text = resources.files(__package__).joinpath("data", "Histograms.json").read_text("utf-8")
    return Definitions.from_json(text, "Histograms.json 8d3810543edc (built in)")


def synthetic_pings(count: int, seed: int = 1, days: int = 3) -> Iterator[tuple[str, dict, list]]:
    """Yield ``(uuid, converted ping, dimension values)``."""
    rng = random.Random(seed)
    definitions = sorted(shipped_definitions().usable.values(), key=lambda h: h.name)
    common = [h for h in definitions if h.bucket_count <= COMMON_MAX_BUCKETS]
    rare = [h for h in definitions if h.bucket_count > COMMON_MAX_BUCKETS]
    channels = list(CHANNELS)
    for _ in range(count):
        channel = rng.choices(channels, CHANNEL_WEIGHTS)[0]
        version = rng.choice(CHANNELS[channel])
        date = str(FIRST_DATE + rng.randrange(days))
        build_id = f"{int(date) - rng.randrange(0, 3)}{rng.choice(('03', '04', '15'))}0202"
        os_name, os_version = rng.choices(OSES, OS_WEIGHTS)[0]
        reason = rng.choices(REASONS, REASON_WEIGHTS)[0]
        info = {"reason": reason, "appName": "Firefox", "appUpdateChannel": channel, "appVersion": version,
                "appBuildID": build_id, "platformBuildID": build_id, "OS": os_name, "version": os_version,
                "locale": rng.choice(("en-US", "de", "fr", "ja", "es-ES")), "cpucount": rng.choice((2, 4, 8)),
                "memsize": rng.choice((2046, 4096, 8192, 16384)), "arch": rng.choice(("x86", "x86-64")),
                "revision": "http://hg.mozilla.org/mozilla-central/rev/8d3810543edc"}
        chosen = rng.sample(common, rng.randint(*HISTOGRAMS_PER_PING))
        chosen += [h for h in rare if rng.random() < RARE_CHANCE]
        histograms = {h.name: _histogram(rng, h) for h in sorted(chosen, key=lambda h: h.name)}
        ping = {"ver": 2, "info": info, "histograms": histograms,
                "simpleMeasurements": {"uptime": rng.randint(1, 5000), "main": rng.randint(100, 900),
                                       "firstPaint": rng.randint(500, 5000)}}
        dimensions = [reason, "Firefox", channel, version, build_id, date]
        yield str(uuids.UUID(int=rng.getrandbits(128), version=4)), ping, dimensions


def _histogram(rng: random.Random, definition: Histogram) -> list:
    """Counts in a few neighbouring buckets (as real histograms have), then the statistics."""
    size = definition.bucket_count
    counts = [0] * size
    start = int(rng.random() * size)
    total = 0
    for index in range(start, min(size, start + 1 + int(rng.random() * 4))):
        count = 1 + int(rng.random() * 40)
        counts[index] = count
        total += count * definition.buckets[index]
    spread = rng.random()
    return counts + [total, round(spread * total, 3), round(spread * total * 10, 3), -1, -1]


def generate(storage: str, count: int, seed: int = 1, days: int = 3, codec: str = "lzma",
             workers: int = 1, max_log_size: int = 64_000_000) -> int:
    """Write ``count`` synthetic pings into the storage layout, rotated and compressed; returns bytes written."""
    with LayoutWriter(storage, Schema.default(), max_log_size=max_log_size, version=2) as writer:
        for uuid, ping, dimensions in synthetic_pings(count, seed, days):
            writer.write(uuid, ping, dimensions)
        writer.rotate_all()
    compress_pending(storage, codec, workers)
    return writer.stats.bytes
