"""What the job commands share around the engine: worker logs, the output file, the sidecar, the summary."""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from typing import Iterator, Sequence

import multiprocessing_logging

from storage import StoredFile
from storage.commands import format_bytes

from .engine import RunResult

log = logging.getLogger(__name__)

EXIT_PARTIAL = 3
"""The job succeeded, but on partial data (--allow-partial and a damaged input, a missing host, ...)."""


@contextmanager
def logs_from_workers() -> Iterator[None]:
    """Route worker processes' log records through this process's handlers while the job runs.

    Afterwards every queued record has been emitted and the original handlers
    are back, so nothing a worker logged is lost and later messages are
    written directly.
    """
    root = logging.getLogger()
    originals = list(root.handlers)
    relays = [_Relay(f"mr-log-relay-{number}", handler) for number, handler in enumerate(originals)]
    root.handlers = relays
    try:
        yield
    finally:
        root.handlers = originals
        for relay in relays:
            relay.close()


_WAKE_UP = "mr-relay-wake-up"


class _Relay(multiprocessing_logging.MultiProcessingHandler):
    """multiprocessing-logging's relay, closed at once: its receiving thread polls every 0.2 s for
    the end, which every run paid; a wake-up record (emitted as nothing) ends that wait."""

    def __init__(self, name: str, target: logging.Handler):
        super().__init__(name, sub_handler=_SkipWakeUp(target))

    def close(self) -> None:
        if not self._is_closed:
            self._is_closed = True
            self.queue.put_nowait(logging.makeLogRecord({"msg": _WAKE_UP}))
            self._receive_thread.join(5.0)  # records queued before the wake-up have all been emitted
        logging.Handler.close(self)


class _SkipWakeUp(logging.Handler):
    def __init__(self, target: logging.Handler):
        super().__init__(target.level)
        self.target = target
        self.formatter = target.formatter
        self.filters = target.filters

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg != _WAKE_UP:
            self.target.emit(record)


def result_figures(result: RunResult) -> dict:
    """The run's counts and timings, for a sidecar or a partial's header."""
    return {
        "counters": dict(sorted(result.counters.items())),
        "records": result.records, "bad_lines": result.bad_lines, "bad_records": result.bad_records,
        "errors": result.errors, "output_records": result.output_records, "shuffle_bytes": result.spilled_bytes,
        "shuffle_values": result.spilled_values, "files": result.files, "compressed_bytes": result.compressed_bytes,
        "uncompressed_bytes": result.uncompressed_bytes,
        "missing_inputs": result.missing, "retried_inputs": result.retried,
        "seconds": {"total": round(result.seconds, 3), "map": round(result.map_seconds, 3),
                    "reduce": round(result.reduce_seconds, 3)},
    }


def render_summary(result: RunResult, sources: Sequence[str] = ()) -> str:
    rate = result.records / result.seconds if result.seconds else 0
    lines = [
        f"files:        {result.files:,} ({format_bytes(result.compressed_bytes)} compressed, "
        f"{format_bytes(result.uncompressed_bytes)} uncompressed)",
        f"pings:        {result.records:,} ({rate:,.0f}/s)",
        f"bad lines:    {result.bad_lines:,}",
        f"bad records:  {result.bad_records:,}",
        f"errors:       {result.errors:,}",
        f"output:       {result.output_records:,} records",
        f"time:         {result.seconds:.1f} s (map {result.map_seconds:.1f} s, reduce {result.reduce_seconds:.1f} s)",
    ]
    lines += sources
    lines += [f"counter {name}: {value:,}" for name, value in sorted(result.counters.items())]
    lines += [f"MISSING input: {path}" for path in result.missing]
    lines += [f"retried input (worker died): {path}" for path in result.retried]
    return "\n".join(lines)


def finish(result: RunResult, warnings: Sequence[str], sources: Sequence[str] = (), max_errors: int = 0,
           quiet: bool = False) -> int:
    """Print the summary (unless ``quiet``) and the warnings; the exit status (EXIT_PARTIAL if anything is
    missing)."""
    if not quiet:
        sys.stderr.write(render_summary(result, sources) + "\n")
    if result.errors:
        log.warning("%d records made map() raise and were skipped (--max-errors %d)", result.errors, max_errors)
    for sample in result.samples:
        log.warning("%s", sample)
    if result.missing or warnings:
        log.warning("the result is INCOMPLETE: %s", "; ".join(
            ([f"{len(result.missing)} inputs were left out"] if result.missing else []) + list(warnings)))
        return EXIT_PARTIAL
    return 0


def delete_inputs(files: Sequence[StoredFile], missing: Sequence[str], under: str) -> int:
    """-X, once the job has succeeded and its output is in place: delete the inputs under ``under`` that
    were read whole (not those left out as damaged or undownloadable). Returns how many were deleted."""
    left_out = set(missing)
    root = os.path.realpath(under)
    deleted = 0
    for stored in files:
        if stored.path in left_out or not os.path.realpath(stored.path).startswith(root + os.sep):
            continue
        try:
            os.remove(stored.path)
            deleted += 1
        except FileNotFoundError:
            pass
    log.info("deleted %d input files (-X)", deleted)
    return deleted
