"""Which records of which inputs a conversion has already stored, so that a re-run stores each record once.

``mr convert --journal FILE`` records, after every batch, the positions of the
records of each input that were converted or rejected (every record a worker
got through; damaged ones are not stored, so they need no entry). A run given
the same journal skips those records. An input is known by its real path,
size and modification time: a file that changed since is converted again from
the start. The file is replaced whole (a temporary name, then a rename), so a
crash leaves the previous version; only the batches in flight at a crash,
at most two per worker, can then be stored twice.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Iterable

FORMAT_VERSION = 1


class JournalError(ValueError):
    """A journal file that cannot be read as one."""


class Journal:
    def __init__(self, path: str):
        self.path = path
        self._done: dict[str, list[list[int]]] = _load(path)
        """Input identity -> sorted, disjoint [start, end) ranges of record positions."""

    def is_done(self, identity: str, position: int) -> bool:
        return any(start <= position < end for start, end in self._done.get(identity, ()))

    def add(self, identity: str, positions: Iterable[int]) -> None:
        ranges = self._done.setdefault(identity, [])
        for position in positions:
            ranges.append([position, position + 1])
        ranges.sort()
        merged = [ranges[0]]
        for start, end in ranges[1:]:
            if start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        ranges[:] = merged

    def save(self) -> None:
        """Replace the file whole; an OSError names it."""
        directory = os.path.dirname(os.path.abspath(self.path))
        text = json.dumps({"version": FORMAT_VERSION, "done": self._done}, sort_keys=True)
        try:
            fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(self.path)}.")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(temporary, self.path)
        except OSError as e:
            raise OSError(e.errno, e.strerror, self.path) from None


def identity(path: str) -> str:
    """How the journal knows an input: real path, size and modification time."""
    status = os.stat(path)
    return f"{os.path.realpath(path)}\t{status.st_size}\t{status.st_mtime_ns}"


def _load(path: str) -> dict[str, list[list[int]]]:
    try:
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise JournalError(f"journal {path}: cannot be read ({e}); remove it to convert every record again") from None
    done = document.get("done") if isinstance(document, dict) and document.get("version") == FORMAT_VERSION else None
    if not isinstance(done, dict) or not all(
            isinstance(r, list) and all(isinstance(p, list) and len(p) == 2 and all(type(n) is int for n in p)
                                        for p in r) for r in done.values()):
        raise JournalError(f"journal {path}: not a conversion journal; remove it to convert every record again")
    return done
