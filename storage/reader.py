"""Stream ``(uuid, json_text)`` records out of one stored file, whatever its codec.

Decompression goes through the codec in large chunks and lines are split here,
which keeps reading within a few percent of the bare codec (see
bench/storage_bench.py). Memory stays bounded by the chunk size plus the longest
line, and a line may be at most ``max_line_bytes`` long: a longer one (a
decompression bomb without a newline, say) is skipped as a malformed line
without ever being held whole. Malformed lines are counted and the first few
logged with their file and line number. A damaged file, or one whose content is
not what its name says, raises CorruptFileError after every record before the
damage has been delivered: whatever the codec's failure, it is reported the
same way, so callers handle one exception.
"""

from __future__ import annotations

import logging
import os
from typing import BinaryIO, Iterator, Sequence

from .codecs import MAGIC_LENGTH, Codec, codec_for_name, mislabelling
from .errors import CodecError, CorruptFileError

log = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20
SALVAGE_STEP = 256
REPORTED_BAD_LINES = 5
"""Malformed lines logged per file; the rest are only counted."""
MAX_LINE_BYTES = 64 << 20
"""The longest line read (uuid, tab, JSON): a real ping is well under 1 MB."""

Record = tuple[str, str]


class RecordReader:
    """One stored file's records, with counters for progress and reports.

    Iterate once. ``dimensions`` are the file's path parts, when the caller
    knows them (see ``dimensions_from_path`` and ``find_files``). A line longer
    than ``max_line_bytes`` (without its newline) is a malformed line. After
    (or during) iteration: ``records``, ``bad_lines``, ``lines``,
    ``uncompressed_bytes`` and ``compressed_bytes``.
    """

    def __init__(self, path: str, dimensions: Sequence[str] | None = None, *, codec: Codec | None = None,
                 max_line_bytes: int = MAX_LINE_BYTES):
        self.path = path
        self.codec = codec or codec_for_name(os.path.basename(path))
        if self.codec is None:
            raise CodecError(f"{path}: not a record file (expected a .log, .lzma, .xz, .lz4 or .gz suffix)")
        self.dimensions = list(dimensions) if dimensions is not None else None
        self.max_line_bytes = max_line_bytes
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
            problem = mislabelling(self.codec, raw.read(MAGIC_LENGTH))
            if problem:
                raise CorruptFileError(self.path, 0, problem)
            raw.seek(0)
            self._raw = raw
            try:
                yield from self._records(self._chunks(raw))
            finally:
                self._consumed = raw.tell()
                self._raw = None

    def _chunks(self, raw: BinaryIO) -> Iterator[bytes]:
        # A line inside one chunk is shorter than the chunk: only lines that span chunks need measuring.
        try:
            for chunk in self.codec.chunks(raw, min(CHUNK_SIZE, self.max_line_bytes)):
                self.uncompressed_bytes += len(chunk)
                yield chunk
        except self.codec.damage_errors as e:
            yield from self._salvage(e)

    def _salvage(self, damage: BaseException) -> Iterator[bytes]:
        """Deliver what the failed read decoded before the damage, then raise.

        A failed large read loses everything it decoded, so decode the file
        again, skip what was delivered, and creep up to the damage in small
        steps. Only damaged files pay for this; the partial line just before
        the damage is dropped with the rest.
        """
        with open(self.path, "rb") as raw:
            try:
                for piece in self.codec.chunks(raw, SALVAGE_STEP, skip=self.uncompressed_bytes):
                    self.uncompressed_bytes += len(piece)
                    yield piece
            except self.codec.damage_errors:
                pass
        raise CorruptFileError(self.path, self.records, str(damage) or type(damage).__name__)

    def _records(self, chunks: Iterator[bytes]) -> Iterator[Record]:
        """Cut chunks into records, decoding each field straight out of the chunk (one copy)."""
        partial = _PartialLine(self.max_line_bytes)  # the start of a line that continues in the next chunk
        for chunk in chunks:
            last = chunk.rfind(b"\n")
            if last < 0:
                partial.add(chunk)
                continue
            start = 0
            if partial:
                first = chunk.find(b"\n") + 1
                yield from self._finish(partial, chunk[:first])
                start = first
            yield from self._parse(chunk, start, last + 1)
            partial.add(chunk[last + 1:])
        if partial:  # a last line without a newline
            yield from self._finish(partial, b"\n")
        if self.bad_lines > REPORTED_BAD_LINES:
            log.warning("%s: %d malformed lines in all, skipped", self.path, self.bad_lines)

    def _finish(self, partial: "_PartialLine", end: bytes) -> Iterator[Record]:
        """The record of a line that spans chunks, ``end`` being its last piece (up to the newline)."""
        if partial.dropped or partial.size + len(end) - 1 > self.max_line_bytes:
            self.lines += 1
            self._bad_line(f"longer than {self.max_line_bytes:,} bytes")
        else:
            line = partial.joined(end)
            yield from self._parse(line, 0, len(line))
        partial.clear()

    def _parse(self, data: bytes, position: int, stop: int) -> Iterator[Record]:
        """The records of ``data[position:stop]``, whole lines each ending in a newline."""
        view = memoryview(data)
        find = data.find
        while position < stop:
            newline = find(b"\n", position, stop)
            tab = find(b"\t", position, newline)
            self.lines += 1
            if tab <= position:
                self._bad_line("empty line" if newline == position else "no tab" if tab < 0 else "empty id")
            else:
                try:
                    record = str(view[position:tab], "utf-8"), str(view[tab + 1:newline], "utf-8")
                except UnicodeDecodeError as e:
                    self._bad_line(f"not UTF-8: {e.reason}")
                else:
                    self.records += 1
                    yield record
            position = newline + 1

    def _bad_line(self, reason: str) -> None:
        self.bad_lines += 1
        if self.bad_lines <= REPORTED_BAD_LINES:
            log.warning("%s:%d: malformed line (%s), expected uuid<TAB>json; skipped",
                        self.path, self.lines, reason)


class _PartialLine:
    """The pieces of a line read so far, up to ``limit`` bytes; past that, only the fact that it was too long."""

    def __init__(self, limit: int):
        self.limit = limit
        self.pieces: list[bytes] = []
        self.size = 0
        self.dropped = False

    def __bool__(self) -> bool:
        return self.size > 0 or self.dropped

    def add(self, piece: bytes) -> None:
        if not piece or self.dropped:
            return
        self.size += len(piece)
        if self.size > self.limit:
            self.pieces, self.dropped = [], True
        else:
            self.pieces.append(piece)

    def joined(self, end: bytes) -> bytes:
        return b"".join(self.pieces) + end

    def clear(self) -> None:
        self.pieces, self.size, self.dropped = [], 0, False


def read_records(path: str) -> Iterator[Record]:
    """The records of one file, for callers that need no counters."""
    return iter(RecordReader(path))
