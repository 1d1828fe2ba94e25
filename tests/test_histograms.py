"""Histogram definitions: buckets equal the production converter's, expressions, unusable definitions."""

from __future__ import annotations

import json

import pytest

from converter import DefinitionError, Definitions
from converter.expressions import UnresolvedExpression, evaluate

from .conftest import BUCKETS_JSON, HISTOGRAMS_JSON, run_mr

PRODUCTION_KIND = {"exponential": "0", "linear": "1", "enumerated": "1", "boolean": "2", "flag": "3"}


@pytest.fixture(scope="module")
def definitions() -> Definitions:
    return Definitions.load(str(HISTOGRAMS_JSON))


@pytest.fixture(scope="module")
def production() -> dict:
    return json.loads(BUCKETS_JSON.read_text())["histograms"]


def test_every_usable_definition_matches_the_production_buckets(definitions, production):
    assert len(definitions.usable) == 588
    for name, histogram in definitions.usable.items():
        expected = production[name]
        assert list(histogram.buckets) == expected["buckets"], name
        assert (histogram.bucket_count, histogram.low, histogram.high) == (
            expected["bucket_count"], expected["min"], expected["max"]), name
        assert PRODUCTION_KIND[histogram.kind] == expected["kind"], name


def test_unusable_definitions_are_listed_with_their_reason(definitions, production):
    assert definitions.unusable == {
        "GC_REASON_2": "cannot resolve 'JS::gcreason::NUM_TELEMETRY_REASONS'",
        "STARTUP_MEASUREMENT_ERRORS": "cannot resolve 'mozilla::StartupTimeline::MAX_EVENT_ID'",
    }
    assert not set(definitions.unusable) & set(production)  # production could not use them either


def test_startup_names_use_the_definition_without_the_prefix(definitions, production):
    startup = [name for name in production if name.startswith("STARTUP_") and name not in definitions.usable]
    assert len(startup) > 100
    for name in startup:
        assert list(definitions.lookup(name).buckets) == production[name]["buckets"], name


def kinds(**specs) -> Definitions:
    return Definitions.from_json(json.dumps(specs))


@pytest.mark.parametrize("kind", ["boolean", "flag", "count"])
def test_two_valued_kinds(kind):
    assert kinds(H={"kind": kind}).usable["H"].buckets == (0, 1, 2)


def test_enumerated_is_linear_from_one_to_n_with_n_plus_one_buckets():
    histogram = kinds(H={"kind": "enumerated", "n_values": 5}).usable["H"]
    assert histogram.buckets == (0, 1, 2, 3, 4, 5)
    assert (histogram.low, histogram.high) == (1, 5)


def test_linear_rounds_evenly_spaced_bounds():
    assert kinds(H={"kind": "linear", "low": 1, "high": 100, "n_buckets": 6}).usable["H"].buckets == (
        0, 1, 26, 51, 75, 100)


def test_exponential_steps_by_at_least_one():
    assert kinds(H={"kind": "exponential", "low": 1, "high": 100, "n_buckets": 10}).usable["H"].buckets == (
        0, 1, 2, 3, 5, 9, 16, 29, 54, 100)


def test_low_defaults_to_one():
    assert kinds(H={"kind": "exponential", "high": "10 * 10", "n_buckets": 10}).usable["H"].low == 1


def test_expressions_in_numbers():
    assert evaluate("16 * 1024 * 1024") == 16777216
    assert evaluate("80 + 1") == 81
    assert evaluate("(3 + 1) * 2 - 1") == 7
    assert evaluate(12) == 12


@pytest.mark.parametrize("text", ["JS::gcreason::NUM", "__import__('os')", "len('x')", "2 ** 1000",
                                  "1 / 0", "1.5", "x + 1", True])
def test_anything_but_integer_arithmetic_is_unresolved(text):
    with pytest.raises(UnresolvedExpression):
        evaluate(text)


def test_a_broken_definition_does_not_stop_the_rest():
    loaded = kinds(A={"kind": "boolean"}, B={"kind": "linear", "n_buckets": 5}, C={"kind": "weird"},
                   D={"kind": "linear", "low": 10, "high": 5, "n_buckets": 4}, E="not an object")
    assert set(loaded.usable) == {"A"}
    assert loaded.unusable == {
        "B": "linear histogram without high", "C": "unknown kind 'weird'",
        "D": "impossible range: low 10, high 5, 4 buckets", "E": "definition is not an object"}


def test_a_file_that_is_not_definitions_is_an_error(tmp_path):
    path = tmp_path / "Histograms.json"
    path.write_text("[1, 2")
    with pytest.raises(DefinitionError, match="Histograms.json: not valid JSON"):
        Definitions.load(str(path))


def test_mr_histograms_prints_selected_definitions_as_json(production):
    result = run_mr("histograms", str(HISTOGRAMS_JSON), "A11Y_CONSUMERS", "STARTUP_HTTP_PAGE_DNS_ISSUE_TIME", "GC_REASON_2", "NOPE")
    assert result.returncode == 0
    printed = json.loads(result.stdout)
    assert printed["A11Y_CONSUMERS"]["kind"] == "enumerated"
    assert printed["STARTUP_HTTP_PAGE_DNS_ISSUE_TIME"]["buckets"] == production["STARTUP_HTTP_PAGE_DNS_ISSUE_TIME"]["buckets"]
    assert printed["GC_REASON_2"] == {"error": "cannot resolve 'JS::gcreason::NUM_TELEMETRY_REASONS'"}
    assert printed["NOPE"] == {"error": "not defined in this revision"}


def test_mr_histograms_prints_everything_by_default():
    printed = json.loads(run_mr("histograms", str(HISTOGRAMS_JSON)).stdout)
    assert len(printed) == 590


def test_mr_histograms_of_a_bad_file_exits_2(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    result = run_mr("histograms", str(bad))
    assert result.returncode == 2 and "not valid JSON" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("spec, reason", [
    ({"kind": "enumerated", "n_values": "2**62"}, "4,611,686,018,427,387,905 buckets, more than the 10,000 allowed"),
    ({"kind": "enumerated", "n_values": "2**64"}, "18,446,744,073,709,551,617 buckets, more than the 10,000 allowed"),
    ({"kind": "linear", "low": 1, "high": 10**8, "n_buckets": 50_000_000}, "50,000,000 buckets, more than"),
    ({"kind": "exponential", "high": "2**64 + 1", "n_buckets": 10}, "number out of range in '2**64 + 1'"),
    ({"kind": "linear", "high": 10**30, "n_buckets": 10}, "number out of range in '1000000000000000000000000000000'"),
])
def test_hostile_sizes_make_a_definition_unusable_at_once(spec, reason):
    loaded = kinds(H=spec, OK={"kind": "flag"})
    assert set(loaded.usable) == {"OK"}
    assert reason in loaded.unusable["H"]


def test_the_largest_sizes_allowed_still_work():
    loaded = kinds(E={"kind": "enumerated", "n_values": 9_999}, X={"kind": "exponential", "high": "2**64",
                                                                     "n_buckets": 100})
    assert loaded.usable["E"].bucket_count == 10_000
    assert loaded.usable["X"].high == 2**64 and loaded.usable["X"].bucket_count == 100


def test_a_file_with_too_many_definitions_or_buckets_is_refused():
    with pytest.raises(DefinitionError, match="20,001 definitions, more than the 20,000 allowed"):
        Definitions.from_json(json.dumps({f"H{i}": {"kind": "flag"} for i in range(20_001)}))
    big = {"kind": "linear", "high": 10_000, "n_buckets": 10_000}
    with pytest.raises(DefinitionError, match="more than the 1,000,000 buckets in all allowed"):
        Definitions.from_json(json.dumps({f"H{i}": big for i in range(101)}))


@pytest.mark.parametrize("text", ["2**2**2**30", "(2**64)**64", "((2**64)**64)**64", "2**64*2**64", "9" * 199,
                                  "1 << 100000", "2**-1"])
def test_expressions_that_would_take_time_or_memory_are_unresolved(text):
    with pytest.raises(UnresolvedExpression, match="out of range|cannot resolve"):
        evaluate(text)


def test_mr_histograms_reports_hostile_definitions_in_one_line_each(tmp_path):
    hostile = tmp_path / "Histograms.json"
    hostile.write_text(json.dumps({"A": {"kind": "enumerated", "n_values": "2**64"},
                                   "B": {"kind": "linear", "low": 1, "high": 10**8, "n_buckets": 50_000_000}}))
    result = run_mr("histograms", str(hostile))
    assert result.returncode == 0 and "Traceback" not in result.stderr
    printed = json.loads(result.stdout)
    assert printed["A"]["error"].endswith("buckets, more than the 10,000 allowed")
    assert printed["B"]["error"] == "50,000,000 buckets, more than the 10,000 allowed"
