"""Run a job: plan, map on every core, reduce each partition, merge the output in key order.

The coordinator (this module) owns the processes. Map workers take files from
one queue; a worker that dies has its file's partial runs deleted and the file
retried once on a fresh worker. Reducers run after every file is mapped. The
output is written to a temporary name and renamed only when the whole job has
succeeded.
"""

from __future__ import annotations

import heapq
import logging
import multiprocessing
import os
import queue
import shutil
import signal
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, TextIO

from .errors import JobCodeError, JobError
from .job import Job
from .mapper import BundleReport, MapSettings, bundle_spills, run_worker
from .options import RunOptions
from .plan import Plan
from .reducer import ReduceReport, output_path, reduce_partition
from .spill import read_run

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
    work_dir = tempfile.mkdtemp(prefix="mr-", dir=options.work_dir)
    try:
        spill_dir = os.path.join(work_dir, "spill")
        _MapPhase(job, plan, options, spill_dir, result, on_progress, fetcher).run()
        result.map_seconds = time.monotonic() - started
        reports = _reduce_all(job, work_dir, spill_dir, options)
        result.reduce_seconds = time.monotonic() - started - result.map_seconds
        for report in reports:
            result.counters.update(report.counters)
            result.output_records += report.records
        output.write(reports[0].preamble)
        outputs = [read_run(output_path(work_dir, r)) for r in range(len(reports))]
        for _, text in heapq.merge(*outputs, key=lambda entry: entry[0]):
            output.write(text)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    result.seconds = time.monotonic() - started
    return result


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
        self.current: dict[int, int] = {}
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
        process = self.context.Process(target=run_worker, name=f"mr-map-{worker_id}",
                                       args=(worker_id, self.settings, self.tasks, self.results), daemon=True)
        process.start()
        self.workers[worker_id] = process

    def _handle(self, message: tuple) -> None:
        kind, worker = message[0], message[1]
        if kind == "start":
            self.current[worker] = message[2]
        elif kind == "progress":
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

    def _bundle_done(self, worker: int, index: int, report: BundleReport) -> None:
        task = self.by_index[index]
        self.current.pop(worker, None)
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
        index = self.current.pop(worker, None)
        self.finished.add(worker)
        if index is None:
            if self.stopping:
                log.error("map worker %d (pid %d) %s after its last file; its finish_map output is lost",
                          worker, process.pid, how)
                return
            raise JobError(f"map worker {worker} (pid {process.pid}) {how} before reading any file")
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
        self.in_flight.pop(worker, None)
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
    return reports


def _in_processes(function, arguments: list, parallel: int) -> list:
    """``[function(a) for a in arguments]`` on forked processes, ``parallel`` at a time, in order."""
    context = multiprocessing.get_context("fork")
    results_queue = context.Queue()
    results: dict[int, object] = {}
    running: dict[int, multiprocessing.Process] = {}
    pending = list(enumerate(arguments))

    def target(i, argument):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
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

