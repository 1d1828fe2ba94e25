"""``mr convert`` (raw submissions into storage) and ``mr histograms`` (definitions, by hand)."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import urllib.parse

from storage.codecs import COMPRESSORS
from storage.commands import format_bytes, schema_file
from storage.schema import Schema

from .recordlog import DEFAULT_MAX_PAYLOAD_SIZE
from .repositories import DEFAULT_REPOSITORIES, Location, UntrustedRepository

MEGABYTE = 1024 * 1024
REPORTED_REVISION_FAILURES = 20


def add_commands(commands: argparse._SubParsersAction) -> None:
    convert = commands.add_parser(
        "convert", help="convert raw submissions into the storage layout",
        description="Validate raw submissions (binary record logs v1/v2, or uuid<TAB>json exports) against "
                    "the Histograms.json of their revision, rewrite histograms as compact arrays, and file "
                    "them into the storage layout, rotated and compressed. Prints what was converted and "
                    "what was rejected, by reason.",
        epilog="example: mr convert incoming/*.log --storage data --histogram-cache histogram-cache")
    convert.add_argument("inputs", nargs="+", metavar="INPUT", help="record logs or uuid<TAB>json exports")
    convert.add_argument("--storage", required=True, metavar="DIR", help="root of the storage layout")
    convert.add_argument("--histogram-cache", metavar="DIR",
                         help="definitions per revision: DIR/<rev>/Histograms.json filled by hand (trusted whatever "
                              "repository a payload names), DIR/<host>/<repository path>/<rev>/Histograms.json "
                              "filled by fetching")
    convert.add_argument("--revision-url", metavar="TEMPLATE", type=revision_url_template,
                         help="where to fetch a revision's Histograms.json, with {repo} (the allowed repository's "
                              "URL, with the scheme of its --repository prefix) and {rev} "
                              "(default: {repo}/raw-file/{rev}/toolkit/components/telemetry/Histograms.json)")
    convert.add_argument("--repository", action="append", default=[], type=repository_prefix, metavar="URL",
                         help="also fetch definitions for payloads naming a repository under this URL prefix, "
                              "fetched with its scheme (repeatable; always allowed: "
                              f"{', '.join(DEFAULT_REPOSITORIES)}, which real payloads name as http://)")
    convert.add_argument("--no-fetch", action="store_true", help="use only the histogram cache")
    convert.add_argument("--revision-map", metavar="FILE",
                         help="JSON {channel: {build id or version: revision}} for payloads without one")
    convert.add_argument("--schema", type=schema_file, metavar="FILE", help="storage schema (default: built in)")
    convert.add_argument("--submission-date", type=submission_date, metavar="YYYYMMDD",
                         help="for every record (default: each record's timestamp; required for exports)")
    convert.add_argument("--strict", action="store_true",
                         help="reject a whole payload for one bad histogram (default: drop the histogram)")
    convert.add_argument("--rejected", metavar="FILE",
                         help="append rejected payloads here as uuid<TAB>reason<TAB>json")
    convert.add_argument("--journal", metavar="FILE",
                         help="remember here which records of which inputs were stored, and skip those: "
                              "a re-run after a failure or Ctrl-C stores each record once")
    convert.add_argument("--max-payload-size", type=megabytes, default=DEFAULT_MAX_PAYLOAD_SIZE, metavar="MB",
                         help="reject payloads larger than this once decompressed (default: "
                              f"{DEFAULT_MAX_PAYLOAD_SIZE // MEGABYTE}; real pings are about 0.1)")
    convert.add_argument("--codec", choices=sorted(COMPRESSORS), default="lzma", help="compression (default: lzma)")
    convert.add_argument("--workers", type=int, default=os.cpu_count() or 1, metavar="N",
                         help="processes (default: number of cores)")
    convert.set_defaults(run=run_convert, usage_error=convert.error)

    histograms = commands.add_parser(
        "histograms", help="print histogram definitions with their computed buckets",
        description="Print the definitions of a Histograms.json as JSON, {NAME: {kind, buckets, ...}}, "
                    "or {NAME: {error}} for those that cannot be used.",
        epilog="example: mr histograms Histograms.json A11Y_CONSUMERS GC_MS")
    histograms.add_argument("file", metavar="FILE", help="a Histograms.json")
    histograms.add_argument("names", nargs="*", metavar="NAME", help="only these (default: all)")
    histograms.set_defaults(run=run_histograms)

    gen = commands.add_parser(
        "gen", help="write realistic synthetic pings into a storage layout",
        description="Write synthetic converted pings (about 300 real histograms each, several channels, "
                    "versions, OSes, build ids and dates) into a storage layout, compressed. The same seed "
                    "gives the same pings.",
        epilog="example: mr gen sample-data --pings 2000")
    gen.add_argument("storage", metavar="DIR", help="root of the storage layout to write into")
    gen.add_argument("--pings", type=int, default=2000, metavar="N", help="how many (default: 2000)")
    gen.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    gen.add_argument("--days", type=int, default=3, help="submission dates to spread over (default: 3)")
    gen.add_argument("--codec", choices=sorted(COMPRESSORS), default="lzma", help="compression (default: lzma)")
    gen.add_argument("--workers", type=int, default=os.cpu_count() or 1, metavar="N",
                     help="processes to compress with (default: number of cores)")
    gen.set_defaults(run=run_gen)


def submission_date(value: str) -> str:
    if not re.fullmatch(r"\d{8}", value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a date as YYYYMMDD")
    return value


def revision_url_template(value: str) -> str:
    """A --revision-url: an http(s) URL once {repo} and {rev} are filled in, with no other fields."""
    try:
        example = value.format(repo=DEFAULT_REPOSITORIES[0].rstrip("/") + "/mozilla-central", rev="a55c55edf302")
    except (KeyError, IndexError, ValueError):
        raise argparse.ArgumentTypeError(f"{value!r} may only use the fields {{repo}} and {{rev}}") from None
    if urllib.parse.urlsplit(example).scheme not in ("http", "https"):
        raise argparse.ArgumentTypeError(f"{value!r} is not an http or https URL")
    return value


def repository_prefix(value: str) -> str:
    try:
        Location.parse(value)
    except UntrustedRepository as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return value


def megabytes(value: str) -> int:
    try:
        size = float(value)
    except ValueError:
        size = 0
    if not size > 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive number of megabytes")
    return int(size * MEGABYTE)


def run_histograms(args: argparse.Namespace) -> int:
    from .histograms import Definitions

    described = Definitions.load(args.file).describe(args.names)
    rows = [f"{json.dumps(name)}: {json.dumps(entry)}" for name, entry in described.items()]
    sys.stdout.write("{\n" + ",\n".join(rows) + "\n}\n")
    return 0


def run_gen(args: argparse.Namespace) -> int:
    from .synthetic import generate

    written = generate(args.storage, args.pings, args.seed, args.days, args.codec, max(1, args.workers))
    print(f"wrote {args.pings:,} pings ({format_bytes(written)} uncompressed) into {args.storage}")
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from mapreduce.progress import Progress

    from .journal import Journal, JournalError
    from .pipeline import ConvertOptions, convert_inputs
    from .revisions import DEFAULT_URL_TEMPLATE, RevisionCache

    missing = [p for p in args.inputs if not os.path.isfile(p)]
    if missing:
        args.usage_error(f"no such input file: {', '.join(missing)}")
    exports = [p for p in args.inputs if not _is_record_log(p)]
    if exports and not args.submission_date:
        args.usage_error(f"{exports[0]} is a uuid<TAB>json export, which carries no timestamp; "
                         "give --submission-date YYYYMMDD")
    problem = _unwritable(args.storage, args.rejected, args.journal)
    if problem:
        args.usage_error(problem)
    try:
        journal = Journal(args.journal) if args.journal else None
    except JournalError as e:
        args.usage_error(str(e))
    options = ConvertOptions(
        storage=args.storage, schema=args.schema or Schema.default(), cache_dir=args.histogram_cache,
        url_template=None if args.no_fetch else args.revision_url or DEFAULT_URL_TEMPLATE,
        repositories=DEFAULT_REPOSITORIES + tuple(args.repository),
        fallback=RevisionCache.load_fallback(args.revision_map) if args.revision_map else {},
        strict=args.strict, submission_date=args.submission_date, rejected_path=args.rejected,
        workers=max(1, args.workers), codec=args.codec, max_payload_size=args.max_payload_size)
    progress = Progress("convert", total_bytes=sum(os.path.getsize(p) for p in args.inputs))
    summary = convert_inputs(args.inputs, options,
                             lambda s: progress.update(s.stats.read + sum(s.damaged.values()), s.input_bytes),
                             journal)
    progress.finish()
    print(render_summary(summary, journal is not None))
    if summary.interruption:
        raise summary.interruption
    return 1 if summary.unreadable or summary.failure or summary.compression_failure else 0


def _unwritable(storage: str, rejected: str | None, journal: str | None) -> str | None:
    """Why the storage directory, the --rejected file or the --journal cannot be written, before any work."""
    try:
        os.makedirs(storage, exist_ok=True)
        tempfile.TemporaryFile(dir=storage).close()
    except OSError as e:
        return f"storage directory {storage}: cannot write there: {e.strerror}"
    try:
        if rejected:
            open(rejected, "a").close()
        if journal:  # replaced whole at every save, through a temporary file beside it
            tempfile.TemporaryFile(dir=os.path.dirname(os.path.abspath(journal))).close()
    except OSError as e:
        option, path = ("--rejected", rejected) if e.filename == rejected else ("--journal", journal)
        return f"{option} {path}: cannot write there: {e.strerror}"
    return None


def _is_record_log(path: str) -> bool:
    from .recordlog import is_record_log

    with open(path, "rb") as f:
        return is_record_log(f.read(1))


def render_summary(summary, journal: bool = False) -> str:
    """The end-of-run report of a RunSummary: counts by reason, rate, failures."""
    stats = summary.stats
    records = stats.read + sum(summary.damaged.values())
    skipped = [f"skipped:       {summary.skipped:,} (stored by an earlier run, says the journal)"]
    lines = [
        f"records read:  {records:,} ({format_bytes(summary.input_bytes)} of input)",
        *(skipped if summary.skipped else []),
        f"converted:     {stats.converted:,}",
        f"rejected:      {sum(stats.rejected.values()):,}",
        *_by_reason(stats.rejected),
        f"damaged:       {sum(summary.damaged.values()):,}",
        *_by_reason(summary.damaged),
        f"histograms dropped: {sum(stats.histograms_dropped.values()):,}",
        *_by_reason(stats.histograms_dropped),
        f"time:          {summary.seconds:.1f} s, {records / summary.seconds if summary.seconds else 0:,.0f} records/s",
    ]
    failures = sorted(summary.revision_failures.items())
    lines += [f"revision {rev}: {why}" for rev, why in failures[:REPORTED_REVISION_FAILURES]]
    if len(failures) > REPORTED_REVISION_FAILURES:
        lines.append(f"... and {len(failures) - REPORTED_REVISION_FAILURES:,} more revisions could not be had")
    lines += [f"unreadable input: {problem}" for problem in summary.unreadable]
    if summary.failure or summary.interruption:
        lines.append(f"stopped: {summary.failure or 'interrupted'}")
        lines.append("the records counted as converted are stored; a re-run with the same --journal stores only "
                     "the rest" if journal else "the records counted as converted are stored; a re-run would "
                     "store them again (give --journal FILE to make re-runs skip them)")
    if summary.compression_failure:
        lines.append(f"not compressed: {summary.compression_failure}; mr compress finishes the pending logs")
    return "\n".join(lines)


def _by_reason(counts) -> list[str]:
    return [f"  {reason}: {count:,}" for reason, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
