"""Read the acquisition server's binary record logs (v1 and v2), resynchronising after damage.

Each record is a header, little-endian, then its fields:

    v1: 0x1e | path length u16 | data length u32 | timestamp ms u64 | path | data
    v2: 0x1e | ip length u8 | path length u16 | data length u32 | timestamp ms u64 | ip | path | data

with ``path`` = ``uuid/reason/appName/appVersion/appUpdateChannel/appBuildID`` and
``data`` gzip-compressed or plain JSON. This module only frames records (cheap);
``decode_payload`` turns the data into JSON, so that work can run on every core.
The version is detected from the first record that frames cleanly.

The data comes from the internet: ``decode_payload`` never inflates more than
the size it is given (a 1 MB gzip record can hold a gigabyte of zeros).
"""

from __future__ import annotations

import logging
import mmap
import struct
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator

from storage import fastjson

log = logging.getLogger(__name__)

SEPARATOR = 0x1E
GZIP_MAGIC = b"\x1f\x8b"
_V1 = struct.Struct("<BHIQ")
_V2 = struct.Struct("<BBHIQ")
MAX_PATH_LENGTH = 10_000
MAX_DATA_LENGTH = 200 * 1024 * 1024
DEFAULT_MAX_PAYLOAD_SIZE = 20 * 1024 * 1024
"""Real pings are about 100 kB of JSON; the largest seen are a few MB."""
PATH_FIELDS = ("uuid", "reason", "appName", "appVersion", "appUpdateChannel", "appBuildID")
_PATH_PREFIXES = ("/submit/telemetry/", "submit/telemetry/", "/")


class DamagedRecord(ValueError):
    """A record whose content cannot be used; ``reason`` is a short counter name."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason = reason
        super().__init__(f"{reason}: {detail}" if detail else reason)


class PayloadTooLarge(ValueError):
    """A record whose data is (or inflates to) more than the payload size limit."""

    def __init__(self, limit: int):
        self.limit = limit
        super().__init__(f"payload larger than {limit:,} bytes")


@dataclass(frozen=True)
class RawRecord:
    """One framed submission: where it came from and its still-encoded data."""

    uuid: str
    path_fields: dict[str, str]
    timestamp_ms: int
    ip: str | None
    data: bytes
    offset: int


@dataclass
class RecordLogStats:
    records: int = 0
    damaged: Counter = field(default_factory=Counter)
    skipped_bytes: int = 0
    version: int | None = None


def is_record_log(head: bytes) -> bool:
    """Record logs start with the separator byte; ``uuid<TAB>json`` exports never do."""
    return head[:1] == bytes([SEPARATOR])


class RecordLogReader:
    """Iterate the framed records of one log; damaged spans are counted in ``stats`` and skipped."""

    def __init__(self, path: str):
        self.path = path
        self.stats = RecordLogStats()

    def __iter__(self) -> Iterator[RawRecord]:
        with open(self.path, "rb") as f:
            if f.seek(0, 2) == 0:
                return
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buffer:
                yield from self._records(buffer)

    def _records(self, buffer: mmap.mmap) -> Iterator[RawRecord]:
        position, size = 0, len(buffer)
        while position < size:
            record, end = self._frame(buffer, position)
            if record is None:
                reason = end  # the framing failure
                resumed = self._resync(buffer, position + 1)
                self.stats.damaged[reason] += 1
                self.stats.skipped_bytes += resumed - position
                log.warning("%s: damaged record at byte %d (%s); skipped %d bytes to the next record",
                            self.path, position, reason, resumed - position)
                position = resumed
                continue
            self.stats.records += 1
            yield record
            position = end

    def _frame(self, buffer: mmap.mmap, position: int):
        """(record, end) for a record framed at ``position``, or (None, reason)."""
        if buffer[position] != SEPARATOR:
            return None, "bad separator"
        versions = (self.stats.version,) if self.stats.version else (2, 1)
        reason = "impossible lengths"
        for version in versions:
            framed = _frame_version(buffer, position, version)
            if isinstance(framed, str):
                reason = framed
                continue
            record, end = framed
            if end < len(buffer) and buffer[end] != SEPARATOR and _record_within(buffer, position + 1, end, version):
                # Another record starts inside this one's span: this one was cut short.
                reason = "truncated record"
                continue
            self.stats.version = version
            return framed
        return None, reason

    def _resync(self, buffer: mmap.mmap, start: int) -> int:
        """The offset of the next record that frames cleanly, or the end of the file."""
        position = start
        while True:
            position = buffer.find(bytes([SEPARATOR]), position)
            if position < 0:
                return len(buffer)
            record, _ = self._frame(buffer, position)
            if record is not None:
                return position
            position += 1


def _record_within(buffer: mmap.mmap, start: int, stop: int, version: int) -> bool:
    """Does a record that ends exactly where the next one begins start in ``buffer[start:stop]``?"""
    position = buffer.find(bytes([SEPARATOR]), start, stop)
    while position >= 0:
        framed = _frame_version(buffer, position, version)
        if not isinstance(framed, str):
            end = framed[1]
            if end == len(buffer) or buffer[end] == SEPARATOR:
                return True
        position = buffer.find(bytes([SEPARATOR]), position + 1, stop)
    return False


def _frame_version(buffer: mmap.mmap, position: int, version: int):
    size = len(buffer)
    header = _V2 if version == 2 else _V1
    if position + header.size > size:
        return "truncated header"
    if version == 2:
        _, ip_length, path_length, data_length, timestamp = header.unpack_from(buffer, position)
    else:
        _, path_length, data_length, timestamp = header.unpack_from(buffer, position)
        ip_length = 0
    start = position + header.size
    end = start + ip_length + path_length + data_length
    if not 0 < path_length <= MAX_PATH_LENGTH or data_length > MAX_DATA_LENGTH or end > size:
        return "impossible lengths"
    try:
        ip = buffer[start:start + ip_length].decode("ascii") if version == 2 else None
        path = buffer[start + ip_length:start + ip_length + path_length].decode("utf-8")
    except UnicodeDecodeError:
        return "bad path"
    fields = _parse_path(path)
    if fields is None:
        return "bad path"
    data = buffer[start + ip_length + path_length:end]
    return RawRecord(fields["uuid"], fields, timestamp, ip, data, position), end


def _parse_path(path: str) -> dict[str, str] | None:
    for prefix in _PATH_PREFIXES:
        if path.startswith(prefix):
            path = path[len(prefix):]
    parts = path.split("/")
    if len(parts) != len(PATH_FIELDS) or not parts[0] or any(c in parts[0] for c in "\t\r\n"):
        return None
    return dict(zip(PATH_FIELDS, parts))


def encode_record(path: str, data: bytes, timestamp_ms: int, ip: str | None = None) -> bytes:
    """One record as the acquisition server writes it: v2 when ``ip`` is given, else v1."""
    path_bytes = path.encode("utf-8")
    if ip is None:
        return _V1.pack(SEPARATOR, len(path_bytes), len(data), timestamp_ms) + path_bytes + data
    ip_bytes = ip.encode("ascii")
    return (_V2.pack(SEPARATOR, len(ip_bytes), len(path_bytes), len(data), timestamp_ms)
            + ip_bytes + path_bytes + data)


def decode_payload(data: bytes | str, max_size: int = DEFAULT_MAX_PAYLOAD_SIZE) -> Any:
    """The JSON document in a record's data (or an export's text), gunzipping it first if needed.

    DamagedRecord if it is not gzip or JSON; PayloadTooLarge if it is, or would
    inflate to, more than ``max_size`` bytes (characters, for text).
    """
    if isinstance(data, bytes) and data[:2] == GZIP_MAGIC:
        data = gunzip(data, max_size)
    elif len(data) > max_size:
        raise PayloadTooLarge(max_size)
    try:
        return fastjson.loads(data)
    except ValueError as e:
        raise DamagedRecord("bad JSON", str(e)) from None



def gunzip(data: bytes, max_size: int) -> bytes:
    """Inflate every gzip member in ``data``, stopping as soon as the output passes ``max_size``."""
    inflated = bytearray()
    rest = data
    while rest:
        if rest[:2] != GZIP_MAGIC:
            raise DamagedRecord("bad gzip", "not a gzip member")
        member = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            inflated += member.decompress(rest, max_size + 1 - len(inflated))
        except zlib.error as e:
            raise DamagedRecord("bad gzip", str(e)) from None
        if len(inflated) > max_size:
            raise PayloadTooLarge(max_size)
        if not member.eof:
            raise DamagedRecord("bad gzip", "cut short")
        rest = member.unused_data
    return bytes(inflated)
