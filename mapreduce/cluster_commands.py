"""``mr cluster run`` and ``mr cluster check``: a job over the data of several machines, over ssh.

Each host maps and combines its own files (``mr run --combine-only``); the
partial results come back here, where ``mr reduce``'s final reduce merges
them and writes (or uploads) the output.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shlex
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from storage.commands import add_s3_arguments, existing_dir, filter_file, s3_settings

from . import __version__
from .arguments import positive
from .cluster import ClusterJob, ClusterRun, HostOutcome
from .destination import Destination, Protected
from .errors import JobError, JobLoadError
from .hosts import Host, Ssh, read_hosts, remote_command
from .job import load_job
from .options import RunOptions
from .partial import check_compatible, open_partial
from .reduce_command import describe_reduce, reduce_partials
from .reporting import finish
from .workdir import work_dir_for

log = logging.getLogger("mapreduce.cluster")  # shown without -v, with the hosts' relayed lines


def add_command(commands: argparse._SubParsersAction) -> None:
    cluster = commands.add_parser(
        "cluster", help="run a job over the data of several machines, over ssh",
        description="Each host maps and combines its own data; the partial results come back over ssh and "
                    "one final reduce here merges them. The hosts file has one '[user@]host[:port] [data-dir]' "
                    "per line. mr must be installed on every host (check with 'mr cluster check').",
        epilog="example: mr cluster check --hosts hosts.txt")
    actions = cluster.add_subparsers(title="actions", metavar="ACTION", required=True)

    run = actions.add_parser("run", help="run a job on every host and reduce the results here",
                             epilog="example: mr cluster run jobs/channel_os.py --hosts hosts.txt "
                                    "--input-filter nightly.json --output s3://results/channel_os.tsv")
    run.add_argument("job", metavar="JOB.py")
    _add_host_arguments(run)
    run.add_argument("-f", "--input-filter", type=filter_file, metavar="FILE", help="a schema-format filter")
    run.add_argument("-o", "--output", default="-", metavar="FILE",
                     help="output file, s3://BUCKET/KEY, or - for stdout (default)")
    run.add_argument("-r", "--num-reducers", type=positive, default=1, metavar="N",
                     help="reduce partitions of the final reduce (default: 1)")
    run.add_argument("-w", "--work-dir", type=existing_dir, metavar="DIR",
                     help="where the partials and the final reduce's spills go")
    run.add_argument("--keep-partials", type=existing_dir, metavar="DIR",
                     help="keep the fetched partial results in DIR (default: removed after the reduce)")
    run.add_argument("--allow-partial", action="store_true",
                     help="reduce what the hosts that succeeded produced; the result names the missing hosts "
                          "(exit status 3)")
    run.add_argument("--remote-args", default="", metavar="ARGS",
                     help="more 'mr run' options for every host, e.g. \"-m 8 --memory 2048\"")
    add_s3_arguments(run)
    run.set_defaults(run=cluster_run_command)

    check = actions.add_parser("check", help="report per host: reachable, mr version, data dir and its size")
    _add_host_arguments(check)
    check.set_defaults(run=cluster_check_command)


def _add_host_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hosts", required=True, metavar="FILE", help="one '[user@]host[:port] [data-dir]' per line")
    parser.add_argument("--remote-mr", default="mr", metavar="CMD",
                        help="the command that runs mr on the hosts (default: mr)")
    parser.add_argument("--ssh-config", metavar="FILE", help="an ssh_config file for ssh -F (default: yours)")
    parser.add_argument("--ssh-option", action="append", default=[], metavar="OPTION",
                        help="an ssh -o option, e.g. StrictHostKeyChecking=accept-new (repeatable)")
    parser.add_argument("--connect-timeout", type=positive, default=10, metavar="SECONDS",
                        help="ssh connect timeout (default: 10)")


def _ssh(args: argparse.Namespace) -> Ssh:
    return Ssh(args.ssh_config, tuple(args.ssh_option), args.connect_timeout)


def cluster_run_command(args: argparse.Namespace) -> int:
    job = load_job(args.job)
    hosts = read_hosts(args.hosts)
    work_dir = work_dir_for(args.work_dir)
    protected = [Protected("the job script", job.path), Protected("the hosts file", args.hosts)]
    if args.input_filter:
        protected.append(Protected("the input filter", args.input_filter.source))
    if args.keep_partials:
        protected.append(Protected("the --keep-partials dir", args.keep_partials))
    destination = Destination.parse(args.output, work_dir, lambda: s3_settings(args), protected)
    try:
        remote_args = tuple(shlex.split(args.remote_args))
    except ValueError as e:
        raise JobLoadError(f"--remote-args {args.remote_args!r}: {e} (it is split as a shell would)") from None
    cluster_job = ClusterJob(args.job, args.input_filter and args.input_filter.source, args.remote_mr, remote_args)
    started = time.time()
    with _partial_dir(args.keep_partials, work_dir) as partial_dir:
        log.info("running %s on %d hosts: %s", os.path.basename(args.job), len(hosts),
                    ", ".join(h.name for h in hosts))
        outcomes = ClusterRun(cluster_job, hosts, _ssh(args), partial_dir).run()
        hosts_seconds = time.time() - started
        failed = [o for o in outcomes if o.partial is None]
        for outcome in failed:
            log.error("host %s", outcome.describe())
        if failed and not args.allow_partial:
            raise JobError(f"{len(failed)} of {len(hosts)} hosts failed ({', '.join(o.host.name for o in failed)}); "
                           "the result would be incomplete. Rerun with --allow-partial to reduce the rest")
        if len(failed) == len(hosts):
            raise JobError("every host failed; there is nothing to reduce")
        partials = [open_partial(o.partial, f"the partial of host {o.host.name}") for o in outcomes if o.partial]
        check_compatible(partials, job.source_hash)
        options = RunOptions(num_mappers=os.cpu_count() or 1, num_reducers=args.num_reducers, work_dir=work_dir)
        result, warnings = reduce_partials(job, partials, options, destination)
        result.map_seconds, result.seconds = hosts_seconds, time.time() - started
        warnings += [f"host {o.host.name} is MISSING from the result: {o.problem}" for o in failed]
        meta = describe_reduce(job, partials, result, warnings, started)
        if args.input_filter:
            meta["filter"]["source"] = os.path.abspath(args.input_filter.source)
        meta["hosts"] = [_host_record(o) for o in outcomes]
        destination.write_sidecar(meta)
    destination.publish()
    return finish(result, warnings, [f"hosts:        {len(hosts) - len(failed)} of {len(hosts)} succeeded"],
                  quiet=args.quiet)


def _partial_dir(keep: str | None, work_dir: str):
    """Where fetched partials go: the --keep-partials dir, or a temporary one removed afterwards."""
    return contextlib.nullcontext(keep) if keep else tempfile.TemporaryDirectory(prefix="mr-partials-", dir=work_dir)


def _host_record(outcome: HostOutcome) -> dict:
    return {"host": outcome.host.name, "data_dir": outcome.host.data_dir, "ok": outcome.partial is not None,
            "problem": outcome.problem or None}


def cluster_check_command(args: argparse.Namespace) -> int:
    hosts = read_hosts(args.hosts)
    ssh = _ssh(args)
    with ThreadPoolExecutor(len(hosts)) as pool:
        reports = list(pool.map(lambda host: _check(ssh, host, args.remote_mr), hosts))
    for line, _ in reports:
        print(line)
    return 0 if all(ok for _, ok in reports) else 1


def _check(ssh: Ssh, host: Host, remote_mr: str) -> tuple[str, bool]:
    data_dir = shlex.quote(host.data_dir) if host.data_dir else "''"
    script = (f"{remote_command(remote_mr, '--version')} 2>&1; d={data_dir}; "
              'if [ -z "$d" ]; then echo "data: none given"; '
              'elif [ -d "$d" ]; then echo "data: $(du -sk "$d" | cut -f1)"; '
              'else echo "data: missing"; fi')
    try:
        done = subprocess.run(ssh.command(host, script), capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return f"{host.name}: UNREACHABLE (no answer in 120 s)", False
    if done.returncode == 255:
        reason = (done.stderr.strip().splitlines() or ["ssh failed"])[-1]
        return f"{host.name}: UNREACHABLE ({reason})", False
    lines = done.stdout.strip().splitlines()
    version = lines[0].split()[-1] if lines and lines[0].startswith("mr ") else None
    data = lines[-1].removeprefix("data: ") if lines else "missing"
    problems = []
    if version is None:
        problems.append(f"mr not runnable as {remote_mr!r}: {(lines or [done.stderr.strip()])[0]}")
    elif version != __version__:
        problems.append(f"mr {version} there, {__version__} here")
    if data == "missing":
        problems.append(f"data dir {host.data_dir} missing")
    size = f"data dir {host.data_dir} ({int(data) * 1024:,} bytes)" if data.isdigit() else f"data dir: {data}"
    status = "OK" if not problems else "PROBLEM: " + "; ".join(problems)
    return f"{host.name}: reachable, mr {version or '?'}, {size}: {status}", not problems
