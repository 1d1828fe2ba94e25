"""Hosts files and what ssh receives: hostile lines never reach ssh, good ones reach it as ``-l -p -- HOST``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mapreduce.errors import JobLoadError
from mapreduce.hosts import Host, Ssh, read_hosts

from .conftest import JOBS, ROOT, run_mr

REMOTE_MR = f"{sys.executable} {ROOT / 'bin' / 'mr'}"


def hosts_file(tmp_path: Path, line: str | bytes) -> Path:
    path = tmp_path / "hosts.txt"
    path.write_bytes(b"# test cluster\n" + (line if isinstance(line, bytes) else line.encode()) + b"\n")
    return path


@pytest.fixture
def recording_ssh(tmp_path) -> tuple[dict, Path]:
    """An environment whose first ``ssh`` on PATH records its argv (NUL-separated) and fails as ssh does."""
    bin_dir, record = tmp_path / "bin", tmp_path / "ssh-argv"
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text(f"#!/bin/sh\nprintf '%s\\0' ssh \"$@\" > '{record}'\nexit 255\n")
    (bin_dir / "ssh").chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}, record


def ssh_dry_run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """What the real ssh makes of an argv: with ``-G`` it prints the settings it would connect with, and exits
    (``-F /dev/null``: ignoring the ssh config of the machine running the tests)."""
    return subprocess.run([argv[0], "-G", "-F", os.devnull, *argv[1:]], capture_output=True, text=True, cwd=cwd)


# -- refused: one line, exit status 2, ssh never started ------------------------------------

HOSTILE = [
    ("-V", "the host name '-V' may only have"),
    ("-Qcipher", "the host name '-Qcipher' may only have"),
    ("-oProxyCommand=touch${IFS}pwned", "the host name '-oProxyCommand=touch${IFS}pwned' may only have"),
    ("-oProxyCommand=x@host", "the user name '-oProxyCommand=x' may only have"),
    ("user@-V", "the host name '-V' may only have"),
    ("$(touch${IFS}pwned)", "the host name '$(touch${IFS}pwned)' may only have"),
    ("ssh://user@host", "the user name 'ssh://user' may only have"),
    ("host:0", "the port '0' is not a number from 1 to 65535"),
    ("host:65536", "the port '65536' is not a number from 1 to 65535"),
    ("host:22x", "the port '22x' is not a number from 1 to 65535"),
    ("host:", "the port '' is not a number from 1 to 65535"),
    ("host:\uff12\uff12", "the port '\uff12\uff12' is not a number from 1 to 65535"),  # digits, but not ASCII
    ("::1", "'::1' is not [user@]host[:port]; an IPv6 address goes in brackets, e.g. [::1] or [::1]:22"),
    ("user@fe80::1:22", "'user@fe80::1:22' is not [user@]host[:port]; an IPv6 address goes in brackets"),
    ("[::1", "'[::1' is not [user@]host[:port]"),
    ("[::1]:0", "the port '0' is not a number from 1 to 65535"),
    ("[not-an-address]:22", "[not-an-address] is not an IPv6 address"),
    ("[fe80::1%$(reboot)]", "the zone '$(reboot)' of [fe80::1%$(reboot)] may only have"),
    ("[127.0.0.1]", "[127.0.0.1] is not an IPv6 address"),
    ("host relative/data", "the data dir must be an absolute path of printable characters (the job runs in a "
                           "temporary directory), not 'relative/data'"),
    ("host -oProxyCommand=x", "the data dir must be an absolute path of printable characters"),
    ("host /data/\x1b[2J", "the data dir must be an absolute path of printable characters (the job runs in a "
                          "temporary directory), not '/data/\\x1b[2J'"),
    ("host /data extra", "expected '[user@]host[:port] [data-dir]', got 'host /data extra'"),
]


@pytest.mark.parametrize("line, message", HOSTILE, ids=[line for line, _ in HOSTILE])
def test_a_hostile_or_bad_hosts_line_is_refused_naming_the_line(tmp_path, line, message):
    hosts = hosts_file(tmp_path, line)
    with pytest.raises(JobLoadError) as refused:
        read_hosts(str(hosts))
    assert str(refused.value).startswith(f"{hosts}:2: {message}") and "\n" not in str(refused.value)


@pytest.mark.parametrize("line", ["-V", "-oProxyCommand=x@host", "host:0", "::1", "host -oProxyCommand=x"])
def test_mr_cluster_check_refuses_a_hostile_hosts_file_in_one_line_exit_2_before_starting_ssh(tmp_path, recording_ssh,
                                                                                           line):
    env, record = recording_ssh
    hosts = hosts_file(tmp_path, line)
    result = run_mr("cluster", "check", "--hosts", str(hosts), env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"mr: ERROR: {hosts}:2: ") and result.stderr.count("\n") == 1
    assert result.stdout == "" and not record.exists()


def test_cluster_run_refuses_a_hostile_hosts_file_before_starting_ssh(tmp_path, recording_ssh):
    env, record = recording_ssh
    hosts = hosts_file(tmp_path, "-oProxyCommand=x@host /data")
    result = run_mr("cluster", "run", str(JOBS / "no_combine.py"), "--hosts", str(hosts), env=env)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert f"{hosts}:2: the user name '-oProxyCommand=x' may only have" in result.stderr
    assert not record.exists()


def test_a_hosts_file_that_is_not_utf8_is_one_line_exit_2(tmp_path, recording_ssh):
    env, record = recording_ssh
    hosts = hosts_file(tmp_path, b"host1 /data\nh\xf6st2 /data")
    result = run_mr("cluster", "check", "--hosts", str(hosts), env=env)
    assert result.returncode == 2
    assert result.stderr == f"mr: ERROR: {hosts}:3: not UTF-8 text (byte 0xf6); save the file as UTF-8\n"
    assert not record.exists()


@pytest.mark.parametrize("option, value", [("--remote-mr", "'unterminated"), ("--remote-mr", "  "),
                                           ("--remote-args", "'unterminated"), ("--remote-args", '-m "2')])
def test_a_remote_command_line_that_does_not_split_is_one_line_exit_2(tmp_path, recording_ssh, option, value):
    env, record = recording_ssh
    result = run_mr("cluster", "run", str(JOBS / "no_combine.py"), "--hosts", str(hosts_file(tmp_path, "host")),
                    option, value, env=env)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and option in result.stderr
    assert not record.exists()


# -- accepted: what ssh receives ---------------------------------------------------------------

ACCEPTED = [
    # hosts line, the argv's end before the remote command, what `ssh -G` makes of it (user, hostname, port)
    ("h_1.example.org", ["--", "h_1.example.org"], (None, "h_1.example.org", "22")),
    ("10.0.0.7:2222 /data", ["-p", "2222", "--", "10.0.0.7"], (None, "10.0.0.7", "2222")),
    ("alice@ingest-2:65535", ["-l", "alice", "-p", "65535", "--", "ingest-2"], ("alice", "ingest-2", "65535")),
    ("[::1]", ["--", "::1"], (None, "::1", "22")),
    ("[::1]:22", ["-p", "22", "--", "::1"], (None, "::1", "22")),
    ("bob.smith@[2001:db8::7]:2222 /srv/t",
     ["-l", "bob.smith", "-p", "2222", "--", "2001:db8::7"], ("bob.smith", "2001:db8::7", "2222")),
    ("[fe80::1%eth0]", ["--", "fe80::1%eth0"], (None, "fe80::1%eth0", "22")),
]


@pytest.mark.parametrize("line, argv_end, settings", ACCEPTED, ids=[line for line, _, _ in ACCEPTED])
def test_a_good_host_reaches_ssh_after_the_end_of_its_options(tmp_path, recording_ssh, line, argv_end, settings):
    env, record = recording_ssh
    result = run_mr("cluster", "check", "--hosts", str(hosts_file(tmp_path, line)), env=env)
    assert result.returncode == 1 and "UNREACHABLE" in result.stdout  # the recording ssh fails as ssh does
    argv = record.read_text().split("\0")[:-1]
    assert argv[:5] == ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
    assert argv[5:-1] == argv_end and "--version" in argv[-1]

    done = ssh_dry_run(argv, tmp_path)
    assert done.returncode == 0, done.stderr
    parsed = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    user, hostname, port = settings
    assert (parsed["hostname"], parsed["port"]) == (hostname, port)
    if user:
        assert parsed["user"] == user


@pytest.mark.parametrize("host", [Host("-V"), Host("-oProxyCommand=touch pwned"), Host("h", user="-V"),
                                  Host("h", user="-oProxyCommand=touch pwned")], ids=repr)
def test_even_a_host_not_from_a_hosts_file_is_never_an_ssh_option(tmp_path, host):
    """The second line of defence: whatever a Host holds, ssh reads it as a host or user name."""
    done = ssh_dry_run(Ssh().command(host, "true"), tmp_path)
    assert "OpenSSH_" not in done.stdout + done.stderr  # -V would print the version
    assert "proxycommand touch" not in done.stdout.lower()
    assert done.returncode == 255 or done.stdout.count(f"user {host.user}\n") == 1
    assert not (tmp_path / "pwned").exists()


def test_remote_mr_words_reach_the_host_literally(sshd, data, tmp_path):
    """--remote-mr is split like a shell would, and its words are quoted: a ';' in it runs nothing more."""
    pwned = tmp_path / "pwned"
    hosts = hosts_file(tmp_path, f"{sshd.target} {data}")
    result = run_mr("cluster", "run", str(JOBS / "no_combine.py"), "--hosts", str(hosts), "--ssh-config",
                    str(sshd.config), "--remote-mr", f"{REMOTE_MR} ; touch {pwned} ;",
                    "--output", str(tmp_path / "out.txt"))
    assert not pwned.exists()
    assert result.returncode == 1 and "invalid choice: ';'" in result.stderr, result.stderr  # a word, not a shell ;


def test_cluster_check_passes_remote_mr_words_literally_too(sshd, data, tmp_path):
    pwned = tmp_path / "pwned"
    hosts = hosts_file(tmp_path, f"{sshd.target} {data}")
    result = run_mr("cluster", "check", "--hosts", str(hosts), "--ssh-config", str(sshd.config),
                    "--remote-mr", f"{REMOTE_MR} ; touch {pwned} ;")
    assert not pwned.exists()
    assert result.returncode == 1 and "PROBLEM" in result.stdout


# -- a real sshd over IPv6 -----------------------------------------------------------------

@pytest.fixture(scope="module")
def sshd_on_ipv6(sshd, tmp_path_factory):
    """A second sshd of the session's sshd (its config and keys) that also listens on [::1], and a
    known_hosts file that names it so."""
    directory = tmp_path_factory.mktemp("sshd6")
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        port = s.getsockname()[1]
    key_type, key = (sshd.directory / "host_key.pub").read_text().split()[:2]
    known_hosts = directory / "known_hosts"
    known_hosts.write_text(f"[::1]:{port} {key_type} {key}\n")
    with open(directory / "sshd.log", "wb") as log:
        process = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(sshd.directory / "sshd_config"),
                                    "-p", str(port), "-o", "ListenAddress=::1", "-o", f"PidFile={directory}/pid"],
                                   stdout=subprocess.DEVNULL, stderr=log)
    probe = ["ssh", "-F", str(sshd.config), "-o", f"UserKnownHostsFile={known_hosts}", "-p", str(port),
             "-l", sshd.user, "--", "::1", "true"]
    deadline = time.monotonic() + 20
    while subprocess.run(probe, capture_output=True).returncode != 0:
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(f"the IPv6 sshd did not start: {(directory / 'sshd.log').read_text()}")
        time.sleep(0.2)
    yield port, known_hosts
    process.terminate()
    process.wait(timeout=10)


def test_a_bracketed_ipv6_host_reaches_a_real_sshd(sshd, sshd_on_ipv6, data, tmp_path):
    port, known_hosts = sshd_on_ipv6
    hosts = hosts_file(tmp_path, f"{sshd.user}@[::1]:{port} {data}")
    result = run_mr("cluster", "check", "--hosts", str(hosts), "--ssh-config", str(sshd.config),
                    "--ssh-option", f"UserKnownHostsFile={known_hosts}", "--remote-mr", REMOTE_MR)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(f"{sshd.user}@[::1]:{port} ({data}): reachable, mr ")
    assert result.stdout.rstrip().endswith(": OK")

    out = tmp_path / "out.txt"
    result = run_mr("cluster", "run", str(JOBS / "no_combine.py"), "--hosts", str(hosts), "--ssh-config",
                    str(sshd.config), "--ssh-option", f"UserKnownHostsFile={known_hosts}", "--remote-mr", REMOTE_MR,
                    "--output", str(out))
    assert result.returncode == 0, result.stderr
    single = tmp_path / "single.txt"
    assert run_mr("run", str(JOBS / "no_combine.py"), "--data-dir", str(data), "--output", str(single)).returncode == 0
    assert out.read_bytes() == single.read_bytes()
