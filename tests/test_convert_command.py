"""`mr convert` end to end: record logs and exports -> storage layout -> reader, counts matching the summary."""

from __future__ import annotations

import gzip
import json
import re

import pytest

from converter import Definitions, encode_record
from storage import find_files

from .conftest import HISTOGRAMS_JSON, raw_histogram, raw_payload, run_mr

OCT_11_2013 = 1381449600000 + 3600_000  # 2013-10-11 01:00 UTC


@pytest.fixture(scope="module")
def definitions() -> Definitions:
    return Definitions.load(str(HISTOGRAMS_JSON))


def payload(server, definitions, n: int, **info) -> dict:
    histograms = {
        "A11Y_CONSUMERS": raw_histogram(definitions.usable["A11Y_CONSUMERS"], {n % 11: n + 1}, sum=n),
        "GC_MS": raw_histogram(definitions.usable["GC_MS"], {0: 1, 5: n}, sum=5 * n),
    }
    return raw_payload(server.revision_url(), histograms, **info)


def path_of(uuid: str, channel: str = "nightly") -> str:
    return f"{uuid}/saved-session/Firefox/22.0a1/{channel}/20130226031002"


def summary_counts(stdout: str) -> dict[str, int]:
    return {key.strip(): int(value.replace(",", "")) for key, value in
            re.findall(r"^\s*([a-zA-Z][\w \-]*?):\s+([\d,]+)\b", stdout, re.M)}


def convert(tmp_path, server, *inputs, extra=()):
    return run_mr("convert", *map(str, inputs), "--storage", str(tmp_path / "store"),
                  "--histogram-cache", str(tmp_path / "cache"), "--repository", f"http://127.0.0.1:{server.port}/",
                  *extra)


def test_record_logs_round_trip_into_storage(tmp_path, histogram_server, definitions):
    v1 = tmp_path / "v1.log"
    v2 = tmp_path / "v2.log"
    expected = {}
    with open(v1, "wb") as f:
        for n in range(30):
            body = payload(histogram_server, definitions, n, appUpdateChannel="nightly" if n % 2 else "beta")
            expected[f"v1-{n}"] = body
            f.write(encode_record(path_of(f"v1-{n}"), gzip.compress(json.dumps(body).encode()), OCT_11_2013))
        f.write(b"\x00\x01garbage")
        f.write(encode_record(path_of("bad-json"), b"{nope", OCT_11_2013))
        unknown = raw_payload(histogram_server.revision_url("0000dead"), {})
        f.write(encode_record(path_of("unknown-rev"), json.dumps(unknown).encode(), OCT_11_2013))
    with open(v2, "wb") as f:
        for n in range(20):
            body = payload(histogram_server, definitions, n)
            body["histograms"]["NOT_A_HISTOGRAM"] = body["histograms"]["GC_MS"]
            expected[f"v2-{n}"] = body
            f.write(encode_record(path_of(f"v2-{n}"), json.dumps(body).encode(), OCT_11_2013, ip="192.0.2.1"))

    result = convert(tmp_path, histogram_server, v1, v2, extra=("--workers", "2", "--rejected",
                                                                str(tmp_path / "rejected.log")))
    assert result.returncode == 0, result.stderr
    counts = summary_counts(result.stdout)
    assert counts["records read"] == 53
    assert counts["converted"] == 50
    assert counts["rejected"] == 1 and counts["no usable revision"] == 1
    assert counts["damaged"] == 2 and counts["bad separator"] == 1 and counts["bad JSON"] == 1
    assert counts["histograms dropped"] == 20 and counts["unknown name"] == 20

    stored = {}
    for f in find_files(str(tmp_path / "store")):
        assert f.path.endswith(".lzma")
        for uuid, text in f.open():
            stored[uuid] = (f.dimensions, json.loads(text))
    assert set(stored) == set(expected)
    dims, converted = stored["v1-3"]
    assert dims == ("saved_session", "Firefox", "nightly", "22.0a1", "20130226031002", "20131011")
    assert stored["v1-4"][0][2] == "beta"
    assert converted["ver"] == 2
    a11y = [0] * 12
    a11y[3] = 4
    assert converted["histograms"]["A11Y_CONSUMERS"] == a11y + [3, -1, -1, -1, -1]
    assert converted["histograms"]["GC_MS"][:6] == [1, 0, 0, 0, 0, 3]
    assert "NOT_A_HISTOGRAM" not in stored["v2-0"][1]["histograms"]

    rejected = (tmp_path / "rejected.log").read_text().splitlines()
    assert [line.split("\t")[:2] for line in rejected] == [["unknown-rev", "no usable revision"]]
    assert (tmp_path / "cache" / f"127.0.0.1_{histogram_server.port}" / "mozilla-central" / "8d3810543edc"
            / "Histograms.json").exists()
    assert f"revision 0000dead (http://127.0.0.1:{histogram_server.port}/mozilla-central): " in result.stdout


def test_exports_need_a_submission_date(tmp_path, histogram_server, definitions):
    export = tmp_path / "export.txt"
    export.write_text("id-1\t" + json.dumps(payload(histogram_server, definitions, 1)) + "\n")
    result = convert(tmp_path, histogram_server, export)
    assert result.returncode == 2 and "give --submission-date YYYYMMDD" in result.stderr

    result = convert(tmp_path, histogram_server, export, extra=("--submission-date", "20131012", "--workers", "1"))
    assert result.returncode == 0, result.stderr
    [stored] = find_files(str(tmp_path / "store"))
    assert stored.dimensions[-1] == "20131012"
    assert [uuid for uuid, _ in stored.open()] == ["id-1"]


def test_strict_mode_rejects_payloads_with_bad_histograms(tmp_path, histogram_server, definitions):
    log = tmp_path / "in.log"
    body = payload(histogram_server, definitions, 1)
    body["histograms"]["GC_MS"]["bucket_count"] = 3
    log.write_bytes(encode_record(path_of("x"), json.dumps(body).encode(), OCT_11_2013))
    result = convert(tmp_path, histogram_server, log, extra=("--strict",))
    counts = summary_counts(result.stdout)
    assert counts["converted"] == 0 and counts["histogram bucket_count mismatch"] == 1


def test_unreadable_input_fails_the_run_and_is_named(tmp_path, histogram_server, definitions):
    good = tmp_path / "good.log"
    good.write_bytes(encode_record(path_of("ok"), json.dumps(payload(histogram_server, definitions, 1)).encode(),
                                   OCT_11_2013))
    broken = tmp_path / "broken.log.lzma"
    broken.write_bytes(b"\x5d\x00\x00\x80\x00" + b"\xff" * 40)
    result = convert(tmp_path, histogram_server, good, broken, extra=("--submission-date", "20131011"))
    assert result.returncode == 1
    assert f"unreadable input: {broken}" in result.stdout
    assert summary_counts(result.stdout)["converted"] == 1


def test_missing_input_is_a_usage_error(tmp_path, histogram_server):
    result = convert(tmp_path, histogram_server, tmp_path / "nope.log")
    assert result.returncode == 2 and "no such input file" in result.stderr
