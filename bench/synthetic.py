"""Raw (ver 1) payloads for the conversion benchmark, derived from ``mr gen``'s converted pings.

Each compact array is expanded back into the verbose form the browser submits,
so the benchmark converts realistic input and the converter's output can be
checked against the ping it came from.
"""

from __future__ import annotations

from typing import Iterator

from converter.convert import MISSING, STATISTICS
from converter.histograms import Histogram
from converter.synthetic import shipped_definitions, synthetic_pings


def raw_pings(count: int, revision_url: str, seed: int = 1) -> Iterator[tuple[str, dict, dict]]:
    """Yield ``(uuid, raw ver-1 payload, the converted ping it should become)``."""
    definitions = shipped_definitions()
    for uuid, ping, _ in synthetic_pings(count, seed):
        histograms = {name: _verbose(definitions.usable[name], array) for name, array in ping["histograms"].items()}
        raw = dict(ping, ver=1, info=dict(ping["info"], revision=revision_url), histograms=histograms)
        yield uuid, raw, ping


def _verbose(definition: Histogram, array: list) -> dict:
    counts, statistics = array[:-len(STATISTICS)], array[-len(STATISTICS):]
    histogram = {"range": definition.range, "bucket_count": definition.bucket_count,
                 "histogram_type": definition.type_code,
                 "values": {str(definition.buckets[i]): count for i, count in enumerate(counts) if count}}
    histogram.update((name, value) for name, value in zip(STATISTICS, statistics) if value != MISSING)
    return histogram
