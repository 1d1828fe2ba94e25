"""A total, deterministic order over job keys, and the reducer each key belongs to.

Keys are any plain data (str, numbers, None, bool, bytes, tuples, lists,
dicts). ``order_key`` maps each to a comparable, hashable form: keys of one
comparable type sort naturally (numbers numerically, strings
lexicographically, tuples element-wise) and mixed types sort by type first,
so output order never depends on which process saw a key first. A key
holding anything else (a set, an object, a subclass such as a named tuple) is
refused with ``NotPlainData``: every key the engine orders is plain data of
exact types.

The form is one flat tuple: a type tag before each scalar, and a container's
items between its tag and an end tag that sorts before every other tag (so a
shorter tuple sorts first, as in Python). Two forms only ever compare tag with
tag and value with a value of the same kind, and the order is the one the
nested form ``(tag, (items...))`` would give; flat, it is quicker to build,
compare, hash and store. ``partition_of`` hashes it with CRC-32 of its pickle,
which is the same in every process and run (unlike ``hash`` of a str).
"""

from __future__ import annotations

import itertools
import pickle
import zlib
from typing import Any, Iterator

from .plain import NotPlainData

_END, _NONE, _BOOL, _NUMBER, _NAN, _STR, _BYTES, _TUPLE, _LIST, _DICT = range(10)


class _NotPlain(Exception):
    """The type of what is not plain, carried out of the recursion to where the whole key is known."""


def order_key(key: Any) -> tuple:
    kind = type(key)
    if kind is str:
        return (_STR, key)
    if kind is int:
        return (_NUMBER, key)
    out: list = []
    try:
        _flatten(key, out)
    except _NotPlain as e:
        how = "of type" if kind is e.args[0] else "containing a"
        raise NotPlainData(f"{how} {e.args[0].__name__}", key, in_key=True) from None
    return tuple(out)


def _flatten(value: Any, out: list) -> None:
    kind = type(value)
    if kind is str:
        out += (_STR, value)
    elif kind is int:
        out += (_NUMBER, value)
    elif kind is tuple or kind is list:
        out.append(_TUPLE if kind is tuple else _LIST)
        for item in value:
            _flatten(item, out)
        out.append(_END)
    elif kind is float:
        if value != value:  # NaN: equal to no number, so a kind of its own, after them
            out.append(_NAN)
        else:
            out += (_NUMBER, value)
    elif value is None:
        out.append(_NONE)
    elif kind is bool:
        out += (_BOOL, value)
    elif kind is bytes:
        out += (_BYTES, value)
    elif kind is dict:
        out.append(_DICT)
        for item_key, item_value in sorted((_flat(k), _flat(v)) for k, v in value.items()):
            out += item_key
            out += item_value
        out.append(_END)
    else:
        raise _NotPlain(kind)


def _flat(value: Any) -> list:
    out: list = []
    _flatten(value, out)
    return out


def order_keys_of(keys: tuple) -> Iterator[tuple] | None:
    """The order keys of ``keys``, made at C speed when they are all str or all int (else None): what a spill
    need not store."""
    kinds = set(map(type, keys))
    if kinds == {str}:
        return zip(itertools.repeat(_STR), keys)
    if kinds == {int}:
        return zip(itertools.repeat(_NUMBER), keys)
    return None


def partition_of(ordered: tuple, partitions: int) -> int:
    """The reducer for a key (given as its ``order_key``): stable across processes and runs."""
    if partitions == 1:
        return 0
    return zlib.crc32(pickle.dumps(ordered, protocol=4)) % partitions
