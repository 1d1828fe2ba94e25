"""Read small JSON documents (schemas, filters, definitions) with errors that name the file."""

from __future__ import annotations

import json
from typing import Any


def read_text(path: str, error: type[Exception]) -> str:
    """The file's text; ``error`` naming the file if it cannot be read or is not UTF-8."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise error(f"{path}: cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        line = e.object[:e.start].count(b"\n") + 1
        raise error(f"{path}:{line}: not UTF-8 text (byte {e.object[e.start]:#04x}); save the file as UTF-8") from None


def parse_json(text: str, source: str, error: type[Exception]) -> Any:
    """The parsed document; ``error`` naming ``source`` and the position if it is not JSON."""
    try:
        return json.loads(text)
    except ValueError as e:
        raise error(f"{source}: not valid JSON: {e}") from None
    except RecursionError:
        raise error(f"{source}: JSON nested too deeply to read (a thousand levels or more)") from None
