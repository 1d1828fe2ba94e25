"""The flat order over keys is the nested one: type first, then naturally, containers element by element."""

from __future__ import annotations

import math

from hypothesis import given, settings

from mapreduce.keys import order_key

from .test_spill import plain


def nested(key) -> tuple:
    """The order as specified, in its plain nested form (what the engine used before it was flattened)."""
    kind = type(key)
    if key is None:
        return (0,)
    if kind is bool:
        return (1, key)
    if kind in (int, float):
        return (3,) if math.isnan(key) else (2, key)
    if kind is str:
        return (4, key)
    if kind is bytes:
        return (5, key)
    if kind in (tuple, list):
        return (6 if kind is tuple else 7, tuple(map(nested, key)))
    return (8, tuple(sorted((nested(k), nested(v)) for k, v in key.items())))


def sign(a, b) -> int:
    return (a > b) - (a < b)


@settings(max_examples=2000)
@given(plain, plain)
def test_flat_keys_order_and_group_as_nested_ones_do(a, b):
    assert sign(order_key(a), order_key(b)) == sign(nested(a), nested(b))
    assert (order_key(a) == order_key(b)) == (nested(a) == nested(b))
    hash(order_key(a))


def test_a_shorter_tuple_sorts_first_and_types_sort_by_kind():
    keys = [("a", 1), ("a",), ("a", 1, None), (("a",), 2), (("a", 1),), "b", 2.5, 2, True, None, float("nan"), b"x",
            ["a"], {"k": 1}, {"k": 1, "j": 2}, ()]
    assert sorted(keys, key=order_key) == sorted(keys, key=nested)
