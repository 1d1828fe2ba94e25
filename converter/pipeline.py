"""Convert whole inputs into the storage layout on every core, then rotate and compress what was written.

The main process only frames records (record logs) or splits lines (exports)
and hands batches to worker processes, which decode, convert and append
through their own LayoutWriter (safe for many writers). At most two batches per
worker are in flight, each of at most ``BATCH_SIZE`` records or about
``BATCH_BYTES``, so memory stays flat however large the input.

A failure while storing (a full disk) stops the run, but what was written is
still rotated and compressed and the summary says where it stopped: no active
log is left behind, and the records counted as converted are exactly those
stored. With a journal (``journal``), a re-run skips the records already
stored; without one it converts its inputs from the start and stores them again.
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

from mapreduce.lifecycle import become_worker
from storage import CodecError, CorruptFileError, LayoutWriter, RecordReader, Schema, compress_pending, fastjson
from storage import rotate_log
from storage.codecs import PLAIN, codec_for_name
from storage.layout import ACTIVE_SUFFIX, NameTooLong

from .convert import ConversionStats, Converter, Rejected
from .journal import Journal, identity
from .recordlog import DEFAULT_MAX_PAYLOAD_SIZE, DamagedRecord, PayloadTooLarge, RecordLogReader, decode_payload
from .recordlog import is_record_log
from .repositories import DEFAULT_REPOSITORIES
from .revisions import RevisionCache
from .stopping import stop_gently

log = logging.getLogger(__name__)

BATCH_SIZE = 200
BATCH_BYTES = 16 * 1024 * 1024
_EARLIEST, _LATEST = datetime(1970, 1, 1, tzinfo=timezone.utc), datetime(9999, 12, 31, tzinfo=timezone.utc)


@dataclass(frozen=True)
class ConvertOptions:
    storage: str
    schema: Schema
    cache_dir: str | None = None
    url_template: str | None = None
    repositories: tuple[str, ...] = DEFAULT_REPOSITORIES
    fallback: dict = field(default_factory=dict)
    strict: bool = False
    submission_date: str | None = None
    rejected_path: str | None = None
    workers: int = 1
    codec: str = "lzma"
    max_log_size: int = 500_000_000
    max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE


@dataclass
class RunSummary:
    stats: ConversionStats = field(default_factory=ConversionStats)
    damaged: Counter = field(default_factory=Counter)
    """Records that could not even be read as JSON, by reason (framing, gzip, JSON)."""
    unreadable: list[str] = field(default_factory=list)
    """Inputs that could not be read (missing, damaged), with the reason."""
    skipped: int = 0
    """Records the journal says an earlier run already stored (or rejected)."""
    input_bytes: int = 0
    """Bytes of input read so far (for progress)."""
    seconds: float = 0.0
    revision_failures: dict[str, str] = field(default_factory=dict)
    failure: str | None = None
    """Why the run stopped before the end of its inputs (a full disk), if it did."""
    compression_failure: str | None = None
    """Why rotated logs were left pending (``mr compress`` finishes them), if they were."""
    interruption: KeyboardInterrupt | None = None
    """The Ctrl-C or SIGTERM that stopped the run, to be raised again once the summary is out."""


@dataclass
class BatchResult:
    """What a worker did with one batch; ``failure`` says why it stopped part-way, if it did."""

    stats: ConversionStats
    damaged: Counter
    rejected: list[tuple[str, str, str]]
    touched: set[str]
    revision_failures: dict[str, str]
    processed: int = 0
    """How many of the batch's records were got through (all, unless ``failure``)."""
    failure: str | None = None


# A work item: (where, uuid, submission date, fields from the record's path, data as bytes or JSON text)
Item = tuple[str, str, str, dict | None, Any]
# Where an item came from, for the journal: (the input's identity, the record's position in it)
Source = tuple[str, int]


def convert_inputs(inputs: Iterable[str], options: ConvertOptions,
                   on_progress: Callable[[RunSummary], None] | None = None,
                   journal: Journal | None = None) -> RunSummary:
    """Convert every input; always rotates and compresses what was written, even when the run stops early.

    With a ``journal``, records it lists are skipped, and every batch got through is added to it.
    """
    summary = RunSummary()
    started = time.time()
    touched: set[str] = set()
    lost_track = True  # of which logs the workers wrote, until every batch has reported
    rejected_file = open(options.rejected_path, "a", encoding="utf-8") if options.rejected_path else None
    try:
        with stop_gently() as stop:
            batches = _batches(inputs, summary, options.submission_date, journal)
            for sources, result in _run(batches, options, lambda: bool(stop or summary.failure)):
                _add(summary, result)
                if journal:
                    _record(journal, sources[:result.processed])
                touched.update(result.touched)
                if rejected_file:
                    _keep_rejected(rejected_file, result.rejected)
                if result.failure and not summary.failure:
                    summary.failure = result.failure
                    log.error("%s; stopping", result.failure)
                if on_progress:
                    on_progress(summary)
            summary.interruption = stop.interruption()
        lost_track = False
    except KeyboardInterrupt as e:  # a second Ctrl-C: stop at once
        summary.interruption = e
    except OSError as e:
        summary.failure = describe(e)
    except Exception as e:  # a worker died or a bug: still put away what was written
        log.error("conversion stopped by an unexpected error", exc_info=True)
        summary.failure = f"stopped by an unexpected error: {type(e).__name__}: {e}"
    finally:
        if rejected_file:
            rejected_file.close()
    if lost_track:
        touched.update(_active_logs_written_since(options.storage, started))
    _put_away(sorted(touched), options, summary)
    summary.seconds = time.time() - started
    return summary


def describe(error: OSError) -> str:
    """An OSError as one line that names its file: ``path: No space left on device``."""
    return f"{error.filename}: {error.strerror}" if error.filename else str(error)


def _add(summary: RunSummary, result: BatchResult) -> None:
    summary.stats.add(result.stats)
    summary.damaged.update(result.damaged)
    for name, reason in result.revision_failures.items():
        summary.revision_failures.setdefault(name, reason)


def _record(journal: Journal, sources: list[Source]) -> None:
    by_input: dict[str, list[int]] = {}
    for input_identity, position in sources:
        by_input.setdefault(input_identity, []).append(position)
    for input_identity, positions in by_input.items():
        journal.add(input_identity, positions)
    journal.save()


def _keep_rejected(rejected_file, rejected: list[tuple[str, str, str]]) -> None:
    try:
        rejected_file.writelines(f"{uuid}\t{reason}\t{text}\n" for uuid, reason, text in rejected)
        rejected_file.flush()
    except OSError as e:
        raise OSError(e.errno, e.strerror, rejected_file.name) from None


def _put_away(touched: list[str], options: ConvertOptions, summary: RunSummary) -> None:
    """Rotate and compress what was written; a failure here is reported, and ``mr compress`` finishes it."""
    try:
        for path in touched:
            rotate_log(path)
        compress_pending(options.storage, options.codec, options.workers)
    except OSError as e:
        summary.compression_failure = describe(e)
        log.error("%s; what is not compressed stays pending for mr compress", summary.compression_failure)


def _active_logs_written_since(storage: str, since: float) -> list[str]:
    """Active logs modified since ``since``: what workers wrote when their reports were lost (Ctrl-C, a
    worker killed). Rotating a log another writer is using is safe, so a few too many do no harm."""
    found = []
    for directory, _, files in os.walk(storage):
        for name in files:
            path = os.path.join(directory, name)
            try:
                if name.endswith(ACTIVE_SUFFIX) and os.stat(path).st_mtime >= since - 1:
                    found.append(path)
            except FileNotFoundError:
                pass
    return found


Batch = tuple[list[Item], list[Source]]


def _run(batches: Iterator[Batch], options: ConvertOptions,
         stopping: Callable[[], bool]) -> Iterator[tuple[list[Source], BatchResult]]:
    """Each batch's sources and result, in completion order; once ``stopping()``, no new batch is started
    and the ones in flight are waited for. Conversion always runs in worker processes, even just one,
    so that a Ctrl-C (which workers ignore) never lands in the middle of a record."""
    with ProcessPoolExecutor(options.workers, initializer=_start_worker, initargs=(options,)) as pool:
        in_flight: dict[Future, list[Source]] = {}
        for items, sources in batches:
            if stopping():
                break
            in_flight[pool.submit(_convert_batch, items)] = sources
            if len(in_flight) >= 2 * options.workers:
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                yield from ((in_flight.pop(f), f.result()) for f in done)
        for future, sources in in_flight.items():
            yield sources, future.result()


def _batches(inputs: Iterable[str], summary: RunSummary, submission_date: str | None,
             journal: Journal | None) -> Iterator[Batch]:
    items: list[Item] = []
    sources: list[Source] = []
    batch_bytes = 0
    for path in inputs:
        try:
            input_identity = identity(path)
            for position, item in _items(path, submission_date, summary):
                if journal and journal.is_done(input_identity, position):
                    summary.skipped += 1
                    continue
                items.append(item)
                sources.append((input_identity, position))
                batch_bytes += len(item[-1])
                if len(items) >= BATCH_SIZE or batch_bytes >= BATCH_BYTES:
                    yield items, sources
                    items, sources, batch_bytes = [], [], 0
        except (OSError, CorruptFileError, CodecError) as e:
            log.error("%s", e)
            summary.unreadable.append(str(e))
    if items:
        yield items, sources


def _items(path: str, submission_date: str | None, summary: RunSummary) -> Iterator[tuple[int, Item]]:
    """(position in the input, item) for every record that frames or splits cleanly and has a date."""
    with open(path, "rb") as f:
        head = f.read(1)
    done_before = summary.input_bytes
    if is_record_log(head):
        reader = RecordLogReader(path)
        for position, record in enumerate(reader):
            summary.input_bytes = done_before + record.offset
            date = submission_date or _date_of(record.timestamp_ms)
            if date is None:
                summary.damaged["bad timestamp"] += 1
                log.debug("%s@%d: timestamp %d is no date", path, record.offset, record.timestamp_ms)
                continue
            yield position, (f"{path}@{record.offset}", record.uuid, date, record.path_fields, record.data)
        summary.damaged.update(reader.stats.damaged)
    else:
        records = RecordReader(path, codec=codec_for_name(os.path.basename(path)) or PLAIN)
        for position, (uuid, text) in enumerate(records):
            summary.input_bytes = done_before + records.compressed_bytes
            yield position, (f"{path}:{records.lines}", uuid, submission_date, None, text)
        summary.damaged["malformed line"] += records.bad_lines
    summary.input_bytes = done_before + os.path.getsize(path)


def _date_of(timestamp_ms: int) -> str | None:
    """The UTC date of a record's timestamp as YYYYMMDD, or None if it is before 1970 or past 9999."""
    try:
        moment = datetime.fromtimestamp(timestamp_ms / 1000, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.strftime("%Y%m%d") if _EARLIEST <= moment < _LATEST else None


# -- in the worker processes -------------------------------------------------------

_worker: "_Worker | None" = None


class _Worker:
    def __init__(self, options: ConvertOptions):
        revisions = RevisionCache(options.cache_dir, options.url_template, repositories=options.repositories,
                                  fallback=options.fallback)
        self.converter = Converter(revisions, strict=options.strict)
        self.writer = LayoutWriter(options.storage, options.schema, max_log_size=options.max_log_size,
                                   version=2)
        self.schema = options.schema
        self.max_payload_size = options.max_payload_size
        self.keep_rejected = options.rejected_path is not None


def _start_worker(options: ConvertOptions) -> None:
    global _worker
    become_worker()  # Ctrl-C stops the main process, which lets the batches in flight finish
    _worker = _Worker(options)


def _convert_batch(batch: list[Item]) -> BatchResult:
    worker = _worker
    converter = worker.converter
    converter.stats = stats = ConversionStats()
    result = BatchResult(stats, Counter(), [], set(), {})
    for where, uuid, date, path_fields, data in batch:
        result.processed += 1
        try:
            payload = decode_payload(data, worker.max_payload_size)
        except DamagedRecord as e:
            result.damaged[e.reason] += 1
            log.debug("%s: %s", where, e)
            continue
        except PayloadTooLarge as e:
            stats.count_rejected("payload too large")
            log.debug("%s: %s", where, e)
            _keep(worker, result, uuid, "payload too large", None)
            continue
        try:
            converted = converter.convert(payload)
            info = dict(path_fields or {}, **converted["info"])
            worker.writer.write(uuid, converted, worker.schema.values_from(info, date))
        except Rejected as e:
            _keep(worker, result, uuid, e.reason, payload)
        except NameTooLong as e:
            stats.take_back_converted(rejected_for="path too long")
            log.debug("%s: %s", where, e)
            _keep(worker, result, uuid, "path too long", payload)
        except OSError as e:
            stats.take_back_converted()
            result.processed -= 1
            result.failure = f"storing {where}: {describe(e)}"
            break
    result.touched = worker.writer.touched
    result.revision_failures = converter.revisions.take_failures()
    return result


def _keep(worker: _Worker, result: BatchResult, uuid: str, reason: str, payload: Any) -> None:
    """Remember a rejected payload for ``--rejected`` (``null`` for one too large to keep)."""
    if worker.keep_rejected:
        result.rejected.append((uuid, reason, fastjson.dumps(payload).decode("utf-8")))
