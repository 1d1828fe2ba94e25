"""Validate a raw (ver 1) payload against its revision's definitions and rewrite it compactly (ver 2).

Every histogram becomes ``[bucket_0, ..., bucket_n-1, sum, log_sum,
log_sum_squares, sum_squares_lo, sum_squares_hi]`` (-1 for a missing statistic).
Nothing is dropped silently: each rejected payload and each dropped histogram is
counted under its reason in ``ConversionStats``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping

from .histograms import Definitions, Histogram
from .revisions import RevisionCache

STATISTICS = ("sum", "log_sum", "log_sum_squares", "sum_squares_lo", "sum_squares_hi")
MISSING = -1
CONVERTED_VERSION = 2


class Rejected(ValueError):
    """A payload that cannot be stored; ``reason`` is its counter name."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


@dataclass
class ConversionStats:
    read: int = 0
    converted: int = 0
    rejected: Counter = field(default_factory=Counter)
    histograms_dropped: Counter = field(default_factory=Counter)

    def count_rejected(self, reason: str) -> None:
        """A payload rejected before it reached the converter (e.g. too large to decode)."""
        self.read += 1
        self.rejected[reason] += 1

    def take_back_converted(self, rejected_for: str | None = None) -> None:
        """A converted payload that was not stored after all: rejected for a reason of its own
        (a path too long), or, with no reason, not stored because storing failed and the run stops."""
        self.converted -= 1
        if rejected_for:
            self.rejected[rejected_for] += 1
        else:
            self.read -= 1

    def add(self, other: "ConversionStats") -> None:
        self.read += other.read
        self.converted += other.converted
        self.rejected.update(other.rejected)
        self.histograms_dropped.update(other.histograms_dropped)


class Converter:
    """Converts payloads; ``strict`` rejects a whole payload for one bad histogram instead of dropping it."""

    def __init__(self, revisions: RevisionCache, strict: bool = False):
        self.revisions = revisions
        self.strict = strict
        self.stats = ConversionStats()

    def convert(self, payload: Any) -> dict:
        """The converted payload; raises Rejected (already counted) if it cannot be stored."""
        self.stats.read += 1
        try:
            converted = self._convert(payload)
        except Rejected as e:
            self.stats.rejected[e.reason] += 1
            raise
        self.stats.converted += 1
        return converted

    def _convert(self, payload: Any) -> dict:
        if not isinstance(payload, dict):
            raise Rejected("not a JSON object")
        info = payload.get("info")
        if not isinstance(info, dict):
            raise Rejected("no info")
        definitions = self.revisions.for_info(info)
        if definitions is None:
            raise Rejected("no usable revision" if info.get("revision") else "no revision")
        histograms = payload.get("histograms", {})
        if not isinstance(histograms, dict):
            raise Rejected("histograms is not an object")
        converted = dict(payload, ver=CONVERTED_VERSION, histograms=self._histograms(histograms, definitions))
        return converted

    def _histograms(self, histograms: Mapping[str, Any], definitions: Definitions) -> dict[str, list]:
        compact = {}
        for name, histogram in histograms.items():
            try:
                compact[name] = compact_histogram(histogram, definitions.lookup(name))
            except Rejected as e:
                if self.strict:
                    raise Rejected(f"histogram {e.reason}") from None
                self.stats.histograms_dropped[e.reason] += 1
        return compact


def compact_histogram(histogram: Any, definition: Histogram | None) -> list:
    """One histogram as its compact array, checked against its definition."""
    if definition is None:
        raise Rejected("unknown name")
    if not isinstance(histogram, dict):
        raise Rejected("not an object")
    if histogram.get("bucket_count") != definition.bucket_count:
        raise Rejected("bucket_count mismatch")
    if histogram.get("range") != definition.range:
        raise Rejected("range mismatch")
    if histogram.get("histogram_type") != definition.type_code:
        raise Rejected("histogram_type mismatch")
    values = histogram.get("values", {})
    if not isinstance(values, dict):
        raise Rejected("values is not an object")
    counts = [0] * definition.bucket_count
    index_of = definition.index_of
    for lower_bound, count in values.items():
        try:
            index = index_of[int(lower_bound)]
        except (KeyError, ValueError):
            raise Rejected("bad bucket") from None
        if type(count) is not int:  # bool is an int subclass, and not a count
            raise Rejected("non-integer count")
        counts[index] = count
    get = histogram.get
    counts += [get(statistic, MISSING) for statistic in STATISTICS]
    return counts
