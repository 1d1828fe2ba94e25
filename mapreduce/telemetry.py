"""Helpers for job scripts: the fastest JSON parser here, and ready combiners for telemetry data.

    from mapreduce.telemetry import loads, sum_values, merge_histograms

Combiners take ``(key, values, context)`` like ``combine``/``reduce`` and write
one value, so ``combine = reduce = sum_values`` works as is.
"""

from __future__ import annotations

from typing import Any

from storage.fastjson import dumps, loads

from . import histsum

__all__ = ["loads", "dumps", "sum_values", "count_values", "merge_histograms", "merge_histogram_sets",
           "merged_histogram_sets", "histogram_name", "histograms_of"]


def sum_values(key: Any, values: list, context) -> None:
    """Write the sum of the values."""
    context.write(key, sum(values))


def count_values(key: Any, values: list, context) -> None:
    """Write how many values there were (a combiner must then be ``sum_values``)."""
    context.write(key, len(values))


def histogram_name(key: Any) -> str:
    """The histogram a key is about: its last element if it is a tuple, else the key."""
    return key[-1] if isinstance(key, tuple) and key else str(key)


def merge_histograms(key: Any, values: list, context) -> None:
    """Merge ``(pings, array)`` values into one: pings added, arrays summed element by element.

    Arrays of a different length than the first come from another bucket layout
    (the histogram changed between builds): they are refused, not mixed in, and
    their pings counted under ``histogram layout changed: NAME``.
    """
    name = histogram_name(key)
    merged, refused = merge_sets([{name: tuple(value)} for value in values])
    _count_refused(refused, context)
    context.write(key, merged[name])


def merge_histogram_sets(key: Any, values: list, context) -> None:
    """A combiner for whole pings' histograms: each value is a set of histograms (one ping's, from
    ``histograms_of`` or a plain ``{name: array}`` dict, or a set this wrote before); writes their
    merged set in a compact form that ``merged_histogram_sets`` reads (packed bytes where the C
    extension is built). Layout changes are refused and counted as in ``merge_histograms``.
    """
    merged, refused = merge_compact(values)
    _count_refused(refused, context)
    context.write(key, merged)


def merged_histogram_sets(values: list, context) -> dict[str, tuple[int, list]]:
    """For a reducer: the histogram sets ``values`` merged into ``{name: (pings, sums)}``."""
    merged, refused = merge_sets(values)
    _count_refused(refused, context)
    return merged


def _count_refused(refused: dict, context) -> None:
    for name, pings in refused.items():
        context.increment(f"histogram layout changed: {name}", pings)


def unpack_histograms(packed: bytes) -> dict[str, tuple[int, list]]:
    """A packed set (from ``histograms_of`` or the combiner) as ``{name: (pings, [numbers])}``."""
    return histsum.rounded(histsum.unpack(packed))


try:
    from ._histsum import histograms_of, merge_packed as merge_compact, merge_sets
except ImportError:  # not built (no compiler at install time): the same results, several times slower
    histograms_of, merge_compact, merge_sets = histsum.histograms_of, histsum.merge_packed, histsum.merge_sets
