"""``mr cat``, ``mr ls`` and ``mr compress``: looking at and tidying stored data by hand."""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from collections import defaultdict
from typing import Callable, Iterable

from mapreduce.arguments import non_negative, positive

from .codecs import COMPRESSORS
from .compressor import compress_pending
from .errors import SchemaError, StorageError
from .finder import StoredFile, find_files
from .reader import RecordReader
from .s3names import bucket_problem, endpoint_problem, prefix_problem
from .schema import Schema

log = logging.getLogger(__name__)


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register the storage commands on the ``mr`` command group."""
    cat = commands.add_parser(
        "cat", help="print the records of stored files",
        description="Print the records of stored files (any codec) as uuid<TAB>json lines.",
        epilog="example: mr cat data/saved_session/Firefox/nightly/22.0a1/*.lzma | head -1")
    cat.add_argument("files", nargs="+", metavar="FILE", help=".log, .lzma, .xz, .lz4 or .gz files")
    cat.set_defaults(run=run_cat)

    ls = commands.add_parser(
        "ls", help="list the stored files a filter selects",
        description="List the stored files a filter selects, with their dimensions and sizes, "
                    "then a total.",
        epilog="example: mr ls --data-dir data --input-filter nightly.json --partitions")
    add_selection_arguments(ls)
    ls.add_argument("--partitions", action="store_true",
                    help="one line per directory (partition) instead of per file")
    ls.set_defaults(run=run_ls)

    compress = commands.add_parser(
        "compress", help="compress rotated logs that are waiting",
        description="Compress every pending (rotated) log under a storage directory and remove the "
                    "pending copy once the compressed file is complete. Safe to re-run after a crash.",
        epilog="example: mr compress --storage data --codec lz4 --workers 2")
    compress.add_argument("--storage", required=True, type=existing_dir, metavar="DIR")
    compress.add_argument("--codec", choices=sorted(COMPRESSORS), default="lzma",
                          help="lzma (LZMA-alone, preset 0, as in production; default) or faster-reading lz4")
    compress.add_argument("--workers", type=positive, default=os.cpu_count() or 1, metavar="N",
                          help="processes to compress with (default: number of cores)")
    compress.set_defaults(run=run_compress)

    add_export_command(commands)


def add_export_command(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export", help="upload compressed logs to S3, verified, optionally removing them",
        description="Upload every compressed log under a storage directory to the same relative key in a "
                    "bucket, in parallel, verifying each by size and checksum. With --delete, a local file is "
                    "removed only after its upload is verified. Re-running resumes: files already in the "
                    "bucket are skipped after verification. Pending logs are compressed first.",
        epilog="example: mr export --storage /data/telemetry --bucket telemetry-published --prefix v2 --delete")
    export.add_argument("--storage", required=True, type=existing_dir, metavar="DIR")
    export.add_argument("--bucket", required=True, type=bucket_name, metavar="BUCKET")
    export.add_argument("--prefix", default="", type=key_prefix, metavar="PREFIX", help="key prefix in the bucket")
    export.add_argument("--delete", action="store_true", help="remove each local file once verified in S3")
    export.add_argument("--workers", type=positive, default=8, metavar="N", help="parallel uploads (default: 8)")
    add_s3_arguments(export)
    export.set_defaults(run=run_export)


def add_s3_arguments(parser: argparse.ArgumentParser) -> None:
    """Where S3 is and how patient to be with it; credentials come from boto3's standard chain."""
    parser.add_argument("--s3-endpoint-url", type=endpoint_url, metavar="URL",
                        help="an S3-compatible service (default: AWS_ENDPOINT_URL, else AWS)")
    parser.add_argument("--s3-retries", type=non_negative, default=5, metavar="N", help="retries per request (default: 5)")
    parser.add_argument("--s3-timeout", type=seconds, default=60, metavar="SECONDS",
                        help="connect and read timeout (default: 60)")


def s3_settings(args: argparse.Namespace):
    from .s3 import S3Settings  # boto3 takes 0.2 s to import: only for the commands that use S3
    return S3Settings(args.s3_endpoint_url, args.s3_retries, args.s3_timeout)


def add_selection_arguments(parser: argparse.ArgumentParser) -> None:
    """``-d/--data-dir`` and ``-f/--input-filter``, shared by every command that selects files."""
    parser.add_argument("-d", "--data-dir", required=True, type=existing_dir, metavar="DIR",
                        help="root of the storage layout")
    parser.add_argument("-f", "--input-filter", type=filter_file, metavar="FILE",
                        help="a schema-format filter (default: every file)")


def existing_dir(value: str) -> str:
    if not os.path.isdir(value):
        raise argparse.ArgumentTypeError(f"{value}: no such directory")
    return value


def schema_file(value: str) -> Schema:
    """A schema document, for writing (any dimensions)."""
    try:
        return Schema.load(value)
    except SchemaError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def filter_file(value: str) -> Schema:
    """A filter: a schema document naming the storage layout's dimensions, in order."""
    try:
        return Schema.selecting(Schema.load(value))
    except SchemaError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _checked(problem: Callable[[str], str | None]) -> Callable[[str], str]:
    """An argument type that refuses a value ``problem`` finds fault with."""
    def check(value: str) -> str:
        found = problem(value)
        if found:
            raise argparse.ArgumentTypeError(found)
        return value
    return check


bucket_name = _checked(bucket_problem)
key_prefix = _checked(prefix_problem)
endpoint_url = _checked(endpoint_problem)


def seconds(value: str) -> float:
    number = float(value)
    if not 0 < number < math.inf:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number of seconds")
    return number


def run_cat(args: argparse.Namespace) -> int:
    out = sys.stdout.buffer
    failed = 0
    for path in args.files:
        try:
            for uuid, payload in RecordReader(path):
                out.write(f"{uuid}\t{payload}\n".encode("utf-8"))
        except BrokenPipeError:
            raise  # the reader went away; the command group stops quietly
        except (StorageError, OSError) as e:  # damaged, not a record file, unreadable: on to the next
            out.flush()
            log.error("%s", e)
            failed += 1
    out.flush()
    return 1 if failed else 0


def run_ls(args: argparse.Namespace) -> int:
    files = find_files(args.data_dir, args.input_filter)
    rows = _partition_rows(files) if args.partitions else _file_rows(files)
    for row in rows:
        print("\t".join(row))
    total = sum(f.size for f in files)
    print(f"total: {len(files)} files, {total} bytes ({format_bytes(total)})")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from mapreduce.progress import Progress

    from .export import export_logs
    from .s3 import check_bucket, make_client

    client = make_client(s3_settings(args))
    check_bucket(client, args.bucket)
    progress = Progress("export", unit="files")

    def report(stats, done: int, total: int) -> None:
        progress.total_bytes = total  # known once pending logs are compressed
        progress.update(stats.files + stats.skipped + len(stats.failed), done)

    try:
        stats = export_logs(args.storage, client, args.bucket, args.prefix, args.delete, args.workers,
                            on_progress=report)
    finally:
        progress.finish()
    print(f"exported {stats.files} files ({format_bytes(stats.bytes)}), skipped {stats.skipped} already in "
          f"s3://{args.bucket}/{args.prefix}, removed {stats.deleted} local files, failed {len(stats.failed)}")
    for failure in stats.failed:
        print(f"failed: {failure}")
    return 1 if stats.failed else 0


def run_compress(args: argparse.Namespace) -> int:
    from mapreduce.progress import Progress

    progress = Progress("compress", unit="logs")

    def report(stats, pending_bytes: int) -> None:
        progress.total_bytes = pending_bytes
        progress.update(stats.files, stats.raw_bytes)

    try:
        stats = compress_pending(args.storage, args.codec, args.workers, on_progress=report)
    finally:
        progress.finish()
    print(f"compressed {stats.files} logs: {format_bytes(stats.raw_bytes)} -> "
          f"{format_bytes(stats.compressed_bytes)}")
    return 0


def _file_rows(files: Iterable[StoredFile]) -> Iterable[tuple[str, ...]]:
    for f in files:
        yield f.path, "/".join(f.dimensions), str(f.size)


def _partition_rows(files: Iterable[StoredFile]) -> Iterable[tuple[str, ...]]:
    groups: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for f in files:
        group = groups[os.path.dirname(f.path)]
        group[0] += 1
        group[1] += f.size
    for directory, (count, size) in sorted(groups.items()):
        yield directory, f"{count} files", str(size)


def format_bytes(size: float) -> str:
    """A size for people: 1.5 MB, 312 bytes."""
    units = ("bytes", "kB", "MB", "GB", "TB")
    exponent = 0
    while size >= 1000 and exponent < len(units) - 1:
        size /= 1000
        exponent += 1
    return f"{size:.0f} bytes" if exponent == 0 else f"{size:.1f} {units[exponent]}"
