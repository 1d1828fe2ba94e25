"""Convert whole inputs into the storage layout on every core, then rotate and compress what was written.

The main process only frames records (record logs) or splits lines (exports)
and hands batches to worker processes, which decode, convert and append
through their own LayoutWriter (safe for many writers). At most two batches per
worker are in flight, so memory stays flat however large the input.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator

from storage import CodecError, CorruptFileError, LayoutWriter, RecordReader, Schema, compress_pending, fastjson
from storage import rotate_log
from storage.codecs import PLAIN, codec_for_name

from .convert import ConversionStats, Converter, Rejected
from .recordlog import DamagedRecord, RecordLogReader, decode_payload, is_record_log
from .revisions import RevisionCache

log = logging.getLogger(__name__)

BATCH_SIZE = 200


@dataclass(frozen=True)
class ConvertOptions:
    storage: str
    schema: Schema
    cache_dir: str | None = None
    url_template: str | None = None
    fallback: dict = field(default_factory=dict)
    strict: bool = False
    submission_date: str | None = None
    rejected_path: str | None = None
    workers: int = 1
    codec: str = "lzma"
    max_log_size: int = 500_000_000


@dataclass
class RunSummary:
    stats: ConversionStats = field(default_factory=ConversionStats)
    damaged: Counter = field(default_factory=Counter)
    """Records that could not even be read as JSON, by reason (framing, gzip, JSON)."""
    unreadable: list[str] = field(default_factory=list)
    """Inputs that could not be read (missing, damaged), with the reason."""
    input_bytes: int = 0
    """Bytes of input read so far (for progress)."""
    seconds: float = 0.0
    revision_failures: dict[str, str] = field(default_factory=dict)


# A work item: (where, uuid, submission date, fields from the record's path, data as bytes or JSON text)
Item = tuple[str, str, str, dict | None, Any]


def convert_inputs(inputs: Iterable[str], options: ConvertOptions,
                   on_progress: Callable[[RunSummary], None] | None = None) -> RunSummary:
    summary = RunSummary()
    started = time.monotonic()
    touched: set[str] = set()
    rejected_file = open(options.rejected_path, "a", encoding="utf-8") if options.rejected_path else None
    try:
        for result in _run(_batches(inputs, options, summary), options):
            stats, damaged, rejected, logs, failures = result
            summary.stats.add(stats)
            summary.damaged.update(damaged)
            summary.revision_failures.update(failures)
            touched.update(logs)
            if rejected_file:
                rejected_file.writelines(f"{uuid}\t{reason}\t{text}\n" for uuid, reason, text in rejected)
            if on_progress:
                on_progress(summary)
    finally:
        if rejected_file:
            rejected_file.close()
    for path in sorted(touched):
        rotate_log(path)
    compress_pending(options.storage, options.codec, options.workers)
    summary.seconds = time.monotonic() - started
    return summary


def _run(batches: Iterator[list[Item]], options: ConvertOptions) -> Iterator[tuple]:
    if options.workers <= 1:
        _start_worker(options)
        yield from map(_convert_batch, batches)
        return
    with ProcessPoolExecutor(options.workers, initializer=_start_worker, initargs=(options,)) as pool:
        in_flight: set[Future] = set()
        for batch in batches:
            in_flight.add(pool.submit(_convert_batch, batch))
            if len(in_flight) >= 2 * options.workers:
                done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                yield from (f.result() for f in done)
        for future in in_flight:
            yield future.result()


def _batches(inputs: Iterable[str], options: ConvertOptions, summary: RunSummary) -> Iterator[list[Item]]:
    batch: list[Item] = []
    for path in inputs:
        try:
            for item in _items(path, options, summary):
                batch.append(item)
                if len(batch) >= BATCH_SIZE:
                    yield batch
                    batch = []
        except (OSError, CorruptFileError, CodecError) as e:
            log.error("%s", e)
            summary.unreadable.append(str(e))
    if batch:
        yield batch


def _items(path: str, options: ConvertOptions, summary: RunSummary) -> Iterator[Item]:
    with open(path, "rb") as f:
        head = f.read(1)
    done_before = summary.input_bytes
    if is_record_log(head):
        reader = RecordLogReader(path)
        for record in reader:
            summary.input_bytes = done_before + record.offset
            date = options.submission_date or _date_of(record.timestamp_ms)
            yield f"{path}@{record.offset}", record.uuid, date, record.path_fields, record.data
        summary.damaged.update(reader.stats.damaged)
    else:
        records = RecordReader(path, codec=codec_for_name(os.path.basename(path)) or PLAIN)
        for uuid, text in records:
            summary.input_bytes = done_before + records.compressed_bytes
            yield f"{path}:{records.lines}", uuid, options.submission_date, None, text
        summary.damaged["malformed line"] += records.bad_lines
    summary.input_bytes = done_before + os.path.getsize(path)


def _date_of(timestamp_ms: int) -> str:
    return datetime.fromtimestamp(timestamp_ms / 1000, timezone.utc).strftime("%Y%m%d")


# -- in the worker processes -------------------------------------------------------

_worker: "_Worker | None" = None


class _Worker:
    def __init__(self, options: ConvertOptions):
        revisions = RevisionCache(options.cache_dir, options.url_template, fallback=options.fallback)
        self.converter = Converter(revisions, strict=options.strict)
        self.writer = LayoutWriter(options.storage, options.schema, max_log_size=options.max_log_size,
                                   version=2)
        self.schema = options.schema
        self.keep_rejected = options.rejected_path is not None


def _start_worker(options: ConvertOptions) -> None:
    global _worker
    _worker = _Worker(options)


def _convert_batch(batch: list[Item]) -> tuple:
    worker = _worker
    converter = worker.converter
    converter.stats = ConversionStats()
    damaged: Counter = Counter()
    rejected: list[tuple[str, str, str]] = []
    for where, uuid, date, path_fields, data in batch:
        try:
            payload = decode_payload(data) if isinstance(data, bytes) else fastjson.loads(data)
        except (DamagedRecord, ValueError) as e:
            reason = e.reason if isinstance(e, DamagedRecord) else "bad JSON"
            damaged[reason] += 1
            log.debug("%s: %s", where, e)
            continue
        try:
            converted = converter.convert(payload)
        except Rejected as e:
            if worker.keep_rejected:
                rejected.append((uuid, e.reason, fastjson.dumps(payload).decode("utf-8")))
            continue
        info = dict(path_fields or {}, **converted["info"])
        worker.writer.write(uuid, converted, worker.schema.values_from(info, date))
    touched = worker.writer.touched
    return converter.stats, damaged, rejected, touched, dict(converter.revisions.failures)
