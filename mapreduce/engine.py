"""Run a job: plan, map on every core, reduce each partition, merge the output in key order.

The coordinator (this module) owns the processes. Map workers take files from
one queue; a worker that dies has its file's partial runs deleted and the file
retried once on a fresh worker. Reducers run after every file is mapped. The
output is written to a temporary name and renamed only when the whole job has
succeeded.
"""

from __future__ import annotations

import glob
import heapq
import itertools
import logging
import multiprocessing
import os
import queue
import signal
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, TextIO

from .errors import JobCodeError, JobError, WorkDirFailed
from .job import Job
from .keys import partition_of
from .lifecycle import become_worker
from .mapper import BundleReport, MapSettings, bundle_spills, run_worker, spill_path
from .options import RunOptions
from .workdir import scratch_dir
from .plan import Plan
from .reducer import ReduceFailed, ReduceReport, gather_values, output_path, reduce_partition
from .spill import Entry, RunWriter, grouped, merge_runs, read_run

if TYPE_CHECKING:
    from .fetch import Fetcher  # imports boto3: only runs that read S3 pay for it

log = logging.getLogger(__name__)

REPORTED_SAMPLES = 10
POLL_SECONDS = 0.2


@dataclass
class RunResult(BundleReport):
    """Every bundle's report added up, and what only the whole run knows."""

    counters: Counter = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)
    files: int = 0
    compressed_bytes: int = 0
    output_records: int = 0
    missing: list[str] = field(default_factory=list)
    """Damaged or undownloadable input files left out (only with --allow-partial)."""
    retried: list[str] = field(default_factory=list)
    map_seconds: float = 0.0
    reduce_seconds: float = 0.0
    seconds: float = 0.0

    def add_bundle(self, report: BundleReport, size: int = 0, files: int = 0) -> None:
        self.add(report, REPORTED_SAMPLES)
        self.files += files
        self.compressed_bytes += size


Progress = Callable[[RunResult, int], None]
"""Called with the result so far and the bytes of input read so far."""


def run_job(job: Job, plan: Plan, options: RunOptions, output: TextIO,
            on_progress: Progress | None = None, fetcher: Fetcher | None = None) -> RunResult:
    """Run ``job`` over ``plan`` and write the output text to ``output``; JobError if it fails.

    With a ``fetcher``, bundles reach the workers as their files are downloaded.
    """
    started = time.monotonic()
    result = RunResult()
    with _scratch(options) as work_dir:
        _MapPhase(job, plan, options, _spill_dir(work_dir), result, on_progress, fetcher).run()
        result.map_seconds = time.monotonic() - started
        _reduce_to_output(job, work_dir, options, output, result)
    result.seconds = time.monotonic() - started
    return result


def combine_job(job: Job, plan: Plan, options: RunOptions, write: Callable[[RunResult, Iterator[Entry]], int],
                machine: str, on_progress: Progress | None = None, fetcher: Fetcher | None = None) -> RunResult:
    """Map and combine only (no reduce): ``write`` receives the entries of a partial result.

    Each key's values are combined into one entry if the job has ``combine``
    (else its entries pass as they are). Tags name the layout path of the
    bundle's first file instead of the bundle's number, so partials of
    different machines merge into the order one machine would have used.
    ``write`` gets the map phase's result too (for a header), and returns the
    number of entries it wrote (the output records).
    """
    started = time.monotonic()
    result = RunResult()
    with _scratch(options) as work_dir:
        spill_dir = _spill_dir(work_dir)
        _MapPhase(job, plan, options, spill_dir, result, on_progress, fetcher).run()
        result.map_seconds = time.monotonic() - started
        positions = {task.index: task.files[0].layout_order() for task in plan.tasks if task.files}
        runs = glob.glob(os.path.join(spill_dir, "p*", "*.run"))
        retag = _Retag(positions, machine)
        result.output_records = write(result, combined_entries(job, grouped(merge_runs(runs, work_dir)), retag))
        result.reduce_seconds = time.monotonic() - started - result.map_seconds
    result.seconds = time.monotonic() - started
    return result


def reduce_entries(job: Job, entries: Iterator[Entry], options: RunOptions, output: TextIO) -> RunResult:
    """The final reduce of partial results: spread over the reducers as mappers would, then reduced."""
    started = time.monotonic()
    result = RunResult()
    with _scratch(options) as work_dir:
        spill_dir = _spill_dir(work_dir)
        writers: dict[int, RunWriter] = {}
        for entry in entries:
            partition = partition_of(entry[0], options.num_reducers)
            try:
                if partition not in writers:
                    os.makedirs(os.path.join(spill_dir, f"p{partition:04d}"))
                    writers[partition] = RunWriter(spill_path(spill_dir, partition, (0, 0)))
                writers[partition].add(entry)
            except OSError as e:
                raise WorkDirFailed(work_dir, e) from None
        try:
            for writer in writers.values():
                writer.close()
        except OSError as e:
            raise WorkDirFailed(work_dir, e) from None
        result.map_seconds = time.monotonic() - started
        _reduce_to_output(job, work_dir, options, output, result)
    result.seconds = time.monotonic() - started
    return result


def combined_entries(job: Job, groups, retag: Callable[[tuple], tuple]) -> Iterator[Entry]:
    """Per key: one entry of combined values (jobs with ``combine``), or every entry, retagged."""
    for ordered, key, value_lists in groups:
        if job.combine is None:
            for tag, values in value_lists:
                yield ordered, retag(tag), key, values
            continue
        first_tag, first_values = next(value_lists)
        rest = (values for _, values in value_lists)
        try:
            values = gather_values(job, key, itertools.chain([first_values], rest), final=True)
        except ReduceFailed as failure:
            raise JobCodeError(*failure.args) from None
        yield ordered, retag(first_tag), key, values


class _Retag:
    """Bundle number -> layout position of its first file; a worker's finish_map output sorts after all files."""

    def __init__(self, positions: dict[int, tuple[str, ...]], machine: str):
        self.positions = positions
        self.machine = machine

    def __call__(self, tag: tuple[int, int]) -> tuple:
        index, spill = tag
        if index in self.positions:
            return self.positions[index], spill
        return (FINISH_MAP_POSITION, self.machine), index


FINISH_MAP_POSITION = "\U0010ffff"
"""Sorts after every layout path part."""


def _scratch(options: RunOptions):
    return scratch_dir(options.work_dir or tempfile.gettempdir())


def _spill_dir(work_dir: str) -> str:
    return os.path.join(work_dir, "spill")


def _reduce_to_output(job: Job, work_dir: str, options: RunOptions, output: TextIO, result: RunResult) -> None:
    started = time.monotonic()
    reports = _reduce_all(job, work_dir, _spill_dir(work_dir), options)
    for report in reports:
        result.counters.update(report.counters)
        result.output_records += report.records
    output.write(reports[0].preamble)
    outputs = [read_run(output_path(work_dir, r)) for r in range(len(reports))]
    for _, text in heapq.merge(*outputs, key=lambda entry: entry[0]):
        output.write(text)
    result.reduce_seconds = time.monotonic() - started


class _MapPhase:
    def __init__(self, job: Job, plan: Plan, options: RunOptions, spill_dir: str, result: RunResult,
                 on_progress: Progress | None, fetcher: Fetcher | None):
        self.plan = plan
        self.fetcher = fetcher
        self.options = options
        self.result = result
        self.on_progress = on_progress
        self.settings = MapSettings(job, len(plan.tasks), spill_dir, options)
        self.context = multiprocessing.get_context("fork")
        self.tasks = self.context.Queue()
        self.results = self.context.Queue()
        self.by_index = {task.index: task for task in plan.tasks}
        self.workers: dict[int, multiprocessing.Process] = {}
        self.slots: dict[int, Any] = {}
        """Per worker, shared memory holding the bundle it took last (-1: none yet). Written before the
        worker reads a byte of it, so a worker killed at any moment never leaves its bundle unknown."""
        self.in_flight: dict[int, int] = {}
        self.attempts: Counter = Counter()
        self.done: set[int] = set()
        self.finished: set[int] = set()
        self.done_bytes = 0
        self.stopping = False

    def run(self) -> None:
        count = max(1, min(self.options.num_mappers, len(self.plan.tasks) or 1))
        try:
            for _ in range(count):
                self._start_worker()
            self._feed()
            if not self.plan.tasks:
                self._stop_when_done()
            while len(self.finished) < len(self.workers):
                try:
                    message = self.results.get(timeout=POLL_SECONDS)
                except queue.Empty:
                    self._check_workers()
                    self._progress()
                    continue
                self._handle(message)
        except BaseException:
            self._terminate()
            raise
        finally:
            if self.fetcher is not None:
                self.fetcher.stop()
        for process in self.workers.values():
            process.join()

    def _feed(self) -> None:
        if self.fetcher is None:
            for task in self.plan.tasks:
                self.tasks.put(task)
            return
        self.fetcher.start(self.plan.tasks, self.tasks.put,
                           lambda path, reason: self.results.put(("fetch-failed", None, path, reason)))

    def _start_worker(self) -> None:
        worker_id = len(self.workers)
        self.slots[worker_id] = self.context.Value("q", -1, lock=False)
        process = self.context.Process(target=run_worker, name=f"mr-map-{worker_id}", daemon=True,
                                       args=(worker_id, self.settings, self.tasks, self.results,
                                             self.slots[worker_id]))
        process.start()
        self.workers[worker_id] = process

    def _handle(self, message: tuple) -> None:
        kind, worker = message[0], message[1]
        if kind == "progress":
            self.in_flight[worker] = message[3]
            self._progress()
        elif kind == "done":
            self._bundle_done(worker, message[2], message[3])
        elif kind == "finished":
            self.result.add_bundle(message[2])
            self.finished.add(worker)
        elif kind == "fetch-failed":
            self._input_lost(*message[2:])
        elif kind == "failed":
            function, where, error, traceback = message[2:]
            raise JobCodeError(function, where, error, traceback)
        elif kind == "work-dir-failed":
            raise JobError(message[2])

    def _bundle_done(self, worker: int, index: int, report: BundleReport) -> None:
        task = self.by_index[index]
        self.in_flight.pop(worker, None)
        for path, error in report.corrupt or ():
            self._input_lost(path, error)
        self.result.add_bundle(report, task.size, len(task.files))
        self.done.add(index)
        self.done_bytes += task.size
        self._progress()
        if len(self.done) == len(self.plan.tasks):
            self._stop_when_done()

    def _input_lost(self, path: str, reason: str) -> None:
        """A damaged or undownloadable input: the job fails, unless --allow-partial."""
        if not self.options.allow_partial:
            raise JobError(f"{reason}; the job's result would be incomplete. Rerun with --allow-partial "
                           "to accept that")
        log.warning("%s", reason)
        self.result.missing.append(path)

    def _stop_when_done(self) -> None:
        if not self.stopping:
            self.stopping = True
            for _ in self.workers:
                self.tasks.put(None)

    def _check_workers(self) -> None:
        for worker, process in list(self.workers.items()):
            if worker in self.finished or process.is_alive():
                continue
            self._drain()  # it may have reported before dying
            if worker in self.finished:
                continue
            self._worker_died(worker, process)

    def _drain(self) -> None:
        while True:
            try:
                self._handle(self.results.get_nowait())
            except queue.Empty:
                return

    def _worker_died(self, worker: int, process: multiprocessing.Process) -> None:
        how = _describe_exit(process.exitcode)
        index = self.slots[worker].value
        self.finished.add(worker)
        self.in_flight.pop(worker, None)
        if index < 0 or index in self.done:
            if index < 0 and not self.stopping:
                raise JobError(f"map worker {worker} (pid {process.pid}) {how} before reading any file")
            log.error("map worker %d (pid %d) %s between bundles; its finish_map output is lost",
                      worker, process.pid, how)
            if not self.stopping:
                self._start_worker()
            return
        task = self.by_index[index]
        self.attempts[index] += 1
        if self.attempts[index] > 1:
            raise JobError(f"map worker {worker} (pid {process.pid}) {how} while reading {task.name}, "
                           "for the second time; giving up")
        log.error("map worker %d (pid %d) %s while reading %s; retrying them on a new worker",
                  worker, process.pid, how, task.name)
        self.result.retried.extend(f.path for f in task.files)
        for path in bundle_spills(self.settings.spill_dir, index):
            os.remove(path)
        self.tasks.put(task)
        self._start_worker()
        if self.stopping:
            self.tasks.put(None)

    def _progress(self) -> None:
        if self.on_progress:
            self.on_progress(self.result, self.done_bytes + sum(self.in_flight.values()))

    def _terminate(self) -> None:
        for process in self.workers.values():
            if process.is_alive():
                process.terminate()
        for process in self.workers.values():
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()


def _reduce_all(job: Job, work_dir: str, spill_dir: str, options: RunOptions) -> list[ReduceReport]:
    """Reduce every partition, on up to num_mappers processes; JobCodeError if the job's code raised."""
    partitions = list(range(options.num_reducers))

    def reduce(partition: int) -> ReduceReport:
        return reduce_partition(job, work_dir, spill_dir, partition, options.reducer_cmd)

    if len(partitions) == 1:
        reports = [reduce(0)]
    else:
        reports = _in_processes(reduce, partitions, max(1, options.num_mappers))
    for report in reports:
        if report.failure:
            raise JobCodeError(*report.failure)
        if report.work_dir_problem:
            raise JobError(report.work_dir_problem)
    return reports


def _in_processes(function, arguments: list, parallel: int) -> list:
    """``[function(a) for a in arguments]`` on forked processes, ``parallel`` at a time, in order."""
    context = multiprocessing.get_context("fork")
    results_queue = context.Queue()
    results: dict[int, object] = {}
    running: dict[int, multiprocessing.Process] = {}
    pending = list(enumerate(arguments))

    def target(i, argument):
        become_worker()
        results_queue.put((i, function(argument)))

    try:
        while pending or running:
            while pending and len(running) < parallel:
                i, argument = pending.pop(0)
                running[i] = context.Process(target=target, args=(i, argument), daemon=True)
                running[i].start()
            try:
                i, value = results_queue.get(timeout=POLL_SECONDS)
                results[i] = value
                running.pop(i).join()
            except queue.Empty:
                dead = [i for i, process in running.items() if not process.is_alive()]
                if dead and results_queue.empty():  # a finished process has put its result before exiting
                    process = running[dead[0]]
                    raise JobError(f"reducer {dead[0]} (pid {process.pid}) {_describe_exit(process.exitcode)}")
    except BaseException:
        for process in running.values():
            process.kill()
        raise
    return [results[i] for i in range(len(arguments))]


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with status {exitcode}"

