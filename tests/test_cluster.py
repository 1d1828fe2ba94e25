"""Per-machine combine, the final reduce, and `mr cluster` over a real sshd on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mapreduce.partial import open_partial
from storage import find_files

from .conftest import JOBS, ROOT, SHIPPED, run_mr, tsv

REMOTE_MR = f"{sys.executable} {ROOT / 'bin' / 'mr'}"


@pytest.fixture(scope="module")
def spread(data, tmp_path_factory) -> list[Path]:
    """The sample store dealt file by file over three machines' data dirs (every partition on every machine)."""
    base = tmp_path_factory.mktemp("machines")
    machines = [base / f"machine{n}" for n in range(3)]
    for number, stored in enumerate(find_files(str(data))):
        target = machines[number % 3] / stored.relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(stored.path, target)
    return machines


def hosts_file(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "hosts.txt"
    path.write_text("# test cluster\n" + "\n".join(lines) + "\n")
    return path


def cluster(sshd, hosts: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return run_mr("cluster", *args[:1], "--hosts", str(hosts), "--ssh-config", str(sshd.config),
                  "--remote-mr", REMOTE_MR, *args[1:], **kwargs)


def single_run(data: Path, tmp_path: Path, job: Path) -> bytes:
    out = tmp_path / "single.txt"
    result = run_mr("run", str(job), "--data-dir", str(data), "--output", str(out))
    assert result.returncode == 0, result.stderr
    return out.read_bytes()


# -- by hand: --combine-only and mr reduce --------------------------------------------

@pytest.mark.parametrize("job", [SHIPPED / "channel_os.py", JOBS / "no_combine.py", JOBS / "map_only.py"])
def test_partials_reduced_by_hand_equal_one_run_over_all_data(spread, data, tmp_path, job):
    partials = []
    for number, machine in enumerate(spread):
        partial = tmp_path / f"m{number}.partial"
        result = run_mr("run", str(job), "--data-dir", str(machine), "--combine-only", "--output", str(partial))
        assert result.returncode == 0, result.stderr
        partials.append(str(partial))
    header = json.loads(Path(partials[0]).read_bytes().split(b"\n", 2)[1])
    assert header["job"]["name"] == job.name and len(header["job"]["sha256"]) == 64
    assert header["machine"] and header["data_dir"] == str(spread[0]) and header["filter"] is None

    out = tmp_path / "reduced.txt"
    result = run_mr("reduce", str(job), *partials, "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == single_run(data, tmp_path, job)
    meta = json.loads((tmp_path / "reduced.txt.meta.json").read_text())
    assert meta["records"] == 300 and [p["path"] for p in meta["partials"]] == partials


def test_a_job_with_combine_ships_one_value_per_key_and_one_without_ships_raw_values(spread, tmp_path):
    shipped = {}
    for job in (SHIPPED / "channel_os.py", JOBS / "no_combine.py"):
        partial = tmp_path / f"{job.stem}.partial"
        run_mr("run", str(job), "--data-dir", str(spread[0]), "--combine-only", "--output", str(partial))
        entries = list(open_partial(str(partial)).entries())
        shipped[job.stem] = (len(entries), len({key for _, _, key, _ in entries}), sum(len(e[3]) for e in entries))
    entries, keys, values = shipped["channel_os"]
    assert entries == keys == values  # one combined value per (channel, OS)
    entries, keys, values = shipped["no_combine"]
    files = find_files(str(spread[0]))
    assert keys == 4 and values == sum(1 for f in files for _ in f.open())  # every ping's 1
    assert entries == len(files)  # one entry per file (each file is one channel's)


def test_reduce_refuses_partials_of_another_job_or_filter_before_any_work(spread, tmp_path):
    def partial(job: Path, name: str, *args: str) -> str:
        path = tmp_path / name
        result = run_mr("run", str(job), "--data-dir", str(spread[0]), "--combine-only", "--output", str(path), *args)
        assert result.returncode == 0, result.stderr
        return str(path)

    counts = partial(JOBS / "no_combine.py", "counts.partial")
    other = partial(SHIPPED / "channel_os.py", "other.partial")
    refused = run_mr("reduce", str(JOBS / "no_combine.py"), counts, other)
    assert refused.returncode == 2 and f"{other} was made by a different job" in refused.stderr

    nightly = tmp_path / "nightly.json"
    nightly.write_text(json.dumps({"dimensions": [{"field_name": name, "allowed_values": "*"} for name in
                                                  ("reason", "appName")] + [
        {"field_name": "appUpdateChannel", "allowed_values": ["nightly"]}] + [
        {"field_name": name, "allowed_values": "*"} for name in ("appVersion", "appBuildID", "submission_date")]}))
    filtered = partial(JOBS / "no_combine.py", "nightly.partial", "--input-filter", str(nightly))
    refused = run_mr("reduce", str(JOBS / "no_combine.py"), counts, filtered)
    assert refused.returncode == 2 and "different input filters" in refused.stderr

    not_a_partial = tmp_path / "out.txt"
    not_a_partial.write_text("nightly\t3\n")
    refused = run_mr("reduce", str(JOBS / "no_combine.py"), str(not_a_partial))
    assert refused.returncode == 2 and "not a partial result" in refused.stderr


def test_a_partial_cut_short_in_transfer_is_refused(spread, tmp_path):
    partial = tmp_path / "m.partial"
    run_mr("run", str(SHIPPED / "histogram_aggregation.py"), "--data-dir", str(spread[0]), "--combine-only",
           "--output", str(partial))
    data = partial.read_bytes()
    partial.write_bytes(data[: len(data) * 2 // 3])
    refused = run_mr("reduce", str(SHIPPED / "histogram_aggregation.py"), str(partial), "--output",
                     str(tmp_path / "out.txt"))
    assert refused.returncode == 1 and "the partial result is damaged" in refused.stderr
    assert not (tmp_path / "out.txt").exists()


# -- over ssh ------------------------------------------------------------------------

@pytest.mark.parametrize("job", [SHIPPED / "channel_os.py", JOBS / "no_combine.py"])
def test_cluster_run_equals_one_run_over_all_data_and_uploads_it(sshd, spread, data, tmp_path, s3_server, bucket,
                                                                 job):
    hosts = hosts_file(tmp_path, [f"{sshd.target} {machine}" for machine in spread])
    result = cluster(sshd, hosts, "run", str(job), "--output", f"s3://{bucket}/cluster/out.txt",
                     "--s3-endpoint-url", s3_server.url)
    assert result.returncode == 0, result.stderr
    client = s3_server.client()
    uploaded = client.get_object(Bucket=bucket, Key="cluster/out.txt")["Body"].read()
    assert uploaded == single_run(data, tmp_path, job)
    meta = json.loads(client.get_object(Bucket=bucket, Key="cluster/out.txt.meta.json")["Body"].read())
    assert [h["ok"] for h in meta["hosts"]] == [True] * 3 and meta["records"] == 300
    assert "hosts:        3 of 3 succeeded" in result.stderr
    assert f"[{sshd.target.rsplit('@', 1)[0]}" in result.stderr  # the hosts' log lines came back, named


def test_the_histogram_aggregation_over_the_cluster_is_byte_identical_floats_included(sshd, spread, data, tmp_path):
    """Its float statistics are summed exactly, so the spread (files dealt one by one) cannot show in them."""
    hosts = hosts_file(tmp_path, [f"{sshd.target} {machine}" for machine in spread])
    job = SHIPPED / "histogram_aggregation.py"
    result = cluster(sshd, hosts, "run", str(job), "--output", str(tmp_path / "cluster.jsonl"))
    assert result.returncode == 0, result.stderr
    clustered = (tmp_path / "cluster.jsonl").read_bytes()
    assert clustered == single_run(data, tmp_path, job)
    assert b"." in clustered and clustered.count(b"\n") > 1000  # floats and many histograms were compared


def nightly_filter(path: Path) -> Path:
    path.write_text(json.dumps({"version": 1, "dimensions": [
        {"field_name": "reason", "allowed_values": "*"}, {"field_name": "appName", "allowed_values": "*"},
        {"field_name": "appUpdateChannel", "allowed_values": ["nightly", "beta"]},
        {"field_name": "appVersion", "allowed_values": "*"}, {"field_name": "appBuildID", "allowed_values": "*"},
        {"field_name": "submission_date", "allowed_values": "*"}]}))
    return path


def test_cluster_run_with_a_filter_equals_one_run_with_it(sshd, spread, data, tmp_path):
    """Each host stages the filter in its own temporary directory: partials agree on what it selects."""
    hosts = hosts_file(tmp_path, [f"{sshd.target} {machine}" for machine in spread])
    nightly = nightly_filter(tmp_path / "nightly.json")
    result = cluster(sshd, hosts, "run", str(JOBS / "no_combine.py"), "--input-filter", str(nightly),
                     "--output", str(tmp_path / "cluster.txt"))
    assert result.returncode == 0, result.stderr
    single = run_mr("run", str(JOBS / "no_combine.py"), "--data-dir", str(data), "--input-filter", str(nightly),
                    "--output", str(tmp_path / "single.txt"))
    assert single.returncode == 0, single.stderr
    clustered = (tmp_path / "cluster.txt").read_text()
    assert clustered == (tmp_path / "single.txt").read_text() and set(tsv(clustered)) == {"nightly", "beta"}
    meta = json.loads((tmp_path / "cluster.txt.meta.json").read_text())
    assert meta["filter"]["source"] == str(nightly) and meta["filter"]["dimensions"][2]["allowed_values"] == [
        "beta", "nightly"]


def test_one_machine_listed_under_two_names_is_refused(sshd, spread, tmp_path):
    """localhost and 127.0.0.1 are one machine: with the same data dir, every file would be counted twice."""
    known_hosts = tmp_path / "known_hosts"
    key_type, key = (sshd.directory / "host_key.pub").read_text().split()[:2]
    known_hosts.write_text(f"[127.0.0.1]:{sshd.port} {key_type} {key}\n[localhost]:{sshd.port} {key_type} {key}\n")
    config = tmp_path / "ssh_config"
    config.write_text(re.sub(r"UserKnownHostsFile .*", f"UserKnownHostsFile {known_hosts}", sshd.config.read_text()))
    hosts = hosts_file(tmp_path, [f"{sshd.user}@127.0.0.1:{sshd.port} {spread[0]}",
                                  f"{sshd.user}@localhost:{sshd.port} {spread[0]}"])
    result = run_mr("cluster", "run", str(JOBS / "no_combine.py"), "--hosts", str(hosts), "--ssh-config", str(config),
                    "--remote-mr", REMOTE_MR, "--output", str(tmp_path / "out.txt"))
    assert result.returncode == 2, result.stderr
    files = len(find_files(str(spread[0])))
    assert (f"the partial of host {sshd.user}@localhost:{sshd.port} ({spread[0]}) and the partial of host "
            f"{sshd.user}@127.0.0.1:{sshd.port} ({spread[0]}) read {files} of the same input files") in result.stderr
    assert "is one machine listed twice (under two names)" in result.stderr
    assert not (tmp_path / "out.txt").exists()


def test_cluster_check_reports_each_host(sshd, spread, tmp_path):
    hosts = hosts_file(tmp_path, [f"{sshd.target} {spread[0]}", f"{sshd.target} {tmp_path / 'nowhere'}",
                                  f"{sshd.user}@127.0.0.1:1 {spread[1]}"])
    result = cluster(sshd, hosts, "check")
    assert result.returncode == 1
    first, missing, refused = result.stdout.splitlines()
    assert first.endswith(": OK") and "mr 0.1.0" in first and f"data dir {spread[0]} (" in first
    assert "PROBLEM: data dir" in missing and "missing" in missing
    assert "UNREACHABLE" in refused and "refused" in refused.lower()


@pytest.fixture
def mixed_hosts(sshd, spread, tmp_path) -> Path:
    return hosts_file(tmp_path, [f"{sshd.target} {spread[0]}", f"{sshd.user}@127.0.0.1:1 {spread[1]}",
                                 f"{sshd.target} {spread[2]}"])


def test_a_host_that_refuses_connections_is_named_and_fails_the_job(sshd, mixed_hosts, tmp_path):
    result = cluster(sshd, mixed_hosts, "run", str(JOBS / "no_combine.py"), "--output", str(tmp_path / "out.txt"))
    assert result.returncode == 1
    assert "127.0.0.1:1" in result.stderr and "could not connect" in result.stderr
    assert "Connection refused" in result.stderr  # the host's stderr tail
    assert "--allow-partial" in result.stderr and not (tmp_path / "out.txt").exists()


def test_allow_partial_reduces_the_rest_and_names_the_missing_host(sshd, mixed_hosts, spread, tmp_path):
    result = cluster(sshd, mixed_hosts, "run", str(JOBS / "no_combine.py"), "--output", str(tmp_path / "out.txt"),
                     "--allow-partial")
    assert result.returncode == 3, result.stderr
    assert "is MISSING from the result" in result.stderr and "127.0.0.1:1" in result.stderr
    both = tmp_path / "both"
    for machine in (spread[0], spread[2]):
        shutil.copytree(machine, both, dirs_exist_ok=True)
    assert (tmp_path / "out.txt").read_bytes() == single_run(both, tmp_path, JOBS / "no_combine.py")
    meta = json.loads((tmp_path / "out.txt.meta.json").read_text())
    assert [h["ok"] for h in meta["hosts"]] == [True, False, True]
    assert any("127.0.0.1:1" in w for w in meta["warnings"])


def test_a_host_whose_job_raises_is_named_with_its_error(sshd, spread, tmp_path):
    aurora_free = tmp_path / "aurora-free"
    for stored in find_files(str(spread[0])):
        if stored.dimensions[2] != "aurora":
            (aurora_free / stored.relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(stored.path, aurora_free / stored.relative)
    hosts = hosts_file(tmp_path, [f"{sshd.target} {aurora_free}", f"{sshd.target} {spread[1]}"])
    result = cluster(sshd, hosts, "run", str(JOBS / "raises_on_aurora.py"), "--output", str(tmp_path / "out.txt"))
    assert result.returncode == 1
    assert f"{spread[1]}): the remote job failed (exit status 1)" in result.stderr
    assert "aurora pings are not welcome here" in result.stderr
    assert f"{aurora_free}): " not in result.stderr.split("failed (")[0]  # only the guilty host is blamed


def _remote_jobs(pattern: str, oldest: bool = False) -> list[int]:
    """Pids of the remote `mr run` processes (coordinators and their forked workers) whose command line matches."""
    command = ["pgrep", "-o"] if oldest else ["pgrep"]
    found = subprocess.run([*command, "-f", "--", f"^{re.escape(REMOTE_MR)} run .*{pattern}"],
                           capture_output=True, text=True).stdout.split()
    return [int(pid) for pid in found]


def wait_for(condition, what: str) -> None:
    """Poll until ``condition()`` holds; the two minutes are a failsafe against a hang, not a time limit."""
    deadline = time.monotonic() + 120
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"never happened: {what}")
        time.sleep(0.05)


def test_a_host_killed_mid_run_is_named(sshd, spread, tmp_path):
    """The job never finishes a ping: its workers are gone only if they died with their killed coordinator."""
    hosts = hosts_file(tmp_path, [f"{sshd.target} {spread[1]}"])
    process = subprocess.Popen([sys.executable, str(ROOT / "bin" / "mr"), "cluster", "run", str(JOBS / "hangs.py"),
                                "--hosts", str(hosts), "--ssh-config", str(sshd.config), "--remote-mr", REMOTE_MR,
                                "--output", str(tmp_path / "out.txt")], stderr=subprocess.PIPE, text=True)
    marker = re.escape(f"--data-dir {spread[1]}")
    wait_for(lambda: len(_remote_jobs(marker)) >= 2, "the remote coordinator and a worker started")
    [coordinator] = _remote_jobs(marker, oldest=True)
    os.kill(coordinator, signal.SIGKILL)
    wait_for(lambda: not _remote_jobs(marker), "the killed job's map workers died with it")
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1
    assert f"{spread[1]}): the remote job was killed by SIGKILL" in stderr


def test_ctrl_c_stops_the_remote_jobs(sshd, spread, tmp_path):
    """The job never finishes a ping: the remote jobs are gone only if Ctrl-C stopped them."""
    hosts = hosts_file(tmp_path, [f"{sshd.target} {machine}" for machine in spread[:2]])
    process = subprocess.Popen([sys.executable, str(ROOT / "bin" / "mr"), "cluster", "run", str(JOBS / "hangs.py"),
                                "--hosts", str(hosts), "--ssh-config", str(sshd.config), "--remote-mr", REMOTE_MR,
                                "--output", str(tmp_path / "out.txt")], stderr=subprocess.PIPE, text=True)
    marker = "--combine-only"
    wait_for(lambda: len(_remote_jobs(marker)) >= 2, "both remote jobs started")
    process.send_signal(signal.SIGINT)  # as Ctrl-C would (which also reaches ssh, started in its own session)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    wait_for(lambda: not _remote_jobs(marker), "the remote jobs stopped")
    assert not (tmp_path / "out.txt").exists()
