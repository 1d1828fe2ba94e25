"""Plain data, the only keys and values a job may write, and its encoding for spills and partials.

Plain data is str, int (of any size), float, bool, None, bytes, and tuples,
lists and dicts of them, of exactly those types (a subclass such as a named
tuple or a Counter is refused: it would come back as its base type). It is
encoded with msgpack, which, unlike pickle, cannot run code when read, so a
planted spill file or a partial result from another machine is data and
nothing more. Everything round-trips exactly: tuples stay tuples (a one-entry
map keyed by an extension marker), ints past 64 bits are an extension of
their own, floats (NaN and infinities too) are 8-byte doubles, and dict keys
may be any plain value.

Two encodings share the format:

- ``pack_pairs`` and ``pack_values`` for a job's keys and values: anything
  that is not plain data raises ``NotPlainData`` naming the key.
- ``pack_ordered`` for what is made of tuples and scalars alone (the engine's
  ordered keys and tags, hashable keys): msgpack packs its tuples natively,
  and ``unpack_ordered`` reads every array back as a tuple, so the engine's
  hot path runs no hook.

Strings holding lone surrogates (JSON text may carry them) make the fast
encoders raise UnicodeEncodeError; with ``surrogates=True`` they are written,
and must be read, with the "surrogatepass" error handler, which is slower.
"""

from __future__ import annotations

from typing import Any, Iterable

from msgpack import ExtType, Packer, unpackb

from .errors import JobError

SCALAR_TYPES = frozenset({str, int, float, bool, type(None), bytes})
PLAIN_TYPES = SCALAR_TYPES | {tuple, list, dict}
PLAIN_DESCRIPTION = "str, int, float, bool, None, bytes, and tuples, lists and dicts of them"

_TUPLE = 1
_BIG_INT = 2
_TUPLE_MARKER = ExtType(_TUPLE, b"")
_SURROGATES = "surrogatepass"


class NotPlainData(JobError):
    """A job wrote something other than plain data: says what, and for which key."""

    def __init__(self, problem: str, key: Any, *, in_key: bool = False):
        self.problem = problem
        self.key = key
        self.in_key = in_key
        where = f" ({_short_repr(key)})" if in_key else f" for key {_short_repr(key)}"
        super().__init__(f"wrote a {'key' if in_key else 'value'} {problem}{where}; keys and values must be "
                         f"plain data ({PLAIN_DESCRIPTION})")


class _Unsupported(Exception):
    """Raised inside msgpack's packer, which gives no context: the caller finds the key."""

    def __init__(self, type_name: str):
        self.type_name = type_name


class _Marker:
    """What the tuple marker reads back as: a map keyed by it is a tuple."""

    __slots__ = ()


_MARKER = _Marker()


def _plain_default(value: Any) -> Any:
    kind = type(value)
    if kind is tuple:
        return {_TUPLE_MARKER: list(value)}
    if kind is int:
        return _big_int(value)
    raise _Unsupported(kind.__name__)


def _ordered_default(value: Any) -> Any:
    if type(value) is int:
        return _big_int(value)
    raise TypeError(f"not made of tuples and scalars: it holds a {type(value).__name__}")


def _big_int(value: int) -> ExtType:
    return ExtType(_BIG_INT, value.to_bytes(value.bit_length() // 8 + 1, "little", signed=True))


def _plain_ext_hook(code: int, data: bytes) -> Any:
    if code == _TUPLE and not data:
        return _MARKER
    return _ordered_ext_hook(code, data)


def _ordered_ext_hook(code: int, data: bytes) -> Any:
    if code == _BIG_INT and data:
        return int.from_bytes(data, "little", signed=True)
    raise ValueError(f"unknown extension type {code}")


def _object_hook(mapping: dict) -> Any:
    if _MARKER in mapping:
        if len(mapping) != 1 or type(mapping[_MARKER]) is not list:
            raise ValueError("a malformed tuple")
        return tuple(mapping[_MARKER])
    return mapping


def _packers(**options: Any) -> dict[bool, Packer]:
    """The fast packer, and the one that writes lone surrogates, by ``surrogates``."""
    return {False: Packer(**options), True: Packer(unicode_errors=_SURROGATES, **options)}


_plain_packers = _packers(default=_plain_default, strict_types=True)
_ordered_packers = _packers(default=_ordered_default)


def pack_pairs(keys: tuple, value_lists: tuple, surrogates: bool = False) -> bytes:
    """Encode keys and each key's list of values; NotPlainData naming the first key that is not plain, or whose
    values are not."""
    return _pack((keys, value_lists), surrogates, ((part, key, items, in_key) for key, values in zip(keys, value_lists)
                                                   for part, items, in_key in ((key, [key], True),
                                                                               (values, values, False))))


def pack_values(keys: tuple, value_lists: tuple, surrogates: bool = False) -> bytes:
    """Encode each key's list of values; NotPlainData naming the first key with values that are not plain."""
    return _pack(value_lists, surrogates, ((values, key, values, False) for key, values in zip(keys, value_lists)))


def _pack(data: Any, surrogates: bool, parts: Iterable[tuple[Any, Any, list, bool]]) -> bytes:
    """Encode ``data``; if it holds what is not plain, NotPlainData for the first of ``parts`` (part, its key,
    its items, whether it is the key) that does not pack. UnicodeEncodeError for a lone surrogate if not
    ``surrogates``."""
    try:
        return _plain_packers[surrogates].pack(data)
    except UnicodeEncodeError:
        raise
    except (_Unsupported, ValueError):
        pass
    for part, key, items, in_key in parts:
        _refuse_if_not_plain(part, key, items, in_key)
    raise AssertionError("a batch failed to pack but none of its parts does")


def _refuse_if_not_plain(part: Any, key: Any, items: list, in_key: bool = False) -> None:
    """NotPlainData if ``part`` (a key, or a key's values, whose items are ``items``) does not pack."""
    try:
        _plain_packers[True].pack(part)
    except _Unsupported as e:
        how = "of type" if any(type(item) not in PLAIN_TYPES for item in items) else "containing a"
        raise NotPlainData(f"{how} {e.type_name}", key, in_key=in_key) from None
    except ValueError as e:  # nested too deep, or too big for msgpack
        raise NotPlainData(f"that cannot be encoded ({str(e).rstrip('.')})", key, in_key=in_key) from None


def unpack_plain(data: bytes, surrogates: bool = False) -> Any:
    """Decode what ``pack_pairs`` or ``pack_values`` wrote; ValueError or TypeError if it is malformed."""
    return unpackb(data, ext_hook=_plain_ext_hook, object_hook=_object_hook, strict_map_key=False,
                   unicode_errors=_SURROGATES if surrogates else None)


def pack_ordered(value: Any, surrogates: bool = False) -> bytes:
    """Encode tuples (and lists, which come back as tuples) of scalars: ordered keys, tags, hashable keys."""
    return _ordered_packers[surrogates].pack(value)


def unpack_ordered(data: bytes, surrogates: bool = False) -> Any:
    """Decode what ``pack_ordered`` wrote, every array as a tuple; ValueError or TypeError if it is malformed."""
    return unpackb(data, use_list=False, ext_hook=_ordered_ext_hook,
                   unicode_errors=_SURROGATES if surrogates else None)


def _short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
