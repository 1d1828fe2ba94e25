"""Helpers for job scripts: the fastest JSON parser here, and ready combiners for telemetry data.

    from mapreduce.telemetry import loads, sum_values, merge_histograms

Combiners take ``(key, values, context)`` like ``combine``/``reduce`` and write
one value, so ``combine = reduce = sum_values`` works as is.
"""

from __future__ import annotations

import struct
from typing import Any

from storage.fastjson import dumps, loads

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


def merge_sets_in_python(values: list) -> tuple[dict, dict]:
    """``(merged, refused)`` for a list of histogram sets: the Python twin of ``_histsum.merge_sets``.

    Integers are summed exactly and floats separately, in input order; a column
    that saw a float is ``float(int sum + float sum)``. The C version does the
    same, so results do not depend on which one a machine has.
    """
    groups: dict[str, list] = {}
    for histograms in values:
        if type(histograms) is bytes:  # packed by the C extension, on this machine or another
            histograms = unpack_histograms(histograms)
        for name, entry in histograms.items():
            groups.setdefault(name, []).append(entry if type(entry) is tuple else (1, entry))
    merged, refused = {}, {}
    for name, entries in groups.items():
        length = len(entries[0][1])
        kept = [entry for entry in entries if len(entry[1]) == length]
        if len(kept) < len(entries):
            refused[name] = sum(pings for pings, array in entries if len(array) != length)
        merged[name] = (sum(pings for pings, _ in kept), [_column_sum(column) for column in
                                                          zip(*(array for _, array in kept))])
    return merged, refused


def _column_sum(column: tuple) -> int | float:
    integers, floats, saw_float = 0, 0.0, False
    for value in column:
        if type(value) is float:
            floats += value
            saw_float = True
        elif isinstance(value, int):
            integers += value
        else:
            raise TypeError(f"a histogram element is {type(value).__name__}, not a number")
    return integers + floats if saw_float else integers


def histograms_of_in_python(text: str | bytes) -> dict[str, list]:
    """The Python twin of ``_histsum.histograms_of``: a ping's ``histograms``, checked the same way (as a
    dict, not packed; ``merge_histogram_sets`` takes either)."""
    ping = loads(text)
    histograms = ping.get("histograms") if type(ping) is dict else None
    if type(histograms) is not dict:
        raise ValueError('the ping has no "histograms" object')
    for array in histograms.values():
        if type(array) is not list:
            raise ValueError("a histogram is an array of numbers")
        for position, value in enumerate(array):
            if type(value) is int:
                if not -2**63 <= value < 2**63:
                    array[position] = float(value)  # past 64 bits, as the C version (and orjson) read it
            elif type(value) is not float:
                raise ValueError("a histogram element is not a number")
    return histograms


PACKED_MAGIC = b"HS1\0"


def unpack_histograms(packed: bytes) -> dict[str, tuple[int, list]]:
    """A set packed by the C extension (format in _histsum.c), as ``{name: (pings, [numbers])}``."""
    if packed[:4] != PACKED_MAGIC:
        raise ValueError("not a packed histogram set")
    (count,) = struct.unpack_from("<I", packed, 4)
    offset, histograms = 8, {}
    for _ in range(count):
        (name_length,) = struct.unpack_from("<H", packed, offset)
        name = packed[offset + 2:offset + 2 + name_length].decode()
        pings, length = struct.unpack_from("<QI", packed, offset + 2 + name_length)
        offset += 14 + name_length
        histograms[name] = (pings, [struct.unpack_from("<d" if packed[at] else "<q", packed, at + 1)[0]
                                    for at in range(offset, offset + 9 * length, 9)])
        offset += 9 * length
    return histograms


try:
    from ._histsum import histograms_of, merge_packed as merge_compact, merge_sets
except ImportError:  # not built (no compiler at install time): the same results, several times slower
    histograms_of, merge_compact, merge_sets = histograms_of_in_python, merge_sets_in_python, merge_sets_in_python
