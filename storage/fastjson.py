"""The fastest JSON available here: orjson, with the standard library for what orjson refuses.

Measured on realistic pings (42 kB, 310 histograms; bench/json_bench.py):
orjson parses one in 0.22 ms against 0.94 ms for the standard library, and
dumps it in 0.15 ms against 1.2 ms. orjson refuses the non-standard
NaN/Infinity that Python's json reads and writes, numbers beyond the largest
float (1e400), lone surrogate escapes ("\\ud800") and, when dumping, integers
beyond 64 bits: those take the standard library's path rather than failing.
On exactly those documents and values simplejson, C speedups active, was
slower than the standard library (1.7 ms to parse, 1.6 ms to dump), so it is
not used there; it is used for indented output, where it is the faster of the
two (``dumps_indented``).

Every path reads JSON text as UTF-8 and nests at most MAX_NESTING deep (orjson's
limit), so whether a document is accepted does not depend on which parser
read it; anything else is a ValueError, never a RecursionError.
"""

from __future__ import annotations

import json
import re
import sys
from contextlib import contextmanager
from typing import Any, Iterator

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS

MAX_NESTING = 1024
"""Arrays and objects inside each other, the outermost included: orjson's limit, kept by every path."""

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKET = re.compile(r"[\[\]{}]")


def loads(text: str | bytes | bytearray | memoryview, *, standard: bool = False) -> Any:
    """Parse JSON as json.loads does; ValueError for anything that is not JSON (bytes that are not UTF-8,
    nesting deeper than MAX_NESTING included).

    ``standard=True`` reads RFC 8259 JSON only, as the C histogram helpers do: NaN and Infinity are refused,
    and an integer too long for Python's int() (over 4,000 digits) is read as a float instead of refused.
    """
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return _fallback_loads(text, standard)


def _fallback_loads(text: str | bytes | bytearray | memoryview, standard: bool) -> Any:
    """The standard library's parser, held to orjson's UTF-8 and nesting rules."""
    if not isinstance(text, str):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(f"JSON text is not valid UTF-8: {error}") from None
    depth = nesting(text)
    if depth > MAX_NESTING:
        raise ValueError(f"JSON nested more than {MAX_NESTING} deep")
    decoder = _STANDARD_DECODER if standard else _DECODER
    try:
        with _recursion_room(depth):
            return decoder.decode(text)
    except RecursionError:
        raise ValueError(f"JSON nested too deeply for this Python (at most {MAX_NESTING} is allowed)") from None


def nesting(text: str) -> int:
    """How deeply arrays and objects nest in JSON text (exact for valid JSON; strings are skipped)."""
    depth = deepest = 0
    for bracket in _BRACKET.finditer(_STRING.sub("", text)):
        depth += 1 if bracket.group() in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


@contextmanager
def _recursion_room(depth: int) -> Iterator[None]:
    """Python's recursion limit raised, while parsing, far enough for ``depth`` levels of JSON."""
    limit = sys.getrecursionlimit()
    needed = _stack_depth() + depth + 50
    if needed > limit:
        sys.setrecursionlimit(needed)
    try:
        yield
    finally:
        if needed > limit:
            sys.setrecursionlimit(limit)


def _stack_depth() -> int:
    depth, frame = 0, sys._getframe()
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    return depth


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"NaN and Infinity are not JSON numbers (found {name})")


def _integer(digits: str) -> int | float:
    """An integer's value; past Python's limit on digits it is beyond any float anyway (as the C helpers read it)."""
    return int(digits) if len(digits) <= 4000 else float(digits)


_DECODER = json.JSONDecoder()
_STANDARD_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_int=_integer)


def dumps(value: Any) -> bytes:
    """Minimal JSON (no spaces) as UTF-8 bytes."""
    try:
        return orjson.dumps(value, option=_OPTIONS)
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def dumps_indented(value: Any) -> str:
    """JSON indented by two spaces, for records people open (a run's sidecar).

    orjson, else simplejson: for indented output the standard library falls
    back to its pure-Python encoder, while simplejson's C encoder indents too
    (a sidecar listing 20,000 inputs: orjson 3 ms, simplejson 75 ms, json
    160 ms). simplejson is imported only then, keeping 9 ms off every start.
    """
    try:
        return orjson.dumps(value, option=_OPTIONS | orjson.OPT_INDENT_2).decode()
    except orjson.JSONEncodeError:  # integers beyond 64 bits
        import simplejson
        return simplejson.dumps(value, indent=2, ensure_ascii=False, allow_nan=True)
