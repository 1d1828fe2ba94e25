"""Where definitions may come from: only allowed repositories, over http(s), staying on their host, bounded.

Payloads are written by anyone, so a payload's revision URL must never make the
converter connect somewhere, nor plant definitions that later payloads use.
The servers here are real HTTP servers on 127.0.0.1 that record every request.
"""

from __future__ import annotations

import gzip
import http.server
import json
import threading
import time

import pytest

from converter import RevisionCache, encode_record, split_revision
from converter import download
from converter.download import DownloadRefused, http_get
from converter.revisions import MAX_FAILED_FETCHES
from converter.repositories import DEFAULT_REPOSITORIES, AllowedRepositories, UntrustedRepository

from .conftest import REVISION, HistogramServer, raw_payload, run_mr

OTHER_SPECS = {"ONLY_IN_THE_PLANTED_FILE": {"kind": "flag"}}


@pytest.fixture
def hostile_server():
    server = HistogramServer()
    server.documents[REVISION] = json.dumps(OTHER_SPECS).encode()
    yield server
    server.close()


def allowing(tmp_path, *servers, **kwargs) -> RevisionCache:
    return RevisionCache(str(tmp_path / "cache"), repositories=tuple(f"http://127.0.0.1:{s.port}/" for s in servers),
                         backoff=0.01, **kwargs)


def test_a_revision_on_another_server_causes_no_request_and_plants_nothing(tmp_path, histogram_server,
                                                                         hostile_server):
    revisions = allowing(tmp_path, histogram_server)
    hostile = f"http://127.0.0.1:{hostile_server.port}/evil/rev/{REVISION}"
    assert revisions.resolve(hostile) is None
    assert hostile_server.requests == [] and histogram_server.requests == []
    [reason] = revisions.failures.values()
    assert f"repository http://127.0.0.1:{hostile_server.port}/evil is not an allowed repository" in reason

    # a later, genuine payload of the same revision gets the allowed repository's definitions
    genuine = revisions.resolve(histogram_server.revision_url())
    assert len(genuine.usable) == 588 and "ONLY_IN_THE_PLANTED_FILE" not in genuine.usable
    assert hostile_server.requests == []


def test_the_cache_is_keyed_by_repository_and_revision(tmp_path, histogram_server, hostile_server):
    both = allowing(tmp_path, histogram_server, hostile_server)
    other = f"http://127.0.0.1:{hostile_server.port}/mozilla-central/rev/{REVISION}"
    assert set(both.resolve(other).usable) == {"ONLY_IN_THE_PLANTED_FILE"}
    assert len(both.resolve(histogram_server.revision_url()).usable) == 588
    # a new run, from the disk cache alone: each repository still has its own copy
    from_disk = allowing(tmp_path, histogram_server, hostile_server, url_template=None)
    assert set(from_disk.resolve(other).usable) == {"ONLY_IN_THE_PLANTED_FILE"}
    assert len(from_disk.resolve(histogram_server.revision_url()).usable) == 588
    assert not (tmp_path / "cache" / REVISION).exists()  # the hand-filled place is never written


def test_hand_filled_definitions_are_trusted_for_any_repository(tmp_path, hostile_server):
    (tmp_path / "cache" / REVISION).mkdir(parents=True)
    (tmp_path / "cache" / REVISION / "Histograms.json").write_text(json.dumps({"H": {"kind": "flag"}}))
    revisions = RevisionCache(str(tmp_path / "cache"))
    assert set(revisions.resolve(f"http://127.0.0.1:{hostile_server.port}/x/rev/{REVISION}").usable) == {"H"}
    assert hostile_server.requests == []


@pytest.mark.parametrize("revision", [
    "file:///etc/rev/8d3810543edc",
    "ftp://127.0.0.1:{port}/mozilla-central/rev/8d3810543edc",
    "http://127.0.0.1:{port}@127.0.0.1:{other}/mozilla-central/rev/8d3810543edc",
    "http://user@127.0.0.1:{port}/mozilla-central/rev/8d3810543edc",
    "http://127.0.0.1:{other}/mozilla-central/rev/8d3810543edc",
    "http://127.0.0.1.nip.io:{port}/mozilla-central/rev/8d3810543edc",
    "http://127.0.0.1:{port}/a/../../b/rev/8d3810543edc",
    "http://127.0.0.1:{port}/a%2f..%2fb/rev/8d3810543edc",
    "http://127.0.0.1:{port}/a?x=/rev/8d3810543edc",
    "http://127.0.0.1:{port}/a#/rev/8d3810543edc",
    "http://127.0.0.1:{port}/a\\b/rev/8d3810543edc",
    "http://127.0.0.1:{port}/a\nb/rev/8d3810543edc",
])
def test_tricky_repository_urls_are_refused_without_a_request(tmp_path, histogram_server, hostile_server,
                                                              revision):
    revisions = allowing(tmp_path, histogram_server)
    assert revisions.resolve(revision.format(port=histogram_server.port, other=hostile_server.port)) is None
    assert histogram_server.requests == [] and hostile_server.requests == []
    [reason] = revisions.failures.values()
    assert "\n" not in reason


def test_the_default_allows_the_production_repositories_as_payloads_name_them_over_https():
    allowed = AllowedRepositories(DEFAULT_REPOSITORIES)
    _, url = allowed.source("http://hg.mozilla.org/releases/mozilla-release")
    assert url == "https://hg.mozilla.org/releases/mozilla-release"
    assert allowed.source("https://HG.mozilla.org/mozilla-central")[1] == "https://hg.mozilla.org/mozilla-central"
    for refused in ("http://hg.mozilla.org.evil.example/mozilla-central", "http://hg.mozilla.org:8080/x",
                    "http://evil.example/hg.mozilla.org/x", "https://hg.mozilla.org@evil.example/x"):
        with pytest.raises(UntrustedRepository):
            allowed.source(refused)


def test_a_prefix_allows_only_the_repositories_below_it():
    allowed = AllowedRepositories(["https://hg.example/releases/"])
    assert allowed.source("http://hg.example/releases/mozilla-beta")[1] == "https://hg.example/releases/mozilla-beta"
    for refused in ("http://hg.example/releases-evil/x", "http://hg.example/users/x", "http://hg.example/"):
        with pytest.raises(UntrustedRepository):
            allowed.source(refused)


class Misbehaving:
    """A real HTTP server on 127.0.0.1 answering every GET with what ``answer`` says: (status, headers,
    body), the body as bytes or as pieces sent one by one (then without a length: the connection closes)."""

    def __init__(self, answer):
        owner = self
        self.requests: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                owner.requests.append(self.path)
                status, headers, body = answer(self.path)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if isinstance(body, bytes):
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                for chunk in [body] if isinstance(body, bytes) else body:  # a body may arrive in pieces
                    self.wfile.write(chunk)
                    self.wfile.flush()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers():
    started = []

    def start(answer) -> Misbehaving:
        started.append(Misbehaving(answer))
        return started[-1]

    yield start
    for server in started:
        server.close()


def test_a_redirect_to_another_host_or_scheme_is_not_followed(servers, histogram_server):
    target = f"http://127.0.0.1:{histogram_server.port}/mozilla-central/raw-file/{REVISION}/x"
    for location in (target, "file:///etc/passwd"):
        redirecting = servers(lambda path, location=location: (302, {"Location": location}, b""))
        with pytest.raises(DownloadRefused, match="not followed"):
            http_get(f"http://127.0.0.1:{redirecting.port}/a", 1000)
        assert redirecting.requests == ["/a"]
    assert histogram_server.requests == []


def test_a_redirect_on_the_same_server_is_followed(servers):
    server = servers(lambda path: (302, {"Location": "/b"}, b"") if path == "/a" else (200, {}, b"{}"))
    assert http_get(f"http://127.0.0.1:{server.port}/a", 1000) == b"{}"
    assert server.requests == ["/a", "/b"]


def test_a_compressed_or_oversized_body_is_refused(servers):
    gzipped = servers(lambda path: (200, {"Content-Encoding": "gzip"}, gzip.compress(b"{}" + b" " * 10**6)))
    with pytest.raises(DownloadRefused, match="gzip-encoded body, which was not asked for"):
        http_get(f"http://127.0.0.1:{gzipped.port}/a", 1000)
    large = servers(lambda path: (200, {}, b" " * 2000))
    with pytest.raises(DownloadRefused, match="larger than 1,000 bytes"):
        http_get(f"http://127.0.0.1:{large.port}/a", 1000)
    assert http_get(f"http://127.0.0.1:{large.port}/a", 2000) == b" " * 2000


def test_other_schemes_are_never_fetched():
    with pytest.raises(DownloadRefused, match="only http and https"):
        http_get("file:///etc/passwd", 10**6)


def test_an_oversized_definitions_file_is_a_reported_failure(tmp_path, histogram_server):
    histogram_server.documents[REVISION] = b"{" + b" " * (16 * 1024 * 1024) + b"}"
    revisions = allowing(tmp_path, histogram_server)
    assert revisions.resolve(histogram_server.revision_url()) is None
    [reason] = revisions.failures.values()
    assert "larger than 16,777,216 bytes" in reason and len(histogram_server.requests) == 1  # not retried


def test_mr_convert_refuses_payloads_naming_other_servers(tmp_path, histogram_server, hostile_server):
    log = tmp_path / "in.log"
    hostile = raw_payload(f"http://127.0.0.1:{hostile_server.port}/evil/rev/{REVISION}", {})
    genuine = raw_payload(histogram_server.revision_url(), {})
    path = "{}/saved-session/Firefox/22.0a1/nightly/20130226031002"
    log.write_bytes(encode_record(path.format("bad"), json.dumps(hostile).encode(), 1381449600000)
                    + encode_record(path.format("good"), json.dumps(genuine).encode(), 1381449600000))
    result = run_mr("convert", str(log), "--storage", str(tmp_path / "store"), "--histogram-cache",
                    str(tmp_path / "cache"), "--repository", f"http://127.0.0.1:{histogram_server.port}/")
    assert result.returncode == 0, result.stderr
    assert hostile_server.requests == [] and len(histogram_server.requests) == 1
    assert "converted:     1\n" in result.stdout and "no usable revision: 1" in result.stdout
    assert "is not an allowed repository (mr convert --repository adds one)" in result.stdout


@pytest.mark.parametrize("option, value, message", [
    ("--repository", "file:///srv/hg/", "only http and https repositories are fetched from"),
    ("--repository", "http://user:secret@hg.example/", "not a plain repository URL"),
    ("--revision-url", "{repo}/raw-file/{rev}/{path}", "may only use the fields {repo} and {rev}"),
    ("--revision-url", "file:///srv/{rev}/Histograms.json", "is not an http or https URL"),
    ("--max-payload-size", "0", "not a positive number of megabytes"),
])
def test_bad_fetch_options_are_usage_errors(tmp_path, option, value, message):
    (tmp_path / "in.log").write_bytes(b"")
    result = run_mr("convert", str(tmp_path / "in.log"), "--storage", str(tmp_path / "store"), option, value)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr



def test_a_body_dripping_in_slowly_is_given_up(servers, monkeypatch):
    monkeypatch.setattr(download, "FETCH_DEADLINE", 1)

    class Drip:
        def __iter__(self):
            for _ in range(40):
                time.sleep(0.1)
                yield b" "

    drip = servers(lambda path: (200, {}, Drip()))
    with pytest.raises(DownloadRefused, match="still arriving after 1 s; given up"):
        http_get(f"http://127.0.0.1:{drip.port}/a", 1000)


def test_a_run_stops_fetching_after_many_failures(tmp_path, histogram_server):
    revisions = allowing(tmp_path, histogram_server)
    for n in range(MAX_FAILED_FETCHES + 10):
        assert revisions.resolve(histogram_server.revision_url(f"{n:012x}")) is None
    assert len(histogram_server.requests) == MAX_FAILED_FETCHES
    assert sum("fetches failed already in this run" in why for why in revisions.failures.values()) == 10


def test_revision_ids_are_short():
    assert split_revision("http://hg.mozilla.org/x/rev/" + "a" * 64)[0] == "a" * 64
    assert split_revision("http://hg.mozilla.org/x/rev/" + "a" * 65)[0] is None


def test_one_revision_is_loaded_once_however_payloads_spell_its_repository(tmp_path, histogram_server):
    (tmp_path / "cache" / "a55c55edf302").mkdir(parents=True)
    (tmp_path / "cache" / "a55c55edf302" / "Histograms.json").write_text(json.dumps({"H": {"kind": "flag"}}))
    revisions = allowing(tmp_path, histogram_server)
    hand_filled = {id(revisions.resolve(f"http://evil{n}.example/x/rev/a55c55edf302")) for n in range(100)}
    assert len(hand_filled) == 1
    spellings = [f"{scheme}://127.0.0.1:{histogram_server.port}{path}/rev/{REVISION}"
                 for scheme in ("http", "https") for path in ("/mozilla-central", "//mozilla-central/")]
    assert len({id(revisions.resolve(spelling)) for spelling in spellings}) == 1
    assert len(histogram_server.requests) == 1
