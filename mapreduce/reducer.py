"""A reducer: merges its partition's sorted runs key by key, combining as it goes, and calls ``reduce``.

Memory holds one key's values at a time (fewer with ``combine``, which runs
every ``COMBINE_THRESHOLD`` values). Output goes to a run of
``(ordered key, text)`` so the coordinator can merge reducers by key.
"""

from __future__ import annotations

import glob
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

from .context import COMBINE_THRESHOLD, OutputContext, CombineContext
from .errors import WorkDirFailed
from .job import Job
from .lifecycle import Interrupted
from .mapper import job_traceback
from .keys import order_key
from .spill import DamagedRunError, grouped, merge_runs, write_run
from .streaming import Pipe, StreamingFailure, key_value_lines


@dataclass
class ReduceReport:
    keys: int = 0
    records: int = 0
    counters: Counter = field(default_factory=Counter)
    preamble: str = ""
    failure: tuple[str, str, str, str] | None = None
    """(function, where, error, job traceback) if the job's code raised."""
    work_dir_problem: str | None = None
    """Why the work dir could not take the partition's runs (full, failing), if it could not."""


def output_path(work_dir: str, partition: int) -> str:
    return os.path.join(work_dir, "out", f"r{partition:04d}.out")


def reduce_partition(job: Job, work_dir: str, spill_dir: str, partition: int,
                     reducer_cmd: str | None = None) -> ReduceReport:
    report = ReduceReport()
    runs = glob.glob(os.path.join(spill_dir, f"p{partition:04d}", "*.run"))
    lines: list[str] = []
    context = OutputContext(lines.append)
    path = output_path(work_dir, partition)
    os.makedirs(os.path.dirname(path), exist_ok=True)

    def outputs():
        for ordered, key, tagged in grouped(merge_runs(runs, os.path.dirname(path))):
            values = gather_values(job, key, (values for _, values in tagged))
            if job.reduce:
                _call("reduce", f"key {key!r}", lambda: job.reduce(key, values, context), job)
            else:
                for value in values:
                    context.write(key, value)
            report.keys += 1
            report.records += len(lines)
            yield ordered, "".join(lines)
            lines.clear()

    def external_outputs():
        merged = grouped(merge_runs(runs, os.path.dirname(path)))
        pairs = ((key, value) for _, key, tagged in merged for _, values in tagged for value in values)
        written = []
        for key, value in Pipe(reducer_cmd, key_value_lines(pairs), lambda: f"partition {partition}").pairs():
            written.append((order_key(key), f"{key}{context.field_separator}{value}{context.record_separator}"))
        written.sort(key=lambda entry: entry[0])  # stable: the command's order within a key
        report.keys = len({entry[0] for entry in written})
        report.records = len(written)
        return written

    try:
        if job.setup_reduce:
            _call("setup_reduce", "setup", lambda: job.setup_reduce(context), job)
        report.preamble = "".join(lines)
        lines.clear()
        write_run(path, external_outputs() if reducer_cmd else outputs())
    except ReduceFailed as failure:
        report.failure = failure.args
    except StreamingFailure as failure:
        report.failure = ("reducer command", *failure.args)
    except OSError as e:  # the job's own errors are ReduceFailed: this is the work dir's
        report.work_dir_problem = str(WorkDirFailed(work_dir, e))
    except DamagedRunError as e:
        report.work_dir_problem = str(e)
    report.counters = context.counters
    return report


def gather_values(job: Job, key: Any, value_lists: Iterable[list], final: bool = False) -> list:
    """A key's values in tag order, combined every COMBINE_THRESHOLD values if the job can (and at the
    end too if ``final``); ReduceFailed if ``combine`` raised."""
    values: list = []
    for chunk in value_lists:
        values.extend(chunk)
        if job.combine is not None and len(values) >= COMBINE_THRESHOLD:
            values = _combine(job, key, values)
    if final and job.combine is not None and len(values) > 1:
        values = _combine(job, key, values)
    return values


def _combine(job: Job, key: Any, values: list) -> list:
    capture = CombineContext()
    _call("combine", f"key {key!r}", lambda: job.combine(key, values, capture), job)
    return [value for _, value in capture.pairs]


class ReduceFailed(Exception):
    """(function, where, error, job traceback)."""


def _call(name: str, where: str, thunk, job: Job) -> None:
    try:
        thunk()
    except Interrupted:  # Ctrl-C or SIGTERM while reducing in the coordinator: a stop, not the job's error
        raise
    except BaseException as e:  # SystemExit and KeyboardInterrupt raised by the job's own code too
        raise ReduceFailed(name, where, f"{type(e).__name__}: {e}", job_traceback(e, job)) from None
