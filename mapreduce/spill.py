"""Sorted runs on disk: what mappers spill and reducers merge, with memory bounded by one key.

A run is a sequence of entries ``(ordered key, tag, key, values)`` sorted by
``(ordered key, tag)`` (a reducer's output run holds ``(ordered key, text)``).
The tag is ``(file index, spill number)``: merging runs sorts each key's
values by where they came from, so a reducer sees the same values in the same
order however the files were spread over mappers.

Entries are stored as plain data (``plain``), never pickled, in batches.
Each batch is a record of its own: a length, then an lz4 frame with block
checksums, decompressed whole (so every checksum is checked: lz4 hands out a
stored block's bytes before it checks them) before a byte of it is decoded. The last record says how many entries the stream
holds. A flipped bit or a run cut short is a ``DamagedRunError`` naming the
file, never wrong data.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import struct
from typing import Any, BinaryIO, Iterable, Iterator

import lz4.frame

from .errors import JobError
from .keys import order_keys_of
from .plain import SCALAR_TYPES, pack_ordered, pack_pairs, pack_values, unpack_ordered, unpack_plain

BATCH_BYTES = 256 << 10
"""About what a reader holds per open run: big entries (merged histogram sets) come a few at a time."""
MAX_BATCH = 4096
MAX_OPEN_RUNS = 16
"""Runs merged at once; more are merged in passes. Bounds open files, and the reducer's memory
(about MAX_OPEN_RUNS batches) however much data there is."""
READ_CHUNK = 1 << 20
"""A record's stated length is read this much at a time, so a damaged length cannot ask for a huge buffer."""
_CONTENT_SIZE_FLAG = 0x08
"""In an lz4 frame's flags byte: frames written here never state their size, which lz4 would allocate up front."""

_SURROGATES, _TEXTS, _ORDER_DERIVED, _ONE_TAG, _KEYS_PLAIN, _VALUES_PLAIN = 1, 2, 4, 8, 16, 32
"""A batch's layout flags: strings hold lone surrogates; it is of (ordered key, text); its ordered keys are made
from its keys; its entries share one tag; its keys, its values, are stored as plain data (not as order data)."""
_LAYOUTS = {_TEXTS, _TEXTS | _SURROGATES} | {
    surrogates | derived | one_tag | stored for surrogates in (0, _SURROGATES) for derived in (0, _ORDER_DERIVED)
    for one_tag in (0, _ONE_TAG) for stored in (0, _VALUES_PLAIN, _KEYS_PLAIN | _VALUES_PLAIN)}
_BATCH = b"B"
_END = b"E"
_LENGTH = struct.Struct("<Q")  # of a record's lz4 frame
_BATCH_RECORD = struct.Struct("<cBQQQ")  # _BATCH, flags, entries, bytes of order data, bytes of plain data
_END_RECORD = struct.Struct("<cQ")  # _END, entries in the whole stream

Entry = tuple[tuple, tuple, Any, list]


class DamagedRunError(JobError):
    """A run in the work dir fails its checksums or is cut short."""

    def __init__(self, path: str, reason: str):
        self.path = path
        self.reason = reason
        super().__init__(f"work dir file {path} is damaged ({reason}); the work dir's disk may be failing; "
                         "rerun the job")


class DamagedData(Exception):
    """An entry stream is damaged; the reader of a file turns this into an error that names it."""


class EntryWriter:
    """Writes already-sorted entries to an open binary file; ``finish`` ends the stream.

    Entries are encoded in batches of about BATCH_BYTES: the batch length
    starts small and doubles or halves with the size of what it held, so a
    reader holds about that much per run whether entries are counts or whole
    histogram sets. NotPlainData (from ``plain``) if a key or value is not
    plain data.
    """

    def __init__(self, file: BinaryIO):
        self.entries = 0
        self._file = file
        self._batch: list = []
        self._limit = 16

    def add(self, entry: Entry) -> None:
        self._batch.append(entry)
        self.entries += 1
        if len(self._batch) >= self._limit:
            size = self._flush()
            if size < BATCH_BYTES // 2:
                self._limit = min(self._limit * 2, MAX_BATCH)
            elif size > BATCH_BYTES * 2:
                self._limit = max(1, self._limit // 2)

    def finish(self) -> None:
        if self._batch:
            self._flush()
        self._write_record(_END_RECORD.pack(_END, self.entries))

    def _flush(self) -> int:
        batch, self._batch = self._batch, []
        flags, order_data, plain_data = _encode(batch)
        header = _BATCH_RECORD.pack(_BATCH, flags, len(batch), len(order_data), len(plain_data))
        self._write_record(b"".join((header, order_data, plain_data)))
        return len(order_data) + len(plain_data)

    def _write_record(self, payload: bytes) -> None:
        frame = lz4.frame.compress(payload, block_checksum=True, store_size=False)
        self._file.write(_LENGTH.pack(len(frame)))
        self._file.write(frame)


class RunWriter(EntryWriter):
    """Writes a run under a temporary name; ``close`` renames it into place."""

    def __init__(self, path: str):
        self.path = path
        super().__init__(open(path + ".tmp", "wb"))

    def close(self) -> int:
        """Finish the run and put it in place; returns its size."""
        self.finish()
        self._file.close()
        os.replace(self.path + ".tmp", self.path)
        return os.path.getsize(self.path)

    def abandon(self) -> None:
        """Stop after an error, and remove what was written."""
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path + ".tmp")


def write_run(path: str, entries: Iterable[Entry]) -> int:
    """Write already-sorted entries as one run; returns the file's size."""
    writer = RunWriter(path)
    try:
        for entry in entries:
            writer.add(entry)
        return writer.close()
    except BaseException:
        writer.abandon()
        raise


def read_run(path: str) -> Iterator[Entry]:
    """The entries of a run; DamagedRunError naming the file if it is damaged."""
    with open(path, "rb") as file:
        try:
            for batch in read_batches(file):
                yield from batch
        except DamagedData as e:
            raise DamagedRunError(path, str(e)) from None


def read_batches(file: BinaryIO) -> Iterator[list | tuple]:
    """The entries of a stream ``EntryWriter`` wrote, a batch at a time; DamagedData if it is damaged."""
    entries = 0
    while length := file.read(_LENGTH.size):
        if len(length) < _LENGTH.size:
            break
        record = _decompress(_read_exactly(file, _LENGTH.unpack(length)[0]))
        if record[:1] == _END:
            if len(record) != _END_RECORD.size or _END_RECORD.unpack(record)[1] != entries:
                raise DamagedData(f"its end record does not match the {entries} entries read")
            if file.read(1):
                raise DamagedData("there is data after its end record")
            return
        try:
            kind, flags, count, order_size, plain_size = _BATCH_RECORD.unpack_from(record)
        except struct.error:
            raise DamagedData("a record too short for a batch") from None
        if kind != _BATCH or flags not in _LAYOUTS or len(record) != _BATCH_RECORD.size + order_size + plain_size:
            raise DamagedData("a malformed batch record")
        body = memoryview(record)[_BATCH_RECORD.size:]
        try:
            batch = _decode(flags, count, body[:order_size], body[order_size:])
        except (ValueError, TypeError) as e:  # what msgpack says of malformed data
            raise DamagedData(f"a batch that does not decode: {e}") from None
        entries += count
        yield batch
    raise DamagedData(f"it ends after {entries} entries, before its end record: it was cut short")


def _decompress(frame: bytes) -> bytes:
    """A record's content, once lz4 has checked its checksum."""
    if len(frame) < 7 or frame[4] & _CONTENT_SIZE_FLAG:
        raise DamagedData("a record that is not an lz4 frame written here")
    try:
        return lz4.frame.decompress(frame)
    except RuntimeError as e:  # a failed checksum, a malformed or incomplete frame
        raise DamagedData(str(e)) from None


def _encode(batch: list) -> tuple[int, bytes, bytes]:
    """(layout flags, order data, plain data) of a batch, stored by column.

    Order data is made of tuples and scalars alone, packed natively and read
    back with every array a tuple, so no hook runs for its tuples: the columns
    of ordered keys and tags always; of keys when they are hashable (a key's
    types are exact: ``order_key`` refused any other); of values when every
    value is a scalar. Other values, and keys that hold lists or dicts, are
    plain data (``pack_values``, ``pack_pairs``), which keeps tuples and lists
    apart. Columns rather than entries, because msgpack spends more on a tuple
    than on what it holds and ``zip`` rebuilds entries at C speed; for the same
    reason a tag shared by the whole batch (a mapper's spill) is stored once,
    and ordered keys that ``keys.order_keys_of`` makes from the keys are not
    stored at all.
    """
    try:
        return _encode_with(batch, 0)
    except UnicodeEncodeError:
        return _encode_with(batch, _SURROGATES)


def _encode_with(batch: list, flags: int) -> tuple[int, bytes, bytes]:
    surrogates = bool(flags & _SURROGATES)
    columns = tuple(zip(*batch))
    if len(columns) == 2:  # (ordered key, text)
        return flags | _TEXTS, pack_ordered(columns, surrogates), b""
    ordered, tags, keys, values = columns
    stored: list[tuple] = []
    if order_keys_of(keys) is None:
        stored.append(ordered)
    else:
        flags |= _ORDER_DERIVED
    if tags.count(tags[0]) == len(tags):
        flags |= _ONE_TAG
        tags = tags[:1]
    stored.append(tags)
    try:
        hash(keys)
    except TypeError:  # a list or dict key
        return flags | _KEYS_PLAIN | _VALUES_PLAIN, pack_ordered(stored, surrogates), pack_pairs(keys, values, surrogates)
    if SCALAR_TYPES.issuperset(map(type, itertools.chain.from_iterable(values))):
        return flags, pack_ordered(stored + [keys, values], surrogates), b""
    return flags | _VALUES_PLAIN, pack_ordered(stored + [keys], surrogates), pack_values(keys, values, surrogates)


def _decode(flags: int, count: int, order_data: bytes, plain_data: bytes) -> list:
    surrogates = bool(flags & _SURROGATES)
    stored = unpack_ordered(order_data, surrogates)
    if flags & _TEXTS:
        if len(stored) != 2 or any(len(column) != count for column in stored):
            raise DamagedData(f"a batch that does not hold {count} entries")
        return list(zip(*stored))
    columns = list(stored)
    if flags & _VALUES_PLAIN:
        plain = unpack_plain(plain_data, surrogates)
        columns += plain if flags & _KEYS_PLAIN else [plain]
    if flags & _ORDER_DERIVED:
        columns.insert(0, None)
    if len(columns) != 4:
        raise DamagedData("a batch whose columns are not those its flags say")
    ordered, tags, keys, values = columns
    if any(len(column) != count for column in (keys, values, *([] if ordered is None else [ordered]))) or len(
            tags) != (1 if flags & _ONE_TAG else count):
        raise DamagedData(f"a batch that does not hold {count} entries")
    if ordered is None and (ordered := order_keys_of(keys)) is None:
        raise DamagedData("a batch whose ordered keys cannot be made from its keys")
    if flags & _ONE_TAG:
        tags = itertools.repeat(tags[0], count)
    if not flags & _VALUES_PLAIN:
        values = map(list, values)
    return list(zip(ordered, tags, keys, values))


def _read_exactly(frame: BinaryIO, size: int) -> bytes:
    chunks = []
    while size > 0:
        chunk = frame.read(min(size, READ_CHUNK))
        if not chunk:
            raise DamagedData("it was cut short in the middle of a record")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def merge_runs(paths: list[str], work_dir: str) -> Iterator[Entry]:
    """All entries of ``paths`` in (ordered key, tag) order, merging in passes if there are many."""
    paths = sorted(paths)
    generation = 0
    while len(paths) > MAX_OPEN_RUNS:
        merged = []
        for start in range(0, len(paths), MAX_OPEN_RUNS):
            group = paths[start:start + MAX_OPEN_RUNS]
            target = os.path.join(work_dir, f"merge-{generation}-{start}.run")
            write_run(target, heapq.merge(*map(read_run, group)))
            for path in group:
                os.remove(path)
            merged.append(target)
        paths = merged
        generation += 1
    # Entries compare by (ordered key, tag) first, and no two runs share a tag:
    # plain tuple order is the merge order, with no key function to call.
    return heapq.merge(*map(read_run, paths))


def grouped(entries: Iterator[Entry]) -> Iterator[tuple[tuple, Any, Iterator[tuple[tuple, list]]]]:
    """(ordered key, key, the key's (tag, values) in tag order) for each distinct key."""
    for ordered, group in itertools.groupby(entries, key=lambda entry: entry[0]):
        first = next(group)
        yield ordered, first[2], itertools.chain([first[1::2]], (entry[1::2] for entry in group))
