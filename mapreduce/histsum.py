"""The Python twin of the ``_histsum`` C extension: the same functions, the same results, bit for bit.

Used where the extension was not built (no compiler at install time), and to
read packed sets the extension wrote on another machine. See _histsum.c for
the packed format. Sums are exact: integers in Python ints (64 bits in C),
floats as non-overlapping partials (Shewchuk's algorithm, as in ``math.fsum``),
rounded once at the end; so a merged value does not depend on how the values
were grouped or ordered on their way (which machine, bundle or combine pass).
"""

from __future__ import annotations

import math
import struct

from storage.fastjson import loads

MAGIC = b"HS1\0"
INTEGER, FLOAT, EXACT = 0, 1, 2
"""Element kinds in the packed format."""


class Exact(tuple):
    """An exact float sum: its partials, smallest first. ``float()`` of it is the correctly rounded sum."""

    def __float__(self) -> float:
        return math.fsum(self)


def histograms_of(text: str | bytes) -> dict[str, list]:
    """A ping's ``histograms``, checked as the C version checks them (returned as a dict, not packed)."""
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


def merge_sets(values: list) -> tuple[dict, dict]:
    """``(merged, refused)``: ``{name: (pings, sums)}`` with float columns rounded, and refused pings by name."""
    merged, refused = _merge(values)
    return rounded(merged), refused


def rounded(merged: dict) -> dict[str, tuple[int, list]]:
    """``{name: (pings, columns)}`` with every exact float sum rounded to a float."""
    return {name: (pings, [float(c) if type(c) is Exact else c for c in columns])
            for name, (pings, columns) in merged.items()}


def merge_packed(values: list) -> tuple[bytes, dict]:
    """As ``merge_sets``, packed, with float columns kept exact for the next merge."""
    merged, refused = _merge(values)
    return pack(merged), refused


def _merge(values: list) -> tuple[dict, dict]:
    groups: dict[str, list] = {}
    for histograms in values:
        if type(histograms) is bytes:
            histograms = unpack(histograms)
        elif type(histograms) is not dict:
            raise TypeError(f"a histogram set is a dict of name -> array or packed bytes, "
                            f"got {type(histograms).__name__}")
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


def _column_sum(column: tuple) -> int | Exact:
    integers, partials, saw_float = 0, [], False
    for value in column:
        kind = type(value)
        if kind is float:
            _exact_add(partials, value)
            saw_float = True
        elif kind is Exact:
            for term in value:
                _exact_add(partials, term)
            saw_float = True
        elif isinstance(value, int):
            integers += value
        else:
            raise TypeError(f"a histogram element is {kind.__name__}, not a number")
    if not saw_float:
        return integers
    high = float(integers)
    _exact_add(partials, high)
    _exact_add(partials, float(integers - int(high)))
    return Exact(partials)


def _exact_add(partials: list, x: float) -> None:
    """partials += x, exactly (the step of ``math.fsum``; the C version does the same)."""
    kept = 0
    for y in partials:
        if abs(x) < abs(y):
            x, y = y, x
        high = x + y
        low = y - (high - x)
        if low:
            partials[kept] = low
            kept += 1
        x = high
    if not math.isfinite(x):
        raise OverflowError("a histogram's sum is too large for a float")
    partials[kept:] = [x]


def pack(merged: dict) -> bytes:
    """``{name: (pings, [int | float | Exact])}`` in the packed format."""
    out = [MAGIC, struct.pack("<I", len(merged))]
    for name, (pings, columns) in merged.items():
        encoded = name.encode()
        out.append(struct.pack("<H", len(encoded)) + encoded + struct.pack("<QI", pings, len(columns)))
        extra = []
        for value in columns:
            if type(value) is Exact:
                out.append(struct.pack("<BQ", EXACT, len(value)))
                extra.extend(value)
            elif type(value) is float:
                out.append(struct.pack("<Bd", FLOAT, value))
            else:
                out.append(struct.pack("<Bq", INTEGER, value))
        out.append(struct.pack(f"<{len(extra)}d", *extra))
    return b"".join(out)


def unpack(packed: bytes) -> dict[str, tuple[int, list]]:
    """A packed set as ``{name: (pings, [int | float | Exact])}``."""
    if packed[:4] != MAGIC:
        raise ValueError("not a packed histogram set")
    (count,) = struct.unpack_from("<I", packed, 4)
    offset, histograms = 8, {}
    for _ in range(count):
        (name_length,) = struct.unpack_from("<H", packed, offset)
        name = packed[offset + 2:offset + 2 + name_length].decode()
        pings, length = struct.unpack_from("<QI", packed, offset + 2 + name_length)
        offset += 14 + name_length
        columns, partials = [], offset + 9 * length
        for at in range(offset, offset + 9 * length, 9):
            kind = packed[at]
            if kind == EXACT:
                (terms,) = struct.unpack_from("<Q", packed, at + 1)
                columns.append(Exact(struct.unpack_from(f"<{terms}d", packed, partials)))
                partials += 8 * terms
            else:
                columns.append(struct.unpack_from("<d" if kind == FLOAT else "<q", packed, at + 1)[0])
        histograms[name] = (pings, columns)
        offset = partials
    return histograms
