"""The Python twin of the ``_histsum`` C extension: the same functions, the same results, bit for bit.

Used where the extension was not built (no compiler at install time), and to
read packed sets the extension wrote on another machine. See _histsum.c for
the packed format. Sums are exact: integers in Python ints (in C 64 bits and a count of wraps),
which must fit in 64 bits when written out, floats as non-overlapping partials
(Shewchuk's algorithm, as in ``math.fsum``), rounded once at the end; so a
merged value does not depend on how the values were grouped or ordered on
their way (which machine, bundle or combine pass). Both twins refuse the same
input: a ping that is not standard JSON, or whose histograms are not arrays of
finite numbers, is a ValueError (a bad record); so is packed data that is
damaged, and a sum beyond 64 bits or beyond the largest float.
"""

from __future__ import annotations

import functools
import math
import re
import struct

from storage.fastjson import loads

MAGIC = b"HS1\0"
INTEGER, FLOAT, EXACT = 0, 1, 2
"""Element kinds in the packed format."""

HEADER = struct.Struct("<H")
COUNTS = struct.Struct("<QI")
ELEMENT = struct.Struct("<BQ")
HEADER_BYTES = 14
"""A histogram's u16 name length, u64 pings and u32 element count."""

_NOT_INTEGER = re.compile(rb"[^\x00]")
"""A kind byte other than INTEGER's."""

INT64_MIN, INT64_MAX = -2**63, 2**63 - 1  # written out as literals in the loops, where a name costs a lookup
MAX_NAME_BYTES = 65535


class Exact(tuple):
    """An exact float sum: its partials, smallest first. ``float()`` of it is the correctly rounded sum."""

    def __float__(self) -> float:
        return math.fsum(self)


def histograms_of(text: str | bytes) -> dict[str, list]:
    """A ping's ``histograms``, checked as the C version checks them (returned as a dict, not packed)."""
    ping = loads(_utf8(text), standard=True)
    if type(ping) is not dict:
        raise ValueError("the ping is not a JSON object")
    if "histograms" not in ping:
        raise ValueError('the ping has no "histograms"')
    histograms = ping["histograms"]
    if type(histograms) is not dict:
        raise ValueError('"histograms" is not an object')
    for name, array in histograms.items():
        _check_name(name)
        if type(array) is not list:
            raise ValueError(f"histogram {name!r} is not an array of numbers")
        for position, value in enumerate(array):
            kind = type(value)
            if kind is int:
                if not -9223372036854775808 <= value <= 9223372036854775807:
                    array[position] = _beyond_64_bits(name, value)
            elif kind is not float:
                raise ValueError(f"histogram {name!r}: an element is not a number")
            elif value - value != 0.0:  # infinite: 1e400, read by the standard library's parser
                raise ValueError(f"histogram {name!r}: an element is beyond the largest float")
    return histograms


def _utf8(text: str | bytes) -> bytes:
    if isinstance(text, bytes):
        return text
    if not isinstance(text, str):
        raise TypeError(f"histograms_of takes a ping's JSON text, not {type(text).__name__}")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("the ping is not valid Unicode (it has a lone surrogate)") from None


def _check_name(name: str) -> None:
    if name.isascii() and len(name) <= MAX_NAME_BYTES:
        return
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("a histogram name is not valid Unicode (a lone surrogate)") from None
    if len(encoded) > MAX_NAME_BYTES:
        raise ValueError("a histogram name is longer than 65,535 bytes")


def _beyond_64_bits(name: str, value: int) -> float:
    """An integer past 64 bits as a float, as the C version (and orjson) read it."""
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"histogram {name!r}: an element is beyond the largest float") from None


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
    refused: dict[str, int] = {}
    for histograms in values:
        if isinstance(histograms, bytes):
            entries, packed = unpack(histograms).items(), True
        elif isinstance(histograms, dict):
            entries, packed = [(name, (1, entry) if type(entry) is list and type(name) is str else
                                     _entry(name, entry)) for name, entry in histograms.items()], False
        else:
            raise TypeError(f"a histogram set is a dict of name -> array or packed bytes, "
                            f"got {type(histograms).__name__}")
        for name, entry in entries:
            group = groups.setdefault(name, [entry])
            if group[0] is not entry:
                if len(entry[1]) != len(group[0][1]):  # another bucket layout than the first array of the name
                    refused[name] = refused.get(name, 0) + entry[0]
                    continue
                group.append(entry)
            if not packed:
                _check_integers(name, entry[1])
    summed = {name: (sum(pings for pings, _ in entries),
                     [_column_sum(name, position, column) for position, column in
                      enumerate(zip(*(array for _, array in entries)))])
              for name, entries in groups.items()}
    # As in C: every element is added before any total is checked against 64 bits.
    return {name: _checked(name, pings, columns) for name, (pings, columns) in summed.items()}, refused


def _entry(name: object, entry: object) -> tuple[int, list | tuple]:
    """A dict set's entry as ``(pings, array)``, checked as the C version checks it."""
    if type(name) is not str:
        raise TypeError(f"a histogram name is a str, not {type(name).__name__}")
    pings, array = 1, entry
    if type(entry) is tuple:
        if len(entry) != 2:
            raise TypeError(f"histogram {name!r}: a merged entry is (pings, sums)")
        pings, array = entry
        if not isinstance(pings, int):
            raise TypeError(f"histogram {name!r}: pings is {type(pings).__name__}, not an int")
        if not 0 <= pings <= INT64_MAX:
            raise ValueError(f"histogram {name!r}: pings {pings!r} is not from 0 to 2**63 - 1")
    if not isinstance(array, (list, tuple)):
        raise TypeError(f"histogram {name!r}: a histogram is a list of numbers, not {type(array).__name__}")
    return pings, array


def _check_integers(name: str, array: list | tuple) -> None:
    """The integers of a dict's array that is summed must each fit in 64 bits, as C reads them."""
    try:
        extremes = (min(array), max(array)) if array else ()
    except TypeError:  # not numbers: refused when summed, naming the element
        extremes = ()
    for extreme in extremes:
        if isinstance(extreme, int) and not -9223372036854775808 <= extreme <= 9223372036854775807:
            raise ValueError(f"histogram {name!r}: value {extreme!r} does not fit in 64 bits")


def _column_sum(name: str, position: int, column: tuple) -> tuple[int, list | None]:
    """``(integers, partials)``: the exact sum of the integers, and of the floats (None if there were none).
    Each integer is within 64 bits: packed ones by their format, those of a dict checked by ``_entry``."""
    if type(column[0]) is int:
        try:
            total = sum(column)
        except TypeError:  # an Exact sum after all, or not a number
            total = None
        if type(total) is int:  # integers only, the usual column: summed in C
            return total, None
    integers, partials = 0, None
    try:
        for value in column:
            kind = type(value)
            if kind is not int and kind is not float and kind is not Exact:
                value, kind = _number(name, position, value)
            if kind is int:
                integers += value
                continue
            partials = [] if partials is None else partials
            for term in (value,) if kind is float else value:
                _exact_add(partials, term)
    except OverflowError:
        raise _not_finite(name, position) from None
    return integers, partials


def _number(name: str, position: int, value: object) -> tuple[int | float, type]:
    """A bool or another subclass of int or float as the plain number it is (C reads them so); else TypeError."""
    if isinstance(value, int):
        return int(value), int
    if isinstance(value, float):
        return float(value), float
    raise TypeError(f"histogram {name!r}: element {position} is {type(value).__name__}, not a number")


def _checked(name: str, pings: int, columns: list) -> tuple[int, list]:
    """The totals of one histogram, each within the 64 bits it is written in; float columns made Exact."""
    if pings > INT64_MAX:
        raise ValueError(f"histogram {name!r}: the number of pings does not fit in 64 bits")
    for position, (integers, _) in enumerate(columns):
        if not INT64_MIN <= integers <= INT64_MAX:
            raise ValueError(f"histogram {name!r}: the sum of element {position} does not fit in 64 bits")
    return pings, [integers if partials is None else _with_integer(name, position, partials, integers)
                   for position, (integers, partials) in enumerate(columns)]


def _with_integer(name: str, position: int, partials: list, integers: int) -> Exact:
    """The exact float sum with the column's integers folded in (as two doubles, exactly)."""
    high = float(integers)
    try:
        _exact_add(partials, high)
        _exact_add(partials, float(integers - int(high)))
    except OverflowError:
        raise _not_finite(name, position) from None
    return Exact(partials)


def _not_finite(name: str, position: int) -> ValueError:
    return ValueError(f"histogram {name!r}: the sum of element {position} is not a finite number "
                      "(NaN or infinity in the data, or beyond the largest float)")


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
        raise OverflowError("a histogram's sum is not a finite float")
    partials[kept:] = [x]


def pack(merged: dict) -> bytes:
    """``{name: (pings, [int | float | Exact])}`` in the packed format."""
    out = [MAGIC, struct.pack("<I", len(merged))]
    for name, (pings, columns) in merged.items():
        encoded = name.encode()
        if len(encoded) > MAX_NAME_BYTES:
            raise ValueError(f"histogram {name!r}: the name is too long to pack (over 65,535 bytes)")
        out.append(HEADER.pack(len(encoded)) + encoded + COUNTS.pack(pings, len(columns)))
        extra = []
        for value in columns:
            if type(value) is Exact:
                out.append(ELEMENT.pack(EXACT, len(value)))
                extra.extend(value)
            elif type(value) is float:
                out.append(struct.pack("<Bd", FLOAT, value))
            else:
                out.append(struct.pack("<Bq", INTEGER, value))
        out.append(struct.pack(f"<{len(extra)}d", *extra))
    return b"".join(out)


class Damaged(ValueError):
    """Packed histogram data that is not what a packer wrote."""

    def __init__(self, what: str):
        super().__init__(f"packed histogram data is damaged: {what}")


def unpack(packed: bytes) -> dict[str, tuple[int, list]]:
    """A packed set as ``{name: (pings, [int | float | Exact])}``; ``Damaged`` (a ValueError) if it is damaged:
    every length, kind and count is checked before it is used, as the C version checks them."""
    size = len(packed)
    if size < 8 or packed[:4] != MAGIC:
        raise Damaged("it does not start with a packed set's header")
    (count,) = struct.unpack_from("<I", packed, 4)
    if count > (size - 8) // HEADER_BYTES:
        raise Damaged("it counts more histograms than its bytes can hold")
    offset, histograms = 8, {}
    for _ in range(count):
        if size - offset < HEADER_BYTES or size - offset - HEADER_BYTES < HEADER.unpack_from(packed, offset)[0]:
            raise Damaged("a histogram is cut short")
        (name_length,) = HEADER.unpack_from(packed, offset)
        name = _packed_name(packed[offset + 2:offset + 2 + name_length])
        pings, length = COUNTS.unpack_from(packed, offset + 2 + name_length)
        offset += HEADER_BYTES + name_length
        if pings > INT64_MAX:
            raise Damaged("a histogram's pings do not fit in 63 bits")
        if (size - offset) // 9 < length:
            raise Damaged("a histogram's elements are cut short")
        columns, offset = _packed_columns(packed, offset, length)
        if name in histograms:
            raise Damaged("a histogram name appears twice in one set")
        histograms[name] = (pings, columns)
    if offset != size:
        raise Damaged("bytes follow its last histogram")
    return histograms


def _packed_name(encoded: bytes) -> str:
    try:
        return encoded.decode("utf-8")
    except UnicodeDecodeError:
        raise Damaged("a histogram name is not UTF-8") from None


def _packed_columns(packed: bytes, offset: int, length: int) -> tuple[list, int]:
    """The ``length`` elements at ``offset`` and the partials after them, checked; and the offset past them."""
    end = offset + 9 * length
    columns = list(_elements(length).unpack_from(packed, offset))  # every element's 8 bytes as an int64
    partials, room = end, (len(packed) - end) // 8
    kinds = packed[offset:end:9]
    for found in _NOT_INTEGER.finditer(kinds):
        position = found.start()
        kind, value = kinds[position], columns[position]
        if kind == FLOAT and _all_finite(floats := struct.unpack_from("<d", packed, offset + 9 * position + 1)):
            columns[position] = floats[0]
        elif kind == EXACT and 0 <= value <= room and _all_finite(
                floats := struct.unpack_from(f"<{value}d", packed, partials)):
            columns[position] = Exact(floats)
            partials += 8 * value
            room -= value
        else:
            raise Damaged("an element has an unknown kind, a float that is not finite, or partials cut short")
    return columns, partials


@functools.lru_cache(maxsize=256)
def _elements(length: int) -> struct.Struct:
    """``length`` packed elements: each kind byte skipped, each element's 8 bytes read as an int64."""
    return struct.Struct("<" + "xq" * length)


def _all_finite(floats: tuple) -> bool:
    return all(map(math.isfinite, floats))
