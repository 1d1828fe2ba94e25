"""``mr reduce``: the final reduce of partial results made by ``mr run --combine-only`` on several machines.

The partials' entries are merged in key order (and, within a key, in the
order one machine reading all the data would have used), combined again and
reduced; the output and its sidecar are written exactly as ``mr run`` writes
them.
"""

from __future__ import annotations

import argparse
import heapq
import logging
import os
import time
from typing import Iterator

from storage.commands import add_s3_arguments, existing_dir, s3_settings

from . import __version__
from .arguments import positive
from .destination import Destination, Protected
from .engine import RunResult, reduce_entries
from .errors import JobLoadError
from .job import Job, load_job
from .options import RunOptions
from .partial import Partial, check_compatible, filter_content, open_partial
from .reporting import finish, logs_from_workers, result_figures
from .workdir import work_dir_for
from .spill import Entry

log = logging.getLogger(__name__)


def add_command(commands: argparse._SubParsersAction) -> None:
    reduce = commands.add_parser(
        "reduce", help="merge partial results of several machines into the final output",
        description="Merge partial results (made by 'mr run --combine-only' on each machine) and write the "
                    "output exactly as 'mr run' over all the data would. Partials of another job (its source "
                    "hash), another filter or sample, and partials that read the same input files (a "
                    "partial given twice) are refused.",
        epilog="example: mr reduce jobs/channel_os.py host1.partial host2.partial --output out.tsv")
    reduce.add_argument("job", metavar="JOB.py", help="the job script the partials were made with")
    reduce.add_argument("partials", nargs="+", metavar="PARTIAL", help="partial result files")
    reduce.add_argument("-o", "--output", default="-", metavar="FILE",
                        help="output file, s3://BUCKET/KEY, or - for stdout (default)")
    reduce.add_argument("-r", "--num-reducers", type=positive, default=1, metavar="N",
                        help="reduce partitions (default: 1)")
    reduce.add_argument("-w", "--work-dir", type=existing_dir, metavar="DIR", help="where spill files go")
    reduce.add_argument("--reducer-cmd", metavar="CMD", help="an external reducer (see mr run --help)")
    add_s3_arguments(reduce)
    reduce.set_defaults(run=reduce_command)


def reduce_command(args: argparse.Namespace) -> int:
    job = load_job(args.job, require_map=False)
    partials = [open_partial(path) for path in args.partials]
    check_compatible(partials, job.source_hash)
    work_dir = work_dir_for(args.work_dir)
    protected = [Protected("the job script", job.path)] + [Protected("a partial result", p.path) for p in partials]
    destination = Destination.parse(args.output, work_dir, lambda: s3_settings(args), protected)
    options = RunOptions(num_mappers=os.cpu_count() or 1, num_reducers=args.num_reducers, work_dir=work_dir,
                         reducer_cmd=args.reducer_cmd)
    started = time.time()
    result, warnings = reduce_partials(job, partials, options, destination)
    destination.write_sidecar(describe_reduce(job, partials, result, warnings, started))
    destination.publish()
    return finish(result, warnings, [f"partials:     {len(partials)} ({', '.join(machines(partials))})"],
                  quiet=args.quiet)


def reduce_partials(job: Job, partials: list[Partial], options: RunOptions,
                    destination: Destination) -> tuple[RunResult, list[str]]:
    """Merge and reduce ``partials`` into ``destination``; the result counts what every machine read."""
    if not partials:
        raise JobLoadError("no partial results to reduce")
    with logs_from_workers():
        result = destination.write(lambda out: reduce_entries(job, _merged(partials), options, out))
    warnings = []
    for partial in partials:
        header = partial.header
        result.records += header["records"]
        result.bad_lines += header["bad_lines"]
        result.bad_records += header["bad_records"]
        result.errors += header["errors"]
        result.files += header["files"]
        result.compressed_bytes += header["compressed_bytes"]
        result.uncompressed_bytes += header["uncompressed_bytes"]
        result.counters.update(header["counters"])
        result.missing += [f"{header['machine']}:{path}" for path in header["missing_inputs"]]
        result.retried += [f"{header['machine']}:{path}" for path in header["retried_inputs"]]
        warnings += [f"{header['machine']}: {warning}" for warning in header["warnings"]]
    return result, warnings


def describe_reduce(job: Job, partials: list[Partial], result: RunResult, warnings: list[str], started: float) -> dict:
    first = partials[0].header
    return dict({
        "mr_version": __version__,
        "job": {"path": os.path.abspath(job.path), "name": os.path.basename(job.path), "sha256": job.source_hash},
        "filter": filter_content(first),
        "partials": [{"path": os.path.abspath(p.path), "machine": p.header["machine"], "records": p.header["records"],
                      "data_dir": p.header["data_dir"], "s3": p.header["s3"], "started": p.header["started"]}
                     for p in partials],
        "warnings": warnings,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
    }, **result_figures(result))


def machines(partials: list[Partial]) -> list[str]:
    return [p.header["machine"] for p in partials]


def _merged(partials: list[Partial]) -> Iterator[Entry]:
    """Every partial's entries in (key, tag) order; the partial's number makes equal tags distinct."""
    def numbered(number: int, partial: Partial) -> Iterator[Entry]:
        for ordered, tag, key, values in partial.entries():
            yield ordered, (tag, number), key, values
    return heapq.merge(*(numbered(number, partial) for number, partial in enumerate(partials)))
