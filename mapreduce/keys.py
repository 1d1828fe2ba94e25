"""A total, deterministic order over job keys, and the reducer each key belongs to.

Keys are any plain data (str, numbers, None, bool, tuples, lists, dicts). ``order_key``
maps each to a comparable, hashable form: keys of one comparable type sort
naturally (numbers numerically, strings lexicographically, tuples element-wise)
and mixed types sort by type first, so output order never depends on which
process saw a key first. ``partition_of`` hashes that form with CRC-32 of its
pickle, which is the same in every process and run (unlike ``hash`` of a str).
"""

from __future__ import annotations

import math
import pickle
import zlib
from typing import Any

_NONE, _BOOL, _NUMBER, _NAN, _STR, _BYTES, _TUPLE, _LIST, _DICT, _OTHER = range(10)


def order_key(key: Any) -> tuple:
    kind = type(key)
    if kind is str:
        return (_STR, key)
    if kind is int or kind is float:
        return (_NAN,) if kind is float and math.isnan(key) else (_NUMBER, key)
    if kind is tuple:
        return (_TUPLE, tuple(order_key(k) for k in key))
    if key is None:
        return (_NONE,)
    if kind is bool:
        return (_BOOL, key)
    if kind is list:
        return (_LIST, tuple(order_key(k) for k in key))
    if kind is dict:
        return (_DICT, tuple(sorted((order_key(k), order_key(v)) for k, v in key.items())))
    if kind is bytes:
        return (_BYTES, key)
    return (_OTHER, kind.__name__, repr(key))


def partition_of(ordered: tuple, partitions: int) -> int:
    """The reducer for a key (given as its ``order_key``): stable across processes and runs."""
    if partitions == 1:
        return 0
    return zlib.crc32(pickle.dumps(ordered, protocol=4)) % partitions
