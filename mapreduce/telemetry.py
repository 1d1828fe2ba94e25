"""Helpers for job scripts: the fastest JSON parser here, and ready combiners for telemetry data.

    from mapreduce.telemetry import loads, sum_values, merge_histograms

Combiners take ``(key, values, context)`` like ``combine``/``reduce`` and write
one value, so ``combine = reduce = sum_values`` works as is.
"""

from __future__ import annotations

from typing import Any

from storage.fastjson import dumps, loads

__all__ = ["loads", "dumps", "sum_values", "count_values", "merge_histograms", "histogram_name"]


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
    length = len(values[0][1])
    same = values
    if any(len(array) != length for _, array in values):
        same = [value for value in values if len(value[1]) == length]
        refused = sum(pings for pings, array in values if len(array) != length)
        context.increment(f"histogram layout changed: {histogram_name(key)}", refused)
    pings = 0
    for count, _ in same:
        pings += count
    # zip(*) transposes all arrays at once in C; summing columns beats adding pairs of lists.
    context.write(key, (pings, [sum(column) for column in zip(*[array for _, array in same])]))
