"""Helpers for job scripts: the fastest JSON parser here, and ready combiners for telemetry data.

    from mapreduce.telemetry import loads, sum_values, merge_histograms

Combiners take ``(key, values, context)`` like ``combine``/``reduce`` and write
one value, so ``combine = reduce = sum_values`` works as is.
"""

from __future__ import annotations

from operator import add
from typing import Any

from storage.fastjson import dumps, loads

__all__ = ["loads", "dumps", "sum_values", "count_values", "merge_histograms", "merge_histogram_sets",
           "histogram_name"]


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
    totals: dict[str, list] = {}
    name = histogram_name(key)
    for pings, array in values:
        _accumulate(totals, name, pings, array, context)
    context.write(key, tuple(totals[name]))


def merge_histogram_sets(key: Any, values: list, context) -> None:
    """Merge many pings' histograms at once: each value maps names to arrays (one ping's
    ``histograms``) or to ``(pings, sums)`` (already merged); writes ``{name: (pings, sums)}``.

    One write per ping instead of one per histogram: the fast way to aggregate
    whole pings. Layout changes are refused and counted as in ``merge_histograms``.
    """
    totals: dict[str, list] = {}
    for histograms in values:
        for name, entry in histograms.items():
            pings, array = entry if type(entry) is tuple else (1, entry)
            _accumulate(totals, name, pings, array, context)
    context.write(key, {name: (pings, sums) for name, (pings, sums) in totals.items()})


def _accumulate(totals: dict[str, list], name: str, pings: int, array: list, context) -> None:
    """Add one array into the running ``[pings, sums]`` of its histogram (``map(add)`` runs in C)."""
    total = totals.get(name)
    if total is None:
        totals[name] = [pings, array]
    elif len(total[1]) == len(array):
        total[0] += pings
        total[1] = list(map(add, total[1], array))
    else:
        context.increment(f"histogram layout changed: {name}", pings)
