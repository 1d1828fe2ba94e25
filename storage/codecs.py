"""How stored files are compressed: each codec's suffix, magic bytes and streaming file objects.

A file's codec is chosen by its suffix and then checked against its first bytes,
so a mislabelled file fails with a clear message instead of as garbage records.
"""

from __future__ import annotations

import gzip
import lzma
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Iterator

import lz4.frame

from .errors import CodecError

MAGIC_LENGTH = 6
INPUT_BLOCK = 256 << 10
"""Compressed bytes handed to a decompressor at a time: large blocks keep per-call cost negligible."""


@dataclass(frozen=True)
class Codec:
    name: str
    suffix: str
    open_read: Callable[[BinaryIO], BinaryIO]
    open_write: Callable[[BinaryIO], BinaryIO]
    looks_like: Callable[[bytes], bool]
    damage_errors: tuple[type[BaseException], ...]
    """Exceptions reading raises on truncated or corrupt data."""
    decompressor: Callable[[], Any] | None = None
    """A streaming decompressor (lzma/lz4 style: needs_input, eof, unused_data), if the codec has one."""

    @contextmanager
    def reading(self, raw: BinaryIO) -> Iterator[BinaryIO]:
        """A decompressing file object over ``raw``, closed afterwards (``raw`` itself is left open)."""
        stream = self.open_read(raw)
        try:
            yield stream
        finally:
            if stream is not raw:
                stream.close()

    def chunks(self, raw: BinaryIO, size: int) -> Iterator[bytes]:
        """Decompressed data from ``raw`` in pieces of at most ``size`` bytes."""
        if self.decompressor is None:
            with self.reading(raw) as stream:
                yield from iter(lambda: stream.read(size), b"")
        else:
            yield from _decompress(raw, self.decompressor, size)

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
    open_read=lambda f: lzma.LZMAFile(f, format=lzma.FORMAT_ALONE),
    open_write=lambda f: lzma.LZMAFile(f, "wb", format=lzma.FORMAT_ALONE, preset=0),
    looks_like=_looks_like_lzma_alone,
    damage_errors=_LZMA_ERRORS,
    decompressor=lambda: lzma.LZMADecompressor(lzma.FORMAT_ALONE),
)
XZ = Codec(
    "xz", ".xz",
    open_read=lambda f: lzma.LZMAFile(f, format=lzma.FORMAT_XZ),
    open_write=lambda f: lzma.LZMAFile(f, "wb", format=lzma.FORMAT_XZ, preset=0),
    looks_like=lambda head: head.startswith(_XZ_MAGIC),
    damage_errors=_LZMA_ERRORS,
    decompressor=lambda: lzma.LZMADecompressor(lzma.FORMAT_XZ),
)
LZ4 = Codec(
    "lz4", ".lz4",
    open_read=lambda f: lz4.frame.LZ4FrameFile(f),
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


def _decompress(raw: BinaryIO, new_decompressor: Callable[[], Any], size: int) -> Iterator[bytes]:
    """Drive a streaming decompressor over ``raw``; concatenated streams/frames are read in turn."""
    decompressor = new_decompressor()
    data = raw.read(INPUT_BLOCK)
    while True:
        chunk = decompressor.decompress(data, size)
        if chunk:
            yield chunk
        if decompressor.eof:
            data = decompressor.unused_data or raw.read(INPUT_BLOCK)
            if not data:
                return
            decompressor = new_decompressor()
        elif decompressor.needs_input:
            data = raw.read(INPUT_BLOCK)
            if not data:
                raise EOFError("compressed data ends before the end-of-stream marker")
        else:
            data = b""


def codec_for_name(file_name: str) -> Codec | None:
    """The codec a file name's suffix promises, or None for names that hold no records."""
    dot = file_name.rfind(".")
    return _BY_SUFFIX.get(file_name[dot:]) if dot >= 0 else None


def check_magic(path: str, codec: Codec, head: bytes) -> None:
    """Raise CodecError if the first bytes of ``path`` contradict its suffix."""
    if not head or codec.looks_like(head):
        return
    actual = next((c.name for c in CODECS if c is not PLAIN and c is not LZMA and c.looks_like(head)),
                  "lzma" if codec is PLAIN else "unknown data")
    raise CodecError(f"{path}: the name says {codec.name} ({codec.suffix}) but the content looks like "
                     f"{actual}; rename the file to the right suffix")
