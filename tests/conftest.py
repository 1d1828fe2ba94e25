"""Shared fixtures: the real sample ping, a small store built through the writer, and running `mr`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from converter.synthetic import generate
from storage import LayoutWriter, Schema, find_files

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
REAL_STORE = DATA / "pings"
REAL_PING = (REAL_STORE / "saved_session" / "Firefox" / "nightly" / "22.0a1"
             / "20130226031002.20131011.v2.log.e28a4032eb744f089a1828ac7399e5d8.lzma")
REAL_DIMENSIONS = ["saved_session", "Firefox", "nightly", "22.0a1", "20130226031002", "20131011"]
REAL_UUID = "024b73d7-2e26-4545-8077-1cc930904eae"

# (reason, app, channel, version, build id, date) for the small store below.
STORE_DIMENSIONS = [
    ("saved-session", "Firefox", "nightly", "24.0a1", "20130601030202", "20130602"),
    ("saved-session", "Firefox", "nightly", "24.0a1", "20130603030202", "20130604"),
    ("saved-session", "Firefox", "release", "21.0", "20130511120000", "20130602"),
    ("idle-daily", "Firefox", "beta", "22.0", "20130520000000", "20130603"),
    ("saved-session", "Fennec", "aurora", "23.0a2", "20130530004003", "20130601"),
    ("saved-session", "Firefox", "esr", "17.0.6", "20130510000000", "20130602"),  # channel -> OTHER
]


def run_mr(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """Run the real `mr` command in a subprocess and capture its output."""
    return subprocess.run([sys.executable, str(ROOT / "bin" / "mr"), *args],
                          capture_output=True, text=True, timeout=120, **kwargs)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A store with three pings in each of STORE_DIMENSIONS' partitions, written as active logs."""
    base = tmp_path / "store"
    with LayoutWriter(str(base), Schema.default(), version=2) as writer:
        for n, dims in enumerate(STORE_DIMENSIONS):
            for i in range(3):
                writer.write(f"uuid-{n}-{i}", {"info": {"n": n, "i": i}}, list(dims))
    return base


# -- converter fixtures ----------------------------------------------------------------

HISTOGRAMS_JSON = DATA / "histograms" / "8d3810543edc.Histograms.json"
BUCKETS_JSON = DATA / "histograms" / "8d3810543edc.buckets.json"
REVISION = "8d3810543edc"


class HistogramServer:
    """A real HTTP server on 127.0.0.1 serving <repo>/raw-file/<rev>/toolkit/components/telemetry/Histograms.json.

    ``documents`` maps rev -> body; ``failures`` maps rev -> how many 500s to answer first.
    ``requests`` lists every path asked for.
    """

    def __init__(self):
        import http.server
        import threading

        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                parts = self.path.split("/")
                rev = parts[3] if len(parts) > 3 else ""
                if server.failures.get(rev, 0) > 0:
                    server.failures[rev] -= 1
                    self.send_error(500)
                elif rev in server.documents and self.path.endswith("/toolkit/components/telemetry/Histograms.json"):
                    body = server.documents[rev]
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                else:
                    self.send_error(404)

            def log_message(self, *args):
                pass

        self.documents: dict[str, bytes] = {REVISION: HISTOGRAMS_JSON.read_bytes()}
        self.failures: dict[str, int] = {}
        self.requests: list[str] = []
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def revision_url(self, rev: str = REVISION) -> str:
        return f"http://127.0.0.1:{self.port}/mozilla-central/rev/{rev}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def histogram_server():
    server = HistogramServer()
    yield server
    server.close()


def raw_histogram(definition, values: dict, **statistics) -> dict:
    """A histogram as the browser submits it (ver 1), for a computed definition."""
    histogram = {"range": [definition.low, definition.high], "bucket_count": definition.bucket_count,
                 "histogram_type": definition.type_code, "values": {str(k): v for k, v in values.items()}}
    histogram.update(statistics)
    return histogram


def raw_payload(revision_url: str, histograms: dict, **info) -> dict:
    base = {"reason": "saved-session", "appName": "Firefox", "appVersion": "22.0a1",
            "appUpdateChannel": "nightly", "appBuildID": "20130226031002", "OS": "WINNT",
            "revision": revision_url}
    base.update(info)
    return {"ver": 1, "info": base, "histograms": histograms, "simpleMeasurements": {"uptime": 7}}


# -- S3 fixtures ---------------------------------------------------------------------

S3_ENVIRONMENT = {"AWS_ACCESS_KEY_ID": "test-key", "AWS_SECRET_ACCESS_KEY": "test-secret",
                  "AWS_DEFAULT_REGION": "us-east-1"}


class S3Server:
    """A real S3-compatible server process (moto in server mode) on 127.0.0.1."""

    def __init__(self, log_path: Path):
        import socket
        import time
        import urllib.request

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        with open(log_path, "wb") as log:  # the server logs one line per request it serves
            self.process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                             "-p", str(self.port)], stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.url, timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("the S3 test server did not start")
                time.sleep(0.1)

    def client(self):
        import boto3
        return boto3.client("s3", endpoint_url=self.url, aws_access_key_id="test-key",
                            aws_secret_access_key="test-secret", region_name="us-east-1")

    def requests(self, bucket: str) -> list[str]:
        """The request lines ("GET /bucket?..." ) the server has logged for ``bucket`` so far."""
        import re
        lines = self.log_path.read_text(errors="replace").splitlines()
        found = [m.group(1) for m in map(re.compile(r'"([A-Z]+ /[^ ]* HTTP/[0-9.]+)"').search, lines) if m]
        return [r for r in found if r.split()[1].split("?")[0].strip("/").split("/")[0] == bucket]

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    os.environ.update(S3_ENVIRONMENT)  # for boto3 here and in every `mr` subprocess
    server = S3Server(tmp_path_factory.mktemp("s3") / "server.log")
    yield server
    server.stop()


@pytest.fixture
def bucket(s3_server, request) -> str:
    """A fresh, empty bucket for one test."""
    import re
    import zlib
    readable = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:45].strip("-")
    name = f"{readable}-{zlib.crc32(request.node.nodeid.encode()):08x}"  # parametrized tests differ only at the end
    s3_server.client().create_bucket(Bucket=name)
    return name


# -- engine fixtures -----------------------------------------------------------------

JOBS = Path(__file__).resolve().parent / "jobs"
SHIPPED = ROOT / "jobs"


@pytest.fixture(scope="session")
def data(tmp_path_factory) -> Path:
    """300 synthetic pings in lz4 files (fast to read), the same every time."""
    base = tmp_path_factory.mktemp("data") / "store"
    generate(str(base), 300, seed=7, codec="lz4", workers=2)
    return base


@pytest.fixture(scope="session")
def truth(data) -> dict:
    """What a plain loop over the same files finds: pings per channel and OS, and every uuid."""
    channels, oses, uuids = Counter(), Counter(), []
    for stored in find_files(str(data)):
        for uuid, text in stored.open():
            channels[stored.dimensions[2]] += 1
            oses[json.loads(text)["info"]["OS"]] += 1
            uuids.append((stored.dimensions[2], uuid))
    return {"channels": channels, "oses": oses, "uuids": uuids}


def mr_run(job: Path, data: Path, tmp_path: Path, *args: str, output: str = "out.txt", **kwargs):
    out = tmp_path / output
    result = run_mr("run", str(job), "--data-dir", str(data), "--output", str(out), *args, **kwargs)
    text = out.read_text() if out.exists() else None
    return result, text


def tsv(text: str) -> dict[str, str]:
    return dict(line.split("\t", 1) for line in text.splitlines())


# -- ssh fixtures --------------------------------------------------------------------

class SshServer:
    """A real sshd on 127.0.0.1 with a throwaway host key and user key, and an ssh_config that uses them."""

    def __init__(self, directory: Path):
        import getpass
        import socket
        import time

        self.directory = directory
        for key in ("host_key", "user_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(directory / key)], check=True)
        (directory / "authorized_keys").write_text((directory / "user_key.pub").read_text())
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        (directory / "sshd_config").write_text(f"""\
Port {self.port}
ListenAddress 127.0.0.1
HostKey {directory}/host_key
AuthorizedKeysFile {directory}/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
PidFile {directory}/sshd.pid
LogLevel ERROR
""")
        host_key = (directory / "host_key.pub").read_text().split()
        (directory / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {host_key[0]} {host_key[1]}\n")
        self.config = directory / "ssh_config"
        self.config.write_text(f"""\
Host *
  IdentityFile {directory}/user_key
  IdentitiesOnly yes
  UserKnownHostsFile {directory}/known_hosts
  StrictHostKeyChecking yes
  LogLevel ERROR
""")
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        self.user = getpass.getuser()
        with open(directory / "sshd.log", "wb") as log:
            self.process = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(directory / "sshd_config")],
                                            stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 20
        while subprocess.run(self.ssh("true"), capture_output=True).returncode != 0:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"the test sshd did not start: {(directory / 'sshd.log').read_text()}")
            time.sleep(0.2)

    @property
    def target(self) -> str:
        return f"{self.user}@127.0.0.1:{self.port}"

    def ssh(self, command: str) -> list[str]:
        return ["ssh", "-F", str(self.config), "-p", str(self.port), f"{self.user}@127.0.0.1", command]

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    if not Path("/usr/sbin/sshd").exists():
        pytest.fail("the cluster tests need a real sshd: install openssh-server (make test does)")
    server = SshServer(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


# -- conditions and faults ------------------------------------------------------------

def wait_for(condition, what: str, timeout: float = 60.0):
    """Poll ``condition`` until it returns something true (and return that); fail naming ``what`` if it
    never does. The timeout only guards against a hang: tests wait on the condition, not on the clock."""
    import time
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)
    return value


@pytest.fixture
def small_filesystem(tmp_path):
    """Mounts a tmpfs of a given size (kB), optionally read-only, and unmounts it afterwards: a real
    full or read-only disk. Needs root and a kernel that lets us mount (skips otherwise)."""
    mounts = []

    def mount(name: str, size_kb: int, read_only: bool = False) -> Path:
        point = tmp_path / name
        point.mkdir(mode=0o700)
        options = f"size={size_kb}k,mode=0700" + (",ro" if read_only else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
        mounts.append(point)
        return point

    yield mount
    for point in mounts:
        subprocess.run(["umount", "-l", str(point)], check=False)


def one_line_error(stderr: str) -> str:
    """The single line a failure must print (no traceback, nothing else)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]
