"""How stored files are compressed: each codec's suffix, magic bytes and streaming file objects.

A file's codec is chosen by its suffix and then checked against its first bytes,
so a mislabelled file fails with a clear message instead of as garbage records.
Every way a decompressor can fail on damaged input is listed per codec
(``damage_errors``, found by fuzzing each codec with truncated, bit-flipped
and random input), so readers can treat all of them as one kind of damage.
"""

from __future__ import annotations

import gzip
import lzma
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Iterator

import lz4.frame

MAGIC_LENGTH = 6
INPUT_BLOCK = 256 << 10
"""Compressed bytes handed to a decompressor at a time: large blocks keep per-call cost negligible."""
SMALL_INPUT_BLOCK = 8 << 10
"""The same when small pieces of output are wanted: the lz4 binding copies its pending input on every call."""
SKIP_PIECE = 1 << 20
"""Output decoded at a time while skipping to where a re-read should start."""
LZMA_MEMORY_LIMIT = 128 << 20
"""What an LZMA/xz decoder may allocate: twice what ``xz -9`` needs. The dictionary size comes from the
file's header, so without a limit a hostile header could ask for 4 GiB."""


@dataclass(frozen=True)
class Codec:
    name: str
    suffix: str
    open_write: Callable[[BinaryIO], BinaryIO]
    looks_like: Callable[[bytes], bool]
    damage_errors: tuple[type[BaseException], ...]
    """Exceptions reading raises on truncated or corrupt data."""
    decompressor: Callable[[], Any] | None = None
    """A streaming decompressor (lzma/lz4 style: needs_input, eof, unused_data), if the codec has one."""
    open_read: Callable[[BinaryIO], BinaryIO] | None = None
    """For a codec without a streaming decompressor: a decompressing file object over the raw file."""

    def chunks(self, raw: BinaryIO, size: int, skip: int = 0) -> Iterator[bytes]:
        """Decompressed data from ``raw`` in pieces of at most ``size`` bytes, leaving out the first ``skip``.

        An empty ``raw`` is empty data (as gzip has it), not a truncated stream.
        """
        if self.decompressor is not None:
            yield from _decompress(raw, self.decompressor, size, skip)
            return
        with self._reading(raw) as stream:
            while skip > 0 and (skipped := len(stream.read(min(skip, SKIP_PIECE)))):
                skip -= skipped
            yield from iter(lambda: stream.read(size), b"")

    @contextmanager
    def _reading(self, raw: BinaryIO) -> Iterator[BinaryIO]:
        """The decompressing file object over ``raw``, closed afterwards (``raw`` itself is left open)."""
        stream = self.open_read(raw)
        try:
            yield stream
        finally:
            if stream is not raw:
                stream.close()

    def __reduce__(self):
        # Codecs travel to worker processes by name; their functions are not picklable.
        return codec_named, (self.name,)


_XZ_MAGIC = b"\xfd7zXZ\x00"
_GZIP_MAGIC = b"\x1f\x8b"
_LZ4_MAGIC = b"\x04\x22\x4d\x18"


def _looks_like_lzma_alone(head: bytes) -> bool:
    # No magic number: a properties byte (lc/lp/pb packed, < 225, 0x5d for the
    # usual presets) followed by a little-endian dictionary size.
    return len(head) >= 5 and head[0] < 225 and not _has_known_magic(head)


def _has_known_magic(head: bytes) -> bool:
    return head.startswith((_XZ_MAGIC, _GZIP_MAGIC, _LZ4_MAGIC))


def _looks_plain(head: bytes) -> bool:
    return not _has_known_magic(head) and not head.startswith(b"\x5d\x00\x00")


_LZMA_ERRORS = (EOFError, lzma.LZMAError)

LZMA = Codec(
    "lzma", ".lzma",
    open_write=lambda f: lzma.LZMAFile(f, "wb", format=lzma.FORMAT_ALONE, preset=0),
    looks_like=_looks_like_lzma_alone,
    damage_errors=_LZMA_ERRORS,
    decompressor=lambda: lzma.LZMADecompressor(lzma.FORMAT_ALONE, memlimit=LZMA_MEMORY_LIMIT),
)
XZ = Codec(
    "xz", ".xz",
    open_write=lambda f: lzma.LZMAFile(f, "wb", format=lzma.FORMAT_XZ, preset=0),
    looks_like=lambda head: head.startswith(_XZ_MAGIC),
    damage_errors=_LZMA_ERRORS,
    decompressor=lambda: lzma.LZMADecompressor(lzma.FORMAT_XZ, memlimit=LZMA_MEMORY_LIMIT),
)
LZ4 = Codec(
    "lz4", ".lz4",
    # Block checksums catch corruption before a damaged block is decoded.
    open_write=lambda f: lz4.frame.LZ4FrameFile(f, "wb", block_checksum=True, content_checksum=True),
    looks_like=lambda head: head.startswith(_LZ4_MAGIC),
    # The binding reports a bad checksum or block as RuntimeError.
    damage_errors=(EOFError, RuntimeError),
    decompressor=lz4.frame.LZ4FrameDecompressor,
)
GZIP = Codec(
    "gzip", ".gz",
    open_read=lambda f: gzip.GzipFile(fileobj=f),
    open_write=lambda f: gzip.GzipFile(fileobj=f, mode="wb", compresslevel=1),
    looks_like=lambda head: head.startswith(_GZIP_MAGIC),
    damage_errors=(EOFError, zlib.error, gzip.BadGzipFile),
)
PLAIN = Codec(
    "plain", ".log",
    open_read=lambda f: f,
    open_write=lambda f: f,
    looks_like=_looks_plain,
    damage_errors=(),
)

CODECS = (LZMA, XZ, LZ4, GZIP, PLAIN)
COMPRESSORS = {c.name: c for c in CODECS if c is not PLAIN}
"""The codecs a pending log can be compressed with, by name."""

_BY_SUFFIX = {c.suffix: c for c in CODECS}


def codec_named(name: str) -> Codec:
    return next(c for c in CODECS if c.name == name)


def _decompress(raw: BinaryIO, new_decompressor: Callable[[], Any], size: int, skip: int) -> Iterator[bytes]:
    """Drive a streaming decompressor over ``raw``; concatenated streams/frames are read in turn."""
    block = INPUT_BLOCK if size >= INPUT_BLOCK else SMALL_INPUT_BLOCK
    data = raw.read(INPUT_BLOCK if skip else block)
    if not data:
        return
    decompressor = new_decompressor()
    while True:
        chunk = decompressor.decompress(data, min(skip, SKIP_PIECE) if skip else size)
        if skip:
            skip -= len(chunk)
        elif chunk:
            yield chunk
        if decompressor.eof:
            data = decompressor.unused_data or raw.read(INPUT_BLOCK if skip else block)
            if not data:
                return
            decompressor = new_decompressor()
        elif decompressor.needs_input:
            data = raw.read(INPUT_BLOCK if skip else block)
            if not data:
                raise EOFError("compressed data ends before the end-of-stream marker")
        else:
            data = b""


def codec_for_name(file_name: str) -> Codec | None:
    """The codec a file name's suffix promises, or None for names that hold no records."""
    dot = file_name.rfind(".")
    return _BY_SUFFIX.get(file_name[dot:]) if dot >= 0 else None


def mislabelling(codec: Codec, head: bytes) -> str | None:
    """What is wrong if a file's first bytes contradict the codec its suffix names, else None."""
    if not head or codec.looks_like(head):
        return None
    actual = next((c for c in CODECS if c is not PLAIN and c is not LZMA and c.looks_like(head)),
                  LZMA if codec is PLAIN else None)
    if actual is None:
        return f"the name says {codec.name} ({codec.suffix}) but the content is not {codec.name} data"
    return (f"the name says {codec.name} ({codec.suffix}) but the content looks like {actual.name}; "
            f"rename the file to end in {actual.suffix}")
