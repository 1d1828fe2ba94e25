"""Converting payloads: compact arrays value by value, and every validation rule counted by reason."""

from __future__ import annotations

import json

import pytest

from converter import Converter, Definitions, Rejected, RevisionCache

from .conftest import raw_histogram, raw_payload

REV_URL = "http://hg.example/mozilla-central/rev/abc123"
SPECS = {
    "EXP": {"kind": "exponential", "low": 1, "high": 100, "n_buckets": 10},
    "LIN": {"kind": "linear", "low": 1, "high": 100, "n_buckets": 6},
    "BOOL": {"kind": "boolean"},
    "FLAG": {"kind": "flag"},
    "ENUM": {"kind": "enumerated", "n_values": 5},
    "COUNT": {"kind": "count"},
}


@pytest.fixture
def definitions() -> Definitions:
    return Definitions.from_json(json.dumps(SPECS))


@pytest.fixture
def converter(tmp_path, definitions) -> Converter:
    (tmp_path / "abc123").mkdir()
    (tmp_path / "abc123" / "Histograms.json").write_text(json.dumps(SPECS))
    return Converter(RevisionCache(str(tmp_path), url_template=None))


def histogram(definitions, name, values, **statistics):
    return raw_histogram(definitions.usable[name], values, **statistics)


def test_every_kind_becomes_counts_at_their_lower_bounds_then_statistics(converter, definitions):
    stats = dict(sum=10, log_sum=1.5, log_sum_squares=2.5, sum_squares_lo=3, sum_squares_hi=4)
    payload = raw_payload(REV_URL, {
        "EXP": histogram(definitions, "EXP", {0: 1, 5: 2, 100: 3}, **stats),
        "LIN": histogram(definitions, "LIN", {26: 4, 75: 1}, sum=7),
        "BOOL": histogram(definitions, "BOOL", {0: 3, 1: 9}, sum=9),
        "FLAG": histogram(definitions, "FLAG", {1: 1}),
        "ENUM": histogram(definitions, "ENUM", {1: 1, 5: 2}, sum=11),
        "COUNT": histogram(definitions, "COUNT", {0: 6}, sum=6),
    })
    converted = converter.convert(payload)
    assert converted["histograms"] == {
        "EXP": [1, 0, 0, 0, 2, 0, 0, 0, 0, 3, 10, 1.5, 2.5, 3, 4],
        "LIN": [0, 0, 4, 0, 1, 0, 7, -1, -1, -1, -1],
        "BOOL": [3, 9, 0, 9, -1, -1, -1, -1],
        "FLAG": [0, 1, 0, -1, -1, -1, -1, -1],
        "ENUM": [0, 1, 0, 0, 0, 2, 11, -1, -1, -1, -1],
        "COUNT": [6, 0, 0, 6, -1, -1, -1, -1],
    }
    assert converted["ver"] == 2
    assert converted["info"] == payload["info"] and converted["simpleMeasurements"] == {"uptime": 7}
    assert converter.stats.converted == 1 and not converter.stats.histograms_dropped


def test_startup_prefix_uses_the_plain_definition(converter, definitions):
    payload = raw_payload(REV_URL, {"STARTUP_ENUM": histogram(definitions, "ENUM", {2: 5})})
    assert converter.convert(payload)["histograms"]["STARTUP_ENUM"] == [0, 0, 5, 0, 0, 0, -1, -1, -1, -1, -1]


def bad_histograms(definitions) -> dict:
    good = histogram(definitions, "ENUM", {1: 1})
    return {
        "unknown name": ("NOT_DEFINED", good),
        "bucket_count mismatch": ("ENUM", dict(good, bucket_count=7)),
        "range mismatch": ("ENUM", dict(good, range=[1, 6])),
        "histogram_type mismatch": ("ENUM", dict(good, histogram_type=0)),
        "bad bucket": ("ENUM", dict(good, values={"3": 1, "6": 1})),
        "non-integer count": ("ENUM", dict(good, values={"1": 1.5})),
        "not an object": ("ENUM", [1, 2, 3]),
    }


@pytest.mark.parametrize("reason", ["unknown name", "bucket_count mismatch", "range mismatch",
                                    "histogram_type mismatch", "bad bucket", "non-integer count", "not an object"])
def test_a_bad_histogram_is_dropped_and_counted(converter, definitions, reason):
    name, bad = bad_histograms(definitions)[reason]
    payload = raw_payload(REV_URL, {name: bad, "FLAG": histogram(definitions, "FLAG", {0: 1})})
    converted = converter.convert(payload)
    assert set(converted["histograms"]) == {"FLAG"}
    assert converter.stats.histograms_dropped == {reason: 1}


@pytest.mark.parametrize("values", [{"x": 1}, {"1": "2"}, {"1": True}])
def test_odd_bucket_keys_and_counts(converter, definitions, values):
    payload = raw_payload(REV_URL, {"ENUM": dict(histogram(definitions, "ENUM", {}), values=values)})
    assert converter.convert(payload)["histograms"] == {}
    assert sum(converter.stats.histograms_dropped.values()) == 1


def test_strict_mode_rejects_the_whole_payload(tmp_path, converter, definitions):
    strict = Converter(converter.revisions, strict=True)
    name, bad = bad_histograms(definitions)["bad bucket"]
    with pytest.raises(Rejected, match="histogram bad bucket"):
        strict.convert(raw_payload(REV_URL, {name: bad}))
    assert strict.stats.rejected == {"histogram bad bucket": 1} and strict.stats.converted == 0


@pytest.mark.parametrize("payload, reason", [
    ([1, 2], "not a JSON object"),
    ({"ver": 1, "histograms": {}}, "no info"),
    ({"ver": 1, "info": {"appUpdateChannel": "nightly"}, "histograms": {}}, "no revision"),
    (raw_payload("http://hg.example/mozilla-central/rev/fffff", {}), "no usable revision"),
    (dict(raw_payload(REV_URL, {}), histograms=[1]), "histograms is not an object"),
])
def test_unusable_payloads_are_rejected_and_counted(converter, payload, reason):
    with pytest.raises(Rejected, match=reason):
        converter.convert(payload)
    assert converter.stats.rejected == {reason: 1} and converter.stats.read == 1
