"""``mr convert`` (raw submissions into storage) and ``mr histograms`` (definitions, by hand)."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

from storage.codecs import COMPRESSORS
from storage.commands import format_bytes, schema_file
from storage.schema import Schema


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
                         help="Histograms.json per revision, as DIR/<rev>/Histograms.json (filled by fetching)")
    convert.add_argument("--revision-url", metavar="TEMPLATE",
                         help="where to fetch a revision's Histograms.json, with {repo} and {rev} "
                              "(default: {repo}/raw-file/{rev}/toolkit/components/telemetry/Histograms.json)")
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

    from .pipeline import ConvertOptions, convert_inputs
    from .revisions import DEFAULT_URL_TEMPLATE, RevisionCache

    missing = [p for p in args.inputs if not os.path.isfile(p)]
    if missing:
        args.usage_error(f"no such input file: {', '.join(missing)}")
    exports = [p for p in args.inputs if not _is_record_log(p)]
    if exports and not args.submission_date:
        args.usage_error(f"{exports[0]} is a uuid<TAB>json export, which carries no timestamp; "
                         "give --submission-date YYYYMMDD")
    options = ConvertOptions(
        storage=args.storage, schema=args.schema or Schema.default(), cache_dir=args.histogram_cache,
        url_template=None if args.no_fetch else args.revision_url or DEFAULT_URL_TEMPLATE,
        fallback=RevisionCache.load_fallback(args.revision_map) if args.revision_map else {},
        strict=args.strict, submission_date=args.submission_date, rejected_path=args.rejected,
        workers=max(1, args.workers), codec=args.codec)
    progress = Progress("convert", total_bytes=sum(os.path.getsize(p) for p in args.inputs))
    summary = convert_inputs(args.inputs, options,
                             lambda s: progress.update(s.stats.read + sum(s.damaged.values()), s.input_bytes))
    progress.finish()
    print(render_summary(summary))
    return 1 if summary.unreadable else 0


def _is_record_log(path: str) -> bool:
    from .recordlog import is_record_log

    with open(path, "rb") as f:
        return is_record_log(f.read(1))


def render_summary(summary) -> str:
    """The end-of-run report of a RunSummary: counts by reason, rate, failures."""
    stats = summary.stats
    records = stats.read + sum(summary.damaged.values())
    lines = [
        f"records read:  {records:,} ({format_bytes(summary.input_bytes)} of input)",
        f"converted:     {stats.converted:,}",
        f"rejected:      {sum(stats.rejected.values()):,}",
        *_by_reason(stats.rejected),
        f"damaged:       {sum(summary.damaged.values()):,}",
        *_by_reason(summary.damaged),
        f"histograms dropped: {sum(stats.histograms_dropped.values()):,}",
        *_by_reason(stats.histograms_dropped),
        f"time:          {summary.seconds:.1f} s, {records / summary.seconds if summary.seconds else 0:,.0f} records/s",
    ]
    lines += [f"revision {rev}: {why}" for rev, why in sorted(summary.revision_failures.items())]
    lines += [f"unreadable input: {problem}" for problem in summary.unreadable]
    return "\n".join(lines)


def _by_reason(counts) -> list[str]:
    return [f"  {reason}: {count:,}" for reason, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
