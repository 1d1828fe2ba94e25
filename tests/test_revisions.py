"""The revision cache against a real HTTP server on 127.0.0.1: memory, disk, fetch, retries, fallback."""

from __future__ import annotations

import json
import socket

import pytest

from converter import DefinitionError, RevisionCache, split_revision

from .conftest import REVISION


def cache(server, tmp_path, **kwargs) -> RevisionCache:
    kwargs.setdefault("backoff", 0.01)
    return RevisionCache(str(tmp_path / "cache"), repositories=(f"http://127.0.0.1:{server.port}/",), **kwargs)


def failure(revisions: RevisionCache, rev: str) -> str:
    """Why ``rev`` could not be had (failures are named by revision and repository)."""
    [reason] = [why for name, why in revisions.failures.items() if name.split()[0] == rev]
    return reason


def test_fetches_once_then_serves_from_memory_and_disk(histogram_server, tmp_path):
    revisions = cache(histogram_server, tmp_path)
    url = histogram_server.revision_url()
    definitions = revisions.resolve(url)
    assert len(definitions.usable) == 588
    assert histogram_server.requests == [
        f"/mozilla-central/raw-file/{REVISION}/toolkit/components/telemetry/Histograms.json"]
    kept = tmp_path / "cache" / f"127.0.0.1_{histogram_server.port}" / "mozilla-central" / REVISION / "Histograms.json"
    assert kept.read_bytes() == histogram_server.documents[REVISION]
    assert revisions.resolve(url) is definitions
    assert len(cache(histogram_server, tmp_path).resolve(url).usable) == 588  # a new run reads the disk copy
    assert len(histogram_server.requests) == 1


def test_server_errors_are_retried(histogram_server, tmp_path):
    histogram_server.failures[REVISION] = 2
    revisions = cache(histogram_server, tmp_path, retries=3)
    assert revisions.resolve(histogram_server.revision_url()) is not None
    assert len(histogram_server.requests) == 3 and revisions.failures == {}


def test_persistent_failures_are_reported_once_and_remembered(histogram_server, tmp_path):
    histogram_server.failures[REVISION] = 10
    revisions = cache(histogram_server, tmp_path, retries=2)
    assert revisions.resolve(histogram_server.revision_url()) is None
    assert revisions.resolve(histogram_server.revision_url()) is None
    assert len(histogram_server.requests) == 3
    assert failure(revisions, REVISION).endswith("HTTP 500 (after 3 attempts)")


def test_a_missing_revision_is_not_retried(histogram_server, tmp_path):
    revisions = cache(histogram_server, tmp_path)
    assert revisions.resolve(histogram_server.revision_url("0000beef")) is None
    assert len(histogram_server.requests) == 1 and "HTTP 404" in failure(revisions, "0000beef")


def test_an_unreachable_server_is_a_reported_failure(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    revisions = RevisionCache(str(tmp_path), repositories=(f"http://127.0.0.1:{port}/",), retries=1, backoff=0.01)
    assert revisions.resolve(f"http://127.0.0.1:{port}/repo/rev/abc") is None
    assert "after 2 attempts" in failure(revisions, "abc")


def test_hand_filled_cache_works_without_fetching(tmp_path):
    (tmp_path / "a55c55edf302").mkdir()
    (tmp_path / "a55c55edf302" / "Histograms.json").write_text(json.dumps({"H": {"kind": "flag"}}))
    revisions = RevisionCache(str(tmp_path), url_template=None)
    assert set(revisions.resolve("http://hg.mozilla.org/releases/mozilla-release/rev/a55c55edf302").usable) == {"H"}
    assert revisions.resolve("http://hg.mozilla.org/x/rev/bbbb") is None
    assert revisions.failures == {"bbbb (http://hg.mozilla.org/x)": "not in the cache and fetching is off"}


def test_fallback_by_channel_and_build_id_then_version(histogram_server, tmp_path):
    fallback = {"nightly": {"20130226031002": histogram_server.revision_url()},
                "release": {"21.0": histogram_server.revision_url()}}
    revisions = cache(histogram_server, tmp_path, fallback=fallback)
    assert revisions.for_info({"appUpdateChannel": "nightly", "appBuildID": "20130226031002"}) is not None
    assert revisions.for_info({"appUpdateChannel": "release", "appBuildID": "1", "appVersion": "21.0"}) is not None
    assert revisions.for_info({"appUpdateChannel": "beta", "appBuildID": "1", "appVersion": "21.0"}) is None


def test_revision_ids_cannot_escape_the_cache_directory(tmp_path):
    assert split_revision("http://hg/x/rev/../../etc")[0] is None
    assert split_revision("http://hg/x/rev/..")[0] is None
    revisions = RevisionCache(str(tmp_path), url_template=None)
    assert revisions.resolve("../../etc/passwd") is None
    assert revisions.resolve("http://hg/x/rev/..") is None


def test_split_revision():
    assert split_revision("http://hg.mozilla.org/releases/mozilla-release/rev/a55c55edf302") == (
        "a55c55edf302", "http://hg.mozilla.org/releases/mozilla-release")
    assert split_revision("a55c55edf302") == ("a55c55edf302", None)


def test_revision_map_files_are_checked(tmp_path):
    good = tmp_path / "map.json"
    good.write_text(json.dumps({"nightly": {"20130226031002": "http://hg/m/rev/abc"}}))
    assert RevisionCache.load_fallback(str(good)) == {"nightly": {"20130226031002": "http://hg/m/rev/abc"}}
    for text, message in (("{", "not valid JSON"), ('{"nightly": ["abc"]}', "expected {channel:")):
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        with pytest.raises(DefinitionError, match=f"bad.json: {message}"):
            RevisionCache.load_fallback(str(bad))
