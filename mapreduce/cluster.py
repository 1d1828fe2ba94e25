"""Run the per-machine combine on every host over ssh, in parallel, and bring the partials back.

For each host: one ssh session unpacks the job script (with the modules
beside it) and the filter into a fresh remote temporary directory; a second
runs ``mr run --combine-only`` there, relays its log lines, and, if the job
succeeds, streams the partial result back on stdout (its lz4 checksum catches
a transfer cut short). The remote directory is removed in every case.

The remote script watches its stdin, which is the ssh channel: when the local
side goes away (Ctrl-C, a killed ssh), the remote job gets SIGTERM and stops
cleanly, so no remote process outlives the run.
"""

from __future__ import annotations

import io
import logging
import os
import shlex
import signal
import subprocess
import tarfile
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .hosts import Host, Ssh, remote_command

log = logging.getLogger(__name__)

STDERR_TAIL = 15
"""Lines of a failed host's stderr shown in the error."""

STAGED_FILTER = "filter.json"


@dataclass(frozen=True)
class ClusterJob:
    job_path: str
    filter_path: str | None
    remote_mr: str = "mr"
    """The command that runs mr on the hosts (the project must be installed there), split as a shell would."""
    remote_args: tuple[str, ...] = ()
    """More ``mr run`` options for every host (e.g. -m 4, --bucket ...)."""

    def __post_init__(self):
        remote_command(self.remote_mr)  # a bad --remote-mr is refused before any host is contacted


@dataclass
class HostOutcome:
    host: Host
    partial: str | None = None
    """The fetched partial result, or None if the host failed."""
    problem: str = ""
    stderr_tail: tuple[str, ...] = ()

    def describe(self) -> str:
        tail = "".join(f"\n    {line}" for line in self.stderr_tail)
        return f"{self.host.name}: {self.problem}" + (f"; its last output:{tail}" if tail else "")


class ClusterRun:
    def __init__(self, job: ClusterJob, hosts: list[Host], ssh: Ssh, partial_dir: str):
        self.job = job
        self.hosts = hosts
        self.ssh = ssh
        self.partial_dir = partial_dir
        self._processes: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def run(self) -> list[HostOutcome]:
        """Every host's outcome, in hosts-file order; on Ctrl-C, stops the remote jobs and re-raises."""
        bundle = self._staging_archive()
        pool = ThreadPoolExecutor(len(self.hosts), thread_name_prefix="mr-host")
        futures = [pool.submit(self._run_host, number, host, bundle) for number, host in enumerate(self.hosts)]
        try:
            return [future.result() for future in futures]
        except BaseException:
            self.stop()
            raise
        finally:
            pool.shutdown(wait=True)

    def stop(self) -> None:
        """Close every ssh session: the remote jobs see their stdin end and stop."""
        self._stopping.set()
        with self._lock:
            processes = list(self._processes)
        for process in processes:
            _close_session(process)

    # -- one host --------------------------------------------------------------------

    def _run_host(self, number: int, host: Host, bundle: bytes) -> HostOutcome:
        outcome = HostOutcome(host)
        staged = self._session(host, _STAGE_SCRIPT, bundle, outcome, capture=True)
        if staged is None:
            return outcome
        remote_dir = staged.strip()
        partial = os.path.join(self.partial_dir, f"{number:03d}-{_safe(host.name)}.partial")
        with open(partial, "wb") as sink:
            ok = self._session(host, self._run_script(host, remote_dir), None, outcome, stdout=sink)
        if ok is None:
            os.unlink(partial)
            return outcome
        outcome.partial = partial
        log.info("[%s] partial result fetched (%d bytes)", host.name, os.path.getsize(partial))
        return outcome

    def _run_script(self, host: Host, remote_dir: str) -> str:
        arguments = ["run", os.path.basename(self.job.job_path), "--combine-only", "--output",
                     f"{remote_dir}/partial", "--work-dir", remote_dir]
        if host.data_dir:
            arguments += ["--data-dir", host.data_dir]
        if self.job.filter_path:
            arguments += ["--input-filter", STAGED_FILTER]
        arguments += self.job.remote_args
        command = remote_command(self.job.remote_mr, *arguments)
        return _RUN_SCRIPT.replace("@DIR@", shlex.quote(remote_dir)).replace("@COMMAND@", command)

    def _session(self, host: Host, script: str, stdin: bytes | None, outcome: HostOutcome,
                 capture: bool = False, stdout=None) -> str | None:
        """Run one ssh session, relaying stderr; its stdout (if ``capture``), or None if it failed."""
        if self._stopping.is_set():
            outcome.problem = "not started: the run is stopping"
            return None
        process = subprocess.Popen(self.ssh.command(host, script), stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE if capture else stdout, stderr=subprocess.PIPE,
                                   start_new_session=True)  # Ctrl-C is ours to handle, not ssh's
        with self._lock:
            self._processes.add(process)
        tail: deque[str] = deque(maxlen=STDERR_TAIL)
        relay = threading.Thread(target=_relay, args=(process.stderr, host, tail), daemon=True)
        relay.start()
        try:
            if stdin is not None:
                try:
                    process.stdin.write(stdin)
                    process.stdin.close()
                except BrokenPipeError:
                    pass
            output = process.stdout.read().decode(errors="replace") if capture else ""
            status = process.wait()
        finally:
            relay.join()
            with self._lock:
                self._processes.discard(process)
        if status in (0, 3):  # 3: the job succeeded on partial data, which its partial records
            return output
        outcome.problem = _describe_status(status, self._stopping.is_set())
        outcome.stderr_tail = tuple(tail)
        return None

    def _staging_archive(self) -> bytes:
        """A tar of the job script, the modules beside it, and the filter (as filter.json)."""
        buffer = io.BytesIO()
        job_dir = os.path.dirname(os.path.abspath(self.job.job_path))
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            for name in sorted(os.listdir(job_dir)):
                path = os.path.join(job_dir, name)
                if name.endswith(".py") and os.path.isfile(path) and not os.path.samefile(path, self.job.job_path):
                    archive.add(path, arcname=name)
            archive.add(self.job.job_path, arcname=os.path.basename(self.job.job_path))
            if self.job.filter_path:
                archive.add(self.job.filter_path, arcname=STAGED_FILTER)
        return buffer.getvalue()


_STAGE_SCRIPT = 'd=$(mktemp -d "${TMPDIR:-/tmp}/mr-cluster.XXXXXX") && tar -xf - -C "$d" && echo "$d"'

_RUN_SCRIPT = """
d=@DIR@
exec 3<&0
cd "$d" || exit 97
@COMMAND@ >&2 &
job=$!
(cat <&3 >/dev/null 2>&1; kill -TERM $job 2>/dev/null) >/dev/null 2>&1 &
watcher=$!
wait $job
status=$?
kill $watcher 2>/dev/null
if [ $status -eq 0 ] || [ $status -eq 3 ]; then cat "$d/partial" || status=98; fi
rm -rf "$d"
exit $status
"""
"""Runs the job in the background; a watcher stops it (SIGTERM) when stdin, the ssh channel, ends."""


def _relay(stream, host: Host, tail: deque) -> None:
    for raw in stream:
        line = raw.decode(errors="replace").rstrip()
        if line:
            tail.append(line)
            log.info("[%s] %s", host.name, line)


def _close_session(process: subprocess.Popen) -> None:
    try:
        process.stdin.close()
    except OSError:
        pass
    try:
        process.send_signal(signal.SIGTERM)
    except ProcessLookupError:
        pass


def _describe_status(status: int, stopping: bool) -> str:
    if stopping:
        return "stopped (the run was interrupted)"
    if status == 255:
        return "could not connect or ssh failed (status 255)"
    if status == 97:
        return "the remote temporary directory vanished"
    if status == 98:
        return "the partial result could not be sent back"
    if status == 127:
        return "the mr command was not found there (is the project installed? see --remote-mr)"
    if status > 128 and status - 128 in signal.valid_signals():
        return f"the remote job was killed by {signal.Signals(status - 128).name}"
    if status < 0:
        return f"ssh was killed by {signal.Signals(-status).name}"
    return f"the remote job failed (exit status {status})"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
