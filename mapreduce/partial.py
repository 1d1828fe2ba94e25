"""Partial results: what one machine's map and combine produced, for a final reduce elsewhere.

A partial file is self-describing::

    mr-partial 1\n
    {"job": {...}, "filter": ..., "machine": ..., ...}\n      one line of JSON: the header
    <lz4 frame, content-checksummed: pickled batches of entries, then None>

so ``head -2`` shows what it is, and a file cut short in transfer is refused
(no end marker, or a failed checksum) instead of passing for a smaller result. Entries are the engine's
``(ordered key, tag, key, values)`` in key order, with tags that place them
among other machines' entries (see ``engine.combine_job``). Values are pickled:
only read partials from machines you trust, as you would run their jobs.
"""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import dataclass
from typing import IO, Iterable, Iterator

import lz4.frame

from .errors import JobError, JobLoadError
from .spill import Entry

MAGIC = b"mr-partial"
FORMAT_VERSION = 1
BATCH_ENTRIES = 1024
END = None
"""Pickled after the last batch: a file that ends before it was cut short."""


class PartialError(JobError):
    """A partial file is not one, is damaged, or does not belong with the others."""


@dataclass(frozen=True)
class Partial:
    path: str
    header: dict

    @property
    def job_hash(self) -> str:
        return self.header["job"]["sha256"]

    def entries(self) -> Iterator[Entry]:
        """The entries; PartialError naming the file if it is damaged."""
        with open(self.path, "rb") as f:
            _read_preamble(f, self.path)
            try:
                with lz4.frame.open(f, "rb") as body:
                    while (batch := pickle.load(body)) is not END:
                        yield from batch
            except (EOFError, RuntimeError, pickle.UnpicklingError, ValueError) as e:
                raise PartialError(f"{self.path}: the partial result is damaged ({e}); "
                                   "fetch or make it again") from None


def write_partial(path: str, header: dict, entries: Iterable[Entry]) -> int:
    """Write a partial file under a temporary name, then rename it; returns the entries written."""
    temporary = f"{path}.{os.getpid()}.partial-tmp"
    count = 0
    try:
        with open(temporary, "wb") as f:
            f.write(b"%s %d\n" % (MAGIC, FORMAT_VERSION))
            f.write(json.dumps(header, sort_keys=True).encode() + b"\n")
            with lz4.frame.open(f, "wb", content_checksum=True) as body:
                batch = []
                for entry in entries:
                    batch.append(entry)
                    if len(batch) >= BATCH_ENTRIES:
                        body.write(pickle.dumps(batch, protocol=5))
                        count += len(batch)
                        batch = []
                body.write(pickle.dumps(batch, protocol=5))
                count += len(batch)
                body.write(pickle.dumps(END, protocol=5))
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return count


def open_partial(path: str) -> Partial:
    try:
        with open(path, "rb") as f:
            return Partial(path, _read_preamble(f, path))
    except OSError as e:
        raise JobLoadError(f"{path}: cannot read the partial result: {e.strerror}") from None


def check_compatible(partials: list[Partial], job_hash: str | None) -> None:
    """Refuse partials of another job (source hash) or filter than the first one's (or the given job's)."""
    first = partials[0]
    for partial in partials:
        if job_hash is not None and partial.job_hash != job_hash:
            raise PartialError(f"{partial.path} was made by a different job (source sha256 "
                               f"{partial.job_hash[:12]}, this job's is {job_hash[:12]}: "
                               f"{partial.header['job']['name']} changed, or it is another job); "
                               "make the partials again with this job")
        if partial.header["filter"] != first.header["filter"]:
            raise PartialError(f"{partial.path} and {first.path} were made with different input filters; "
                               "a final reduce merges partials of one filter only")
        if partial.header.get("options") != first.header.get("options"):
            raise PartialError(f"{partial.path} and {first.path} were made with different options "
                               f"({partial.header.get('options')} against {first.header.get('options')})")


def _read_preamble(f: IO[bytes], path: str) -> dict:
    first = f.readline(64)
    magic, _, version = first.strip().partition(b" ")
    if magic != MAGIC:
        raise PartialError(f"{path}: not a partial result (made by mr run --combine-only)")
    if version != str(FORMAT_VERSION).encode():
        raise PartialError(f"{path}: partial format {version.decode(errors='replace')}, this mr reads format "
                           f"{FORMAT_VERSION}; make it again with this version")
    try:
        return json.loads(f.readline())
    except ValueError:
        raise PartialError(f"{path}: the partial result's header is damaged") from None
