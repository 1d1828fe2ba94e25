"""``mr run``: run a job script over stored pings, with the original telemetry-server flags."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shlex
import shutil
import socket
import time

from storage.commands import add_s3_arguments, existing_dir, filter_file, format_bytes, s3_settings

from . import __version__, cluster_commands, reduce_command
from .arguments import fraction, non_negative, positive
from .destination import Destination, Protected
from .engine import RunResult, combine_job, run_job
from .errors import JobLoadError
from .inputs import Inputs, local_inputs
from .job import Job, load_job
from .options import RunOptions
from .partial import write_partial
from .plan import BUNDLE_BYTES, describe, make_plan
from .progress import Progress
from .reporting import delete_inputs, finish, logs_from_workers, result_figures
from .workdir import trusted_dir, work_dir_for

log = logging.getLogger(__name__)


def add_commands(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser(
        "run", help="run a job script over stored pings",
        description="Run a job script (map, and optionally combine/reduce) over the stored files a filter "
                    "selects, on every core. Output is sorted by key and the same for any number of "
                    "mappers and reducers; it is written to a temporary name and renamed when the job "
                    "succeeds, with a provenance sidecar <output>.meta.json.",
        epilog="example: mr run jobs/osdistribution.py --data-dir data --input-filter nightly.json "
               "--output out.tsv")
    run.add_argument("job", metavar="JOB.py", nargs="?",
                     help="the job script (optional when --mapper-cmd does the mapping)")
    run.add_argument("-d", "--data-dir", type=existing_dir, metavar="DIR",
                     help="root of a local storage layout (with --bucket: files not yet uploaded)")
    run.add_argument("-f", "--input-filter", type=filter_file, metavar="FILE",
                     help="a schema-format filter (default: every file)")
    run.add_argument("-o", "--output", default="-", metavar="FILE",
                     help="output file, s3://BUCKET/KEY (uploaded when the job succeeds), or - for stdout (default)")
    run.add_argument("-m", "--num-mappers", type=positive, default=os.cpu_count() or 1, metavar="N",
                     help="map processes (default: number of cores)")
    run.add_argument("-r", "--num-reducers", type=positive, default=1, metavar="N",
                     help="reduce partitions (default: 1)")
    run.add_argument("-w", "--work-dir", type=existing_dir, metavar="DIR",
                     help="spill files, and the S3 cache in DIR/cache, which outlives the job "
                          "(default: mr-<uid> in the system temporary directory)")
    run.add_argument("-X", "--delete-data", action="store_true",
                     help="delete the input files once the job has succeeded and its output is in place (with "
                          "--allow-partial, only those read whole): with --bucket, only the downloaded copies "
                          "in the cache (never --data-dir's files)")
    run.add_argument("-p", "--profile", action="store_true",
                     help="profile every map worker with cProfile; .prof files go to the work dir")
    run.add_argument("-v", "--verbose", action="count", default=0, dest="command_verbose",
                     help="more detail: per-file progress (repeat for debug)")
    run.add_argument("-q", "--quiet", action="store_true", dest="command_quiet",
                     help="only errors: no progress, no summary")
    run.add_argument("--memory", type=positive, default=512, metavar="MB",
                     help="memory budget per map worker for buffered pairs before spilling (default: 512)")
    run.add_argument("--max-errors", type=non_negative, default=0, metavar="N",
                     help="let up to N records make map() raise (not ValueError) and still succeed")
    run.add_argument("--allow-partial", action="store_true",
                     help="leave out damaged input files instead of failing (exit status 3)")
    run.add_argument("--sample", type=fraction, metavar="FRACTION",
                     help="run on a stable sample of the files (the same each time, per channel and date)")
    run.add_argument("--dry-run", action="store_true", help="print what would be read and how, then stop")
    run.add_argument("--combine-only", action="store_true",
                     help="map and combine, no reduce: write a partial result (--output FILE) for 'mr reduce' "
                          "to merge with other machines' partials")
    s3 = run.add_argument_group(
        "reading from S3", "The bucket holds the storage layout under PREFIX. Only the prefixes the filter allows "
        "are listed; objects are downloaded once into the cache, and mapping starts as they arrive.")
    s3.add_argument("-b", "--bucket", metavar="BUCKET", help="read the layout from this S3 bucket")
    s3.add_argument("--prefix", default="", metavar="PREFIX", help="where the layout starts in the bucket")
    s3.add_argument("-l", "--local-only", action="store_true",
                    help="do not contact S3: read the cache of --bucket (and --data-dir); warns if the cache "
                         "may not hold everything the filter selects")
    s3.add_argument("--strict", action="store_true",
                    help="with --local-only: refuse, rather than warn, when the cache may be incomplete")
    s3.add_argument("--download-threads", type=positive, default=8, metavar="N",
                    help="parallel downloads (default: 8)")
    add_s3_arguments(s3)
    streaming = run.add_argument_group(
        "external executables", "Run programs in any language in place of the job's functions (see the "
        "README for the line protocol). A job may mix them with Python functions.")
    streaming.add_argument("--mapper-cmd", metavar="CMD",
                           help="reads uuid<TAB>dims<TAB>json lines, writes key<TAB>value lines")
    streaming.add_argument("--combiner-cmd", metavar="CMD", help="key<TAB>value lines in, key<TAB>value lines out")
    streaming.add_argument("--reducer-cmd", metavar="CMD", help="key<TAB>value lines in, key<TAB>value lines out")
    run.set_defaults(run=run_command)
    reduce_command.add_command(commands)
    cluster_commands.add_command(commands)


def run_command(args: argparse.Namespace) -> int:
    job = _load(args)
    work_dir = work_dir_for(args.work_dir)
    if args.combine_only and (args.output == "-" or args.output.startswith("s3://")):
        raise JobLoadError("--combine-only writes a partial result file: give --output FILE")
    cache_dir = os.path.join(work_dir, "cache")
    destination = Destination.parse(args.output, work_dir, lambda: s3_settings(args),
                                    protected=_inputs_of(args, job, cache_dir),
                                    input_prefix=(args.bucket, args.prefix) if args.bucket else None)
    inputs = _gather(args, cache_dir)
    # A partial of a job without combine carries raw values, ordered by the bundle they came from: with a
    # bundle per file, they merge with other machines' into the order one machine would have read them in.
    per_file = args.combine_only and job.combine is None
    plan = make_plan(inputs.files, args.input_filter, args.sample, bundle_bytes=0 if per_file else BUNDLE_BYTES)
    if args.dry_run:
        print(describe(plan, args.num_mappers))
        return 0
    if not plan.tasks:
        log.warning("the filter selects no files; the output is empty")
    options = RunOptions(num_mappers=args.num_mappers, num_reducers=args.num_reducers, work_dir=work_dir,
                         budget_bytes=args.memory << 20, max_errors=args.max_errors,
                         allow_partial=args.allow_partial, profile_dir=work_dir if args.profile else None,
                         mapper_cmd=args.mapper_cmd, combiner_cmd=args.combiner_cmd, reducer_cmd=args.reducer_cmd)
    fetcher = inputs.fetcher
    progress = Progress("map", total_bytes=plan.total_bytes)
    on_progress = lambda r, done: progress.update(r.records, done, _download_note(fetcher))  # noqa: E731
    started = time.time()
    with logs_from_workers():
        try:
            if args.combine_only:
                def write(result: RunResult, entries) -> int:
                    header = dict(_describe_run(args, job, plan, inputs, started), **result_figures(result),
                                  machine=socket.gethostname(), combined=job.combine is not None)
                    return write_partial(args.output, header, entries)
                result = combine_job(job, plan, options, write, socket.gethostname(), on_progress, fetcher)
            else:
                result = destination.write(lambda out: run_job(job, plan, options, out, on_progress, fetcher))
        finally:
            progress.finish()
    if not args.combine_only:
        destination.write_sidecar(dict(_describe_run(args, job, plan, inputs, started), **result_figures(result)))
    destination.publish()
    if args.delete_data:  # only now: the job succeeded and its output is in place
        delete_inputs(plan.files, result.missing, _deletable(args, cache_dir))
    sources = inputs.describe() + ([plan.sample.describe()] if plan.sample else [])
    return finish(result, inputs.warnings, sources, args.max_errors, quiet=args.quiet)


def _inputs_of(args: argparse.Namespace, job: Job, cache_dir: str) -> list[Protected]:
    """What the output must never overwrite or land in: the job, the filter, the data dir, the cache."""
    protected = [Protected("the S3 cache", cache_dir)]
    if args.data_dir:
        protected.append(Protected("the data dir", args.data_dir))
    if args.job:
        protected.append(Protected("the job script", job.path))
    if args.input_filter:
        protected.append(Protected("the input filter", args.input_filter.source))
    return protected


def _gather(args: argparse.Namespace, cache_dir: str) -> Inputs:
    """The run's input files, local and (with --bucket) from S3 through the cache."""
    if not args.bucket:
        if args.data_dir is None:
            raise JobLoadError("nothing to read: give --data-dir DIR or --bucket BUCKET")
        if args.strict:
            raise JobLoadError("--strict checks the S3 cache: it needs --bucket and --local-only")
        return local_inputs(args.data_dir, args.input_filter)
    from storage.cache import Cache  # boto3 takes 0.2 s to import: only for runs that use S3

    from .s3inputs import S3Source, cached_inputs, s3_inputs
    cache = Cache(trusted_dir(cache_dir, "the S3 cache"))
    source = S3Source(args.bucket, args.prefix, cache, s3_settings(args), args.download_threads)
    if args.local_only:
        return cached_inputs(source, args.input_filter, args.data_dir, args.strict)
    return s3_inputs(source, args.input_filter, args.data_dir)


def _deletable(args: argparse.Namespace, cache_dir: str) -> str:
    """Where -X deletes: with --bucket, only downloaded copies (never the data dir's files, which may not
    be uploaded yet); otherwise the data dir, as the original engine did."""
    return cache_dir if args.bucket else args.data_dir


def _download_note(fetcher) -> str:
    if fetcher is None or fetcher.fetched_bytes >= fetcher.total_bytes:
        return ""
    return f"downloaded {format_bytes(fetcher.fetched_bytes)} of {format_bytes(fetcher.total_bytes)}"


def _load(args: argparse.Namespace) -> Job:
    """The job script (or an empty job for external commands), checked before any work."""
    for option in ("mapper_cmd", "combiner_cmd", "reducer_cmd"):
        command = getattr(args, option)
        if command is not None:
            flag = f"--{option.replace('_', '-')}"
            try:
                words = shlex.split(command)
            except ValueError as e:
                raise JobLoadError(f"{flag} {command!r}: {e} (it is split as a shell would)") from None
            if not words or shutil.which(words[0]) is None:
                raise JobLoadError(f"{flag}: cannot find the program {command!r}")
    if args.job is None:
        if args.mapper_cmd is None:
            raise JobLoadError("give a job script (JOB.py) or --mapper-cmd")
        return Job(path="<external commands>", source_hash="", module=None)
    return load_job(args.job, require_map=args.mapper_cmd is None)


def _describe_run(args, job: Job, plan, inputs: Inputs, started: float) -> dict:
    """What a run read and how: the sidecar's (and a partial header's) account of the run."""
    return {
        "mr_version": __version__,
        "job": {"path": os.path.abspath(job.path) if args.job else None, "name": os.path.basename(job.path),
                "sha256": job.source_hash, "mapper_cmd": args.mapper_cmd, "combiner_cmd": args.combiner_cmd,
                "reducer_cmd": args.reducer_cmd},
        "filter": args.input_filter and dict(args.input_filter.document(),
                                             source=os.path.abspath(args.input_filter.source)),
        "data_dir": args.data_dir and os.path.abspath(args.data_dir),
        "s3": args.bucket and {"bucket": args.bucket, "prefix": args.prefix, "local_only": args.local_only,
                               "listed_objects": inputs.listing and len(inputs.listing.objects),
                               "list_calls": inputs.listing and inputs.listing.list_calls,
                               "downloaded_files": inputs.fetcher and inputs.fetcher.fetched_files},
        "inputs": [{"path": f.path, "layout_path": f.relative, "bytes": f.size} for f in plan.files],
        "sample": plan.sample and dataclasses.asdict(plan.sample),
        "warnings": inputs.warnings,
        "options": {"num_mappers": args.num_mappers, "num_reducers": args.num_reducers, "memory_mb": args.memory,
                    "max_errors": args.max_errors, "allow_partial": args.allow_partial, "sample": args.sample},
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
    }
