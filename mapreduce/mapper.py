"""A map worker: takes files from the shared queue, calls the job's ``map`` on every ping, spills sorted runs.

Each file's pairs are combined and spilled on their own, tagged with the
file's index, so a file is the unit of retry (its runs are deleted if the
worker dies half-way) and the reducers' input does not depend on which worker
read which file. Messages to the coordinator are plain tuples.
"""

from __future__ import annotations

import cProfile
import gc
import glob
import logging
import os
import time
import traceback
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Iterator

from storage import CorruptFileError, RecordReader, StoredFile
from storage.allocator import keep_freed_memory

from .context import MapContext
from .errors import WorkDirFailed
from .plain import NotPlainData
from .job import Job
from .keys import order_key, partition_of
from .lifecycle import become_worker
from .options import RunOptions
from .spill import write_run
from .streaming import Pipe, StreamingFailure, key_value_lines

log = logging.getLogger(__name__)

BAD_RECORD_SAMPLES = 5
PROGRESS_EVERY = 1.0


@dataclass(frozen=True)
class MapTask:
    """A bundle of files mapped, combined and spilled together; ``index`` tags its output."""

    index: int
    files: tuple[StoredFile, ...]

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def name(self) -> str:
        if not self.files:
            return f"bundle {self.index} (no files left)"
        first = self.files[0].path
        return first if len(self.files) == 1 else f"{first} and {len(self.files) - 1} more files"


@dataclass(frozen=True)
class MapSettings:
    job: Job
    files: int
    """Bundles in the plan (finish_map output is tagged after them)."""
    spill_dir: str
    options: RunOptions


@dataclass
class BundleReport:
    """What mapping one bundle produced, sent to the coordinator when the bundle is done."""

    records: int = 0
    bad_lines: int = 0
    bad_records: int = 0
    errors: int = 0
    uncompressed_bytes: int = 0
    spilled_bytes: int = 0
    spilled_values: int = 0
    counters: Counter | None = None
    samples: list[str] | None = None
    corrupt: list[tuple[str, str]] | None = None
    """(path, error) of each damaged file in the bundle."""

    def add_reader(self, reader) -> None:
        """Count what one file's reader read."""
        self.records += reader.records
        self.bad_lines += reader.bad_lines
        self.uncompressed_bytes += reader.uncompressed_bytes

    def add(self, other: "BundleReport", max_samples: int) -> None:
        """Fold another report into this one: counts summed, counters merged, samples kept up to a limit."""
        for f in fields(BundleReport):
            if f.type == "int":
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        self.counters.update(other.counters or {})
        self.samples.extend((other.samples or [])[:max(0, max_samples - len(self.samples))])


def spill_path(spill_dir: str, partition: int, tag: tuple[int, int]) -> str:
    return os.path.join(spill_dir, f"p{partition:04d}", f"f{tag[0]:07d}-s{tag[1]:05d}.run")


def bundle_spills(spill_dir: str, index: int) -> list[str]:
    """Every run spilled for one bundle, in any partition."""
    return glob.glob(os.path.join(spill_dir, "p*", f"f{index:07d}-s*.run"))


def run_worker(worker_id: int, settings: MapSettings, tasks, results, slot) -> None:
    """The body of a map worker process; ``slot`` (shared memory) tells the coordinator which bundle it took."""
    become_worker()
    keep_freed_memory()
    profiler = cProfile.Profile() if settings.options.profile_dir else None
    if profiler:
        profiler.enable()
    worker = _Worker(worker_id, settings, results, slot)
    try:
        worker.run(tasks)
    except _JobFailed as failure:
        results.put(("failed", worker_id, *failure.args))
    except WorkDirFailed as failure:
        results.put(("work-dir-failed", worker_id, str(failure)))
    finally:
        if profiler:
            profiler.disable()
            profiler.dump_stats(os.path.join(settings.options.profile_dir, f"map-{worker_id}-{os.getpid()}.prof"))


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector while a bundle is mapped, and collect once afterwards.

    Parsed pings are thousands of fresh lists each; with the collector on, its
    passes over the growing buffer took a fifth of the aggregation's time.
    Cyclic garbage a job makes is still collected, once per bundle: everything
    the bundle allocated is in the young generations, so those are enough.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        gc.collect(1)


class _JobFailed(Exception):
    """Carries (function, where, error, job traceback) out of the worker."""


_STOPS_THE_WORKER = (_JobFailed, WorkDirFailed)
"""Raised from inside a job's call (a spill while ``map`` writes): passed on, never counted as the job's error."""


class _Worker:
    def __init__(self, worker_id: int, settings: MapSettings, results, slot):
        self.id = worker_id
        self.slot = slot
        self.settings = settings
        self.job = settings.job
        self.results = results
        self.errors = 0

    def run(self, tasks) -> None:
        job = self.job
        context = self._context()
        if job.setup_map:
            self._call("setup_map", "setup", job.setup_map, context)
        while (task := tasks.get()) is not None:
            self.slot.value = task.index
            with collector_paused():
                report = self._map_bundle(task)
            self.results.put(("done", self.id, task.index, report))
        if job.finish_map:
            self._call("finish_map", "the end of the worker", job.finish_map, context)
        spilled_bytes, spilled_values = self._spill(context, (self.settings.files + self.id, 0))
        report = BundleReport(counters=context.counters, spilled_bytes=spilled_bytes, spilled_values=spilled_values)
        self.results.put(("finished", self.id, report))

    def _map_bundle(self, task: MapTask) -> BundleReport:
        report = BundleReport(samples=[], corrupt=[])
        spills = [0]

        def spill_now() -> None:
            spilled_bytes, spilled_values = self._spill(context, (task.index, spills[0]))
            report.spilled_bytes += spilled_bytes
            report.spilled_values += spilled_values
            spills[0] += 1

        context = self._context(on_full=spill_now)
        if self.settings.options.mapper_cmd:
            self._map_externally(task, context, report)
        else:
            self._map_in_python(task, context, report)
        report.counters = context.counters
        spill_now()
        return report

    def _map_in_python(self, task: MapTask, context: MapContext, report: BundleReport) -> None:
        done_bytes = 0
        for stored in task.files:
            reader = _open_noting_damage(stored, report)
            if reader is not None:
                with _noting_damage(reader, report):
                    self._map_records(reader, context, report, done_bytes)
                log.info("map worker %d: %s: %d pings, %d bad lines", self.id, stored.path, reader.records,
                         reader.bad_lines)
            done_bytes += stored.size

    def _map_externally(self, task: MapTask, context: MapContext, report: BundleReport) -> None:
        """Feed the bundle's pings to the mapper command; its key<TAB>value lines go into the buffer."""
        current = [task.files[0].path]

        def lines():
            for stored in task.files:
                current[0] = stored.path
                dims = "/".join(stored.dimensions)
                reader = _open_noting_damage(stored, report)
                if reader is None:
                    continue
                with _noting_damage(reader, report):
                    for uuid, payload in reader:
                        yield f"{uuid}\t{dims}\t{payload}\n".encode("utf-8")

        try:
            for key, value in Pipe(self.settings.options.mapper_cmd, lines(), lambda: f"input {current[0]}").pairs():
                context.write(key, value)
        except StreamingFailure as failure:
            raise _JobFailed("mapper command", *failure.args) from None

    def _map_records(self, reader, context: MapContext, report: BundleReport, done_bytes: int) -> None:
        dims = list(reader.dimensions)
        map_function = self.job.map
        next_progress = time.monotonic() + PROGRESS_EVERY
        for uuid, payload in reader:
            try:
                map_function(uuid, dims, payload, context)
            except (ValueError, RecursionError) as e:  # bad data (JSON nested too deep too): count and skip
                report.bad_records += 1
                if len(report.samples) < BAD_RECORD_SAMPLES:
                    report.samples.append(f"{reader.path}:{reader.lines}: {type(e).__name__}: {e}")
            except _STOPS_THE_WORKER:
                raise
            except BaseException as e:  # SystemExit and KeyboardInterrupt too: workers ignore Ctrl-C
                self._job_error("map", f"{reader.path}:{reader.lines}", e, report)
            if reader.records % 256 == 0 and time.monotonic() > next_progress:
                self.results.put(("progress", self.id, report.records + reader.records,
                                  done_bytes + reader.compressed_bytes))
                next_progress = time.monotonic() + PROGRESS_EVERY

    def _context(self, on_full=None) -> MapContext:
        return MapContext(self.job.combine, self.settings.options.budget_bytes, on_full or (lambda: None))

    def _spill(self, context: MapContext, tag: tuple[int, int]) -> tuple[int, int]:
        """Combine what is buffered and write one sorted run per reducer; returns bytes and values written."""
        try:
            if self.settings.options.combiner_cmd:
                self._combine_externally(context, tag)
            context.combine_all()
        except StreamingFailure as failure:
            raise _JobFailed("combiner command", *failure.args) from None
        except BaseException as e:
            raise self._failure("combine", f"bundle {tag[0]}", e) from None
        spilled_values = context.values
        try:
            partitions: dict[int, list] = {}
            for key, values in context.items():
                ordered = order_key(key)
                partitions.setdefault(partition_of(ordered, self.settings.options.num_reducers), []).append(
                    (ordered, tag, key, values))
            context.clear()
            written = 0
            for partition, entries in partitions.items():
                entries.sort(key=lambda entry: entry[0])
                path = spill_path(self.settings.spill_dir, partition, tag)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                written += write_run(path, entries)
        except NotPlainData as e:  # nested inside a key or value: found only now, as the pairs are stored
            function = "finish_map" if tag[0] >= self.settings.files else "map"
            raise _JobFailed(function, f"the spill of bundle {tag[0]}", f"NotPlainData: {e}", "") from None
        except OSError as e:
            raise WorkDirFailed(self.settings.options.work_dir or self.settings.spill_dir, e) from None
        return written, spilled_values

    def _combine_externally(self, context: MapContext, tag: tuple[int, int]) -> None:
        """Replace the buffer by what the combiner command makes of it (fed in key order)."""
        items = sorted(context.items(), key=lambda item: order_key(item[0]))
        pairs = ((key, value) for key, values in items for value in values)
        context.clear()
        for key, value in Pipe(self.settings.options.combiner_cmd, key_value_lines(pairs),
                               lambda: f"the pairs of bundle {tag[0]}").pairs():
            context.write(key, value)

    def _call(self, name: str, where: str, function, context) -> None:
        try:
            function(context)
        except _STOPS_THE_WORKER:
            raise
        except BaseException as e:
            raise self._failure(name, where, e) from None

    def _job_error(self, function: str, where: str, error: Exception, report: BundleReport) -> None:
        self.errors += 1
        if self.errors > self.settings.options.max_errors:
            raise self._failure(function, where, error)
        report.errors += 1
        if len(report.samples) < BAD_RECORD_SAMPLES:
            report.samples.append(f"{where}: {function}() raised {type(error).__name__}: {error}")

    def _failure(self, function: str, where: str, error: Exception) -> _JobFailed:
        return _JobFailed(function, where, f"{type(error).__name__}: {error}", job_traceback(error, self.job))


def _open_noting_damage(stored: StoredFile, report: BundleReport) -> RecordReader | None:
    """A reader of ``stored``, or None (noted in ``report.corrupt``) if it cannot be opened: vanished since
    the plan, unreadable, or not what its name says."""
    try:
        return stored.open()
    except (CorruptFileError, OSError) as e:
        report.corrupt.append((stored.path, str(e) if isinstance(e, CorruptFileError)
                               else f"{stored.path}: cannot read it: {e.strerror or e}"))
        return None


@contextmanager
def _noting_damage(reader: RecordReader, report: BundleReport) -> Iterator[None]:
    """Damage found while reading is noted in ``report.corrupt``, not raised: the run then fails naming the
    file, or leaves it out with --allow-partial. What was read is counted either way."""
    try:
        yield
    except CorruptFileError as e:
        report.corrupt.append((reader.path, str(e)))
    except OSError as e:
        report.corrupt.append((reader.path, f"{reader.path}: reading failed after {reader.records} records: "
                                            f"{e.strerror or e}"))
    report.add_reader(reader)


def job_traceback(error: BaseException, job: Job) -> str:
    """The traceback of an exception, keeping only the job's own frames (not the engine's)."""
    engine = os.path.dirname(os.path.abspath(__file__))
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if not os.path.abspath(f.filename).startswith(engine + os.sep)]
    lines = traceback.format_list(frames) + traceback.format_exception_only(type(error), error)
    return "".join(lines).rstrip()

