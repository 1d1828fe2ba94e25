"""Partial results: what one machine's map and combine produced, for a final reduce elsewhere.

A partial file is self-describing::

    mr-partial 2\n
    {"job": {...}, "filter": ..., "machine": ..., "inputs": [...], ...}\n      one line of JSON: the header
    <an entry stream (see spill): checksummed lz4 records of plain data, then an end record>

so ``head -2`` shows what it is, and a file cut short in transfer or damaged
is refused instead of passing for a smaller result. Entries are the engine's
``(ordered key, tag, key, values)`` in key order, with tags that place them
among other machines' entries (see ``engine.combine_job``). They are plain
data, never pickles, so reading a partial from any machine cannot run code;
each entry is checked to be well formed as it is read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import IO, Iterable, Iterator

from .atomic import atomic_file
from .errors import JobError
from .keys import order_key
from .plain import NotPlainData
from .spill import DamagedData, Entry, EntryWriter, read_batches

MAGIC = b"mr-partial"
FORMAT_VERSION = 2
PICKLED_FORMAT_VERSION = 1
"""Values were pickles, which can run code when read: refused."""

_ROTATED_NAME = re.compile(r"\.log\.[0-9a-f]{32}\.[^./]+$")
"""A compressed log's name ends with the unique id its log got when it was rotated (``storage.layout``)."""


class PartialError(JobError):
    """A partial file is damaged."""


class PartialRefused(PartialError):
    """A file is not a partial this mr reads, or partials do not belong together: found before any reduce."""

    status = 2


@dataclass(frozen=True)
class Partial:
    path: str
    header: dict
    label: str
    """How messages name it: its path, or the host it came from."""

    @property
    def job_hash(self) -> str:
        return self.header["job"]["sha256"]

    def entries(self) -> Iterator[Entry]:
        """The entries; PartialError naming the file if it is damaged or an entry is malformed."""
        with open(self.path, "rb") as f:
            _read_preamble(f, self.label)
            try:
                for batch in read_batches(f):
                    for entry in batch:
                        _check_entry(entry)
                    yield from batch
            except DamagedData as e:
                raise PartialError(f"{self.label}: the partial result is damaged ({e}); "
                                   "fetch or make it again") from None


def write_partial(path: str, header: dict, entries: Iterable[Entry]) -> int:
    """Write a partial file under a temporary name, then rename it; returns the entries written."""
    with atomic_file(path, "wb") as f:
        f.write(b"%s %d\n" % (MAGIC, FORMAT_VERSION))
        f.write(json.dumps(header, sort_keys=True).encode() + b"\n")
        writer = EntryWriter(f)
        for entry in entries:
            writer.add(entry)
        writer.finish()
    return writer.entries


def open_partial(path: str, label: str | None = None) -> Partial:
    label = label or path
    try:
        with open(path, "rb") as f:
            return Partial(path, _read_preamble(f, label), label)
    except OSError as e:
        raise PartialRefused(f"{label}: cannot read the partial result: {e.strerror}") from None


def check_compatible(partials: list[Partial], job_hash: str | None) -> None:
    """Refuse partials of another job (source hash), filter or sample than the first one's (or the given
    job's), and partials that read the same input: its data would be counted twice."""
    first = partials[0]
    for partial in partials:
        if job_hash is not None and partial.job_hash != job_hash:
            raise PartialRefused(f"{partial.label} was made by a different job (source sha256 "
                                 f"{partial.job_hash[:12]}, this job's is {job_hash[:12]}: "
                                 f"{partial.header['job']['name']} changed, or it is another job); "
                                 "make the partials again with this job")
        if filter_content(partial.header) != filter_content(first.header):
            raise PartialRefused(f"{partial.label} and {first.label} were made with different input filters; "
                                 "a final reduce merges partials of one filter only")
        if _sample(partial.header) != _sample(first.header):
            raise PartialRefused(f"{partial.label} and {first.label} were made with different samples "
                                 f"(--sample {_sample(partial.header)} against {_sample(first.header)})")
    _refuse_shared_inputs(partials)


def filter_content(header: dict) -> dict | None:
    """The filter a partial was made with, as what it selects: not where its file was (hosts stage it apart)."""
    document = header["filter"]
    return document and {name: value for name, value in document.items() if name != "source"}


def _sample(header: dict) -> float | None:
    return header["options"]["sample"]


def _refuse_shared_inputs(partials: list[Partial]) -> None:
    """Two partials may not read one input: a machine listed under two names, or a partial given twice."""
    readers: dict[tuple, int] = {}
    for number, partial in enumerate(partials):
        shared: dict[int, list[str]] = {}
        for identity in _input_identities(partial.header):
            earlier = readers.setdefault(identity, number)
            if earlier != number:
                shared.setdefault(earlier, []).append(identity[-1])
        for earlier, layout_paths in shared.items():
            raise PartialRefused(
                f"{partial.label} and {partials[earlier].label} read {len(layout_paths)} of the same input files "
                f"(e.g. {layout_paths[0]}), whose data would be counted twice: is one machine listed twice "
                "(under two names), or a partial given twice?")


def _input_identities(header: dict) -> Iterator[tuple]:
    """What identifies each input of a partial wherever it was read, its layout path last.

    A compressed log's name holds the unique id its log got when it was
    rotated, so the same layout path on another machine or in a bucket is
    the same file, copied: the path alone identifies it. An active log
    (``<build>.<date>.v2.log``) is named alike on every machine that got pings
    of that build and date, so it is the same input only in the same place:
    the same machine (host name) and data dir, or the same bucket and prefix.
    Sizes are left out: a copy cut short, or a log that grew, still overlaps.
    """
    s3, data_dir = header["s3"], header["data_dir"]
    for item in header["inputs"]:
        layout_path = item["layout_path"]
        if _ROTATED_NAME.search(layout_path):
            yield (layout_path,)
        elif s3 and not (data_dir and item["path"].startswith(data_dir.rstrip("/") + "/")):
            yield "s3", s3["bucket"], s3["prefix"], layout_path
        else:
            yield "local", header["machine"], data_dir, layout_path


def _check_entry(entry: tuple) -> None:
    """An entry as ``engine.combine_job`` writes it, or DamagedData: what another machine sent is checked before
    it is compared with anything."""
    if len(entry) != 4:
        raise DamagedData("an entry that is not (ordered key, tag, key, values)")
    ordered, tag, key, values = entry
    try:
        ordered_as_said = order_key(key) == ordered
    except (NotPlainData, RecursionError):
        ordered_as_said = False
    if type(values) is not list or not ordered_as_said:
        raise DamagedData(f"a malformed entry for key {key!r:.80}")
    if not (type(tag) is tuple and len(tag) == 2 and type(tag[0]) is tuple and type(tag[1]) is int
            and all(type(part) is str for part in tag[0])):
        raise DamagedData(f"a malformed tag for key {key!r:.80}")


def _read_preamble(f: IO[bytes], label: str) -> dict:
    first = f.readline(64)
    magic, _, version = first.strip().partition(b" ")
    if magic != MAGIC:
        raise PartialRefused(f"{label}: not a partial result (made by mr run --combine-only)")
    if version == str(PICKLED_FORMAT_VERSION).encode():
        raise PartialRefused(f"{label}: a partial result of an older mr (format {PICKLED_FORMAT_VERSION}, "
                             "pickled values, which could run code when read); make it again with this version")
    if version != str(FORMAT_VERSION).encode():
        raise PartialRefused(f"{label}: partial format {version.decode(errors='replace')}, this mr reads format "
                             f"{FORMAT_VERSION}; make it again with this version")
    try:
        header = json.loads(f.readline())
    except ValueError:
        header = None
    if not _well_formed(header):
        raise PartialError(f"{label}: the partial result's header is damaged")
    return header


_HEADER_FIELDS = {"job": dict, "filter": (dict, type(None)), "options": dict, "machine": str,
                  "data_dir": (str, type(None)), "s3": (dict, type(None)), "inputs": list, "counters": dict,
                  "records": int, "bad_lines": int, "bad_records": int, "errors": int, "files": int,
                  "compressed_bytes": int, "uncompressed_bytes": int, "missing_inputs": list,
                  "retried_inputs": list, "warnings": list, "started": str}


def _well_formed(header: object) -> bool:
    """Does the header hold what the final reduce reads from it, of the right types?"""
    return (isinstance(header, dict)
            and all(isinstance(header.get(name), kind) for name, kind in _HEADER_FIELDS.items())
            and isinstance(header["job"].get("sha256"), str) and isinstance(header["job"].get("name"), str)
            and "sample" in header["options"]
            and all(isinstance(item, dict) and isinstance(item.get("path"), str)
                    and isinstance(item.get("layout_path"), str) for item in header["inputs"])
            and (header["s3"] is None or isinstance(header["s3"].get("bucket"), str)
                 and isinstance(header["s3"].get("prefix"), str)))
