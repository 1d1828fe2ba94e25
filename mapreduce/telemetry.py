"""Helpers for job scripts: the fastest JSON parser here, and ready combiners for telemetry data.

    from mapreduce.telemetry import loads, sum_values, merge_histograms

Combiners take ``(key, values, context)`` like ``combine``/``reduce`` and write
one value, so ``combine = reduce = sum_values`` works as is.
"""

from __future__ import annotations

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
    context.write(key, _merged(histogram_name(key), values, context))


def merge_histogram_sets(key: Any, values: list, context) -> None:
    """Merge many pings' histograms at once: each value maps names to arrays (one ping's
    ``histograms``) or to ``(pings, sums)`` (already merged); writes ``{name: (pings, sums)}``.

    One write per ping instead of one per histogram: the fast way to aggregate
    whole pings. Layout changes are refused and counted as in ``merge_histograms``.
    """
    groups: dict[str, list] = {}
    for histograms in values:
        for name, entry in histograms.items():
            group = groups.get(name)
            if group is None:
                groups[name] = [entry if type(entry) is tuple else (1, entry)]
            else:
                group.append(entry if type(entry) is tuple else (1, entry))
    context.write(key, {name: _merged(name, entries, context) for name, entries in groups.items()})


def _merged(name: str, values: list, context) -> tuple[int, list]:
    arrays = [array for _, array in values]
    length = len(arrays[0])
    if len(set(map(len, arrays))) > 1:
        kept = [value for value in values if len(value[1]) == length]
        refused = sum(pings for pings, array in values if len(array) != length)
        context.increment(f"histogram layout changed: {name}", refused)
        values, arrays = kept, [array for _, array in kept]
    pings = sum(count for count, _ in values)
    # zip(*) transposes all arrays at once in C; summing columns beats adding pairs of lists.
    return pings, [sum(column) for column in zip(*arrays)]
