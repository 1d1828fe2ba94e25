"""Stream ``(uuid, json_text)`` records out of one stored file, whatever its codec.

Decompression goes through the codec's own file object in large chunks and lines
are split here, which keeps reading within a few percent of the bare codec
(see bench/storage_bench.py). Memory stays bounded by the chunk size plus the
longest line. Malformed lines are counted and the first few logged with their
file and line number; a damaged file raises CorruptFileError after every record
before the damage has been delivered.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import BinaryIO, Iterator, Sequence

from .codecs import MAGIC_LENGTH, Codec, check_magic, codec_for_name
from .errors import CodecError, CorruptFileError

log = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20
SALVAGE_STEP = 256
REPORTED_BAD_LINES = 5
"""Malformed lines logged per file; the rest are only counted."""

Record = tuple[str, str]


class RecordReader:
    """One stored file's records, with counters for progress and reports.

    Iterate once. ``dimensions`` are the file's path parts, when the caller
    knows them (see ``dimensions_from_path`` and ``find_files``). After (or during) iteration: ``records``, ``bad_lines``,
    ``lines``, ``uncompressed_bytes`` and ``compressed_bytes``.
    """

    def __init__(self, path: str, dimensions: Sequence[str] | None = None, *, codec: Codec | None = None):
        self.path = path
        self.codec = codec or codec_for_name(os.path.basename(path))
        if self.codec is None:
            raise CodecError(f"{path}: not a record file (expected a .log, .lzma, .xz, .lz4 or .gz suffix)")
        self.dimensions = list(dimensions) if dimensions is not None else None
        self.records = 0
        self.bad_lines = 0
        self.lines = 0
        self.uncompressed_bytes = 0
        self._raw: BinaryIO | None = None
        self._consumed = 0

    @property
    def compressed_bytes(self) -> int:
        """Bytes of the file consumed so far (for progress)."""
        return self._raw.tell() if self._raw is not None else self._consumed

    def __iter__(self) -> Iterator[Record]:
        with open(self.path, "rb") as raw:
            check_magic(self.path, self.codec, raw.read(MAGIC_LENGTH))
            raw.seek(0)
            self._raw = raw
            try:
                with _closing(self.codec.open_read(raw), raw) as stream:
                    yield from self._records(self._lines(stream))
            finally:
                self._consumed = raw.tell()
                self._raw = None

    def _lines(self, stream: BinaryIO) -> Iterator[bytes]:
        rest = b""
        read = stream.read
        try:
            while chunk := read(CHUNK_SIZE):
                self.uncompressed_bytes += len(chunk)
                lines = (rest + chunk).split(b"\n")
                rest = lines.pop()
                yield from lines
        except self.codec.damage_errors as e:
            yield from self._salvage(rest, e)
        if rest:
            yield rest  # last line without a newline

    def _salvage(self, rest: bytes, damage: BaseException) -> Iterator[bytes]:
        """Deliver the complete lines the failed chunk held before the damage, then raise.

        A failed large read loses everything it decoded, so decode the file
        again, skip what was delivered, and creep up to the damage in small
        steps. Only damaged files pay for this.
        """
        with open(self.path, "rb") as raw, _closing(self.codec.open_read(raw), raw) as stream:
            try:
                _skip(stream, self.uncompressed_bytes)
                while piece := stream.read(SALVAGE_STEP):
                    self.uncompressed_bytes += len(piece)
                    *lines, rest = (rest + piece).split(b"\n")
                    yield from lines
            except self.codec.damage_errors:
                pass  # the partial line before the damage is dropped with the rest
        raise CorruptFileError(self.path, self.records, str(damage) or type(damage).__name__)

    def _records(self, lines: Iterator[bytes]) -> Iterator[Record]:
        for line in lines:
            self.lines += 1
            try:
                uuid, tab, payload = line.decode("utf-8").partition("\t")
            except UnicodeDecodeError as e:
                self._bad_line(f"not UTF-8 ({e.reason} at byte {e.start})")
                continue
            if not tab or not uuid:
                self._bad_line("no tab" if line else "empty line")
                continue
            self.records += 1
            yield uuid, payload
        if self.bad_lines > REPORTED_BAD_LINES:
            log.warning("%s: %d malformed lines in all, skipped", self.path, self.bad_lines)

    def _bad_line(self, reason: str) -> None:
        self.bad_lines += 1
        if self.bad_lines <= REPORTED_BAD_LINES:
            log.warning("%s:%d: malformed line (%s), expected uuid<TAB>json; skipped",
                        self.path, self.lines, reason)


def _skip(stream: BinaryIO, count: int) -> None:
    while count > 0:
        skipped = len(stream.read(min(count, CHUNK_SIZE)))
        if not skipped:
            return
        count -= skipped


@contextmanager
def _closing(stream: BinaryIO, raw: BinaryIO) -> Iterator[BinaryIO]:
    """Close a codec stream unless it is the raw file itself (plain logs)."""
    try:
        yield stream
    finally:
        if stream is not raw:
            stream.close()


def read_records(path: str) -> Iterator[Record]:
    """The records of one file, for callers that need no counters."""
    return iter(RecordReader(path))
