"""Job helpers: combiners for telemetry data, and the layout-change refusal."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from mapreduce import histsum, telemetry
from storage import find_files
from mapreduce.telemetry import (count_values, loads, merge_histogram_sets, merge_histograms, merged_histogram_sets,
                                 sum_values, unpack_histograms)

from .twins import _histsum, requires_c, twin  # noqa: F401 (twin is a fixture)


class Context:
    def __init__(self):
        self.written = []
        self.counters = Counter()

    def write(self, key, value):
        self.written.append((key, value))

    def increment(self, name, amount=1):
        self.counters[name] += amount


def test_sum_and_count():
    context = Context()
    sum_values("k", [1, 2, 3], context)
    count_values("k", [1, 2, 3], context)
    assert context.written == [("k", 6), ("k", 3)]


def test_merge_histograms_adds_pings_and_arrays(twin):
    context = Context()
    merge_histograms(("nightly", "27", "GC_MS"), [(1, [1, 2, 3]), (2, [10, 20, 30.5])], context)
    assert context.written == [(("nightly", "27", "GC_MS"), (3, [11, 22, 33.5]))]


def test_arrays_of_another_layout_are_refused_and_counted_by_name(twin):
    context = Context()
    merge_histograms(("nightly", "27", "GC_MS"), [(1, [1, 2, 3]), (4, [1, 1]), (2, [1, 1, 1])], context)
    assert context.written == [(("nightly", "27", "GC_MS"), (3, [2, 3, 4]))]
    assert context.counters == {"histogram layout changed: GC_MS": 4}


def test_merge_histogram_sets_takes_raw_pings_and_merged_sets_and_writes_a_compact_set(twin):
    context = Context()
    merge_histogram_sets("k", [{"A": [1, 2], "B": [5]}, {"A": (3, [10, 10])}, {"A": [1], "B": [1]}], context)
    [(key, compact)] = context.written
    assert type(compact) is bytes  # packed: a tenth of the memory, pickled by a copy
    assert merged_histogram_sets([compact], context) == {"A": (4, [11, 12]), "B": (2, [6])}
    assert context.counters == {"histogram layout changed: A": 1}


def test_loads_reads_what_the_standard_library_reads():
    assert loads('{"a": [1, 2.5, null, true]}') == {"a": [1, 2.5, None, True]}
    assert loads('{"big": 123456789012345678901234567890, "nan": NaN}')["big"] == 123456789012345678901234567890


@pytest.mark.parametrize("text", [
    "[" * 100_000, '{"nan": NaN, "a": ' + "[" * 100_000, "[" * 100_000 + "]" * 100_000,
    '{"nan": NaN, "a": ' + "[" * 100_000 + "]" * 100_000 + "}", b'{"a": "\xff"}', '{"a": 1', "", "NaN x",
])
def test_loads_refuses_every_bad_json_with_a_value_error(text):
    """orjson refuses these, and the standard library then raised RecursionError or UnicodeDecodeError."""
    with pytest.raises(ValueError):
        loads(text)


@pytest.mark.parametrize("fallback", ["", ', "nan": NaN'], ids=["orjson", "standard library"])
def test_loads_nests_1024_deep_whichever_parser_reads_the_text(fallback):
    nested = "[" * 1023 + "]" * 1023  # 1024 levels with the object around it
    value, depth = loads('{"a": ' + nested + fallback + "}")["a"], 1
    while value:
        value, depth = value[0], depth + 1
    assert depth == 1023  # lists, in the object: 1024 levels
    with pytest.raises(ValueError, match="1024"):
        loads('{"a": [' + nested + "]" + fallback + "}")


def random_histogram_sets(rng, count: int) -> list[dict]:
    """Pings' histogram sets and merged sets, with ints, floats, negative values and a layout change."""
    values = []
    for _ in range(count):
        histograms = {}
        for n in range(rng.randint(0, 8)):
            array = [rng.choice([rng.randint(0, 10**6), rng.random() * 1e4, rng.randint(-5, 5)])
                     for _ in range(rng.choice([3, 3, 3, 4]))]
            histograms[f"H{n}"] = array if rng.random() < 0.7 else (rng.randint(1, 50), array)
        values.append(histograms)
    return values


@requires_c
def test_the_c_sums_equal_the_python_twin_bit_for_bit():
    rng = random.Random(7)
    for _ in range(200):
        values = random_histogram_sets(rng, rng.randint(1, 60))
        (c_merged, c_refused), (py_merged, py_refused) = _histsum.merge_sets(values), histsum.merge_sets(values)
        assert repr(c_merged) == repr(py_merged) and c_refused == py_refused
        packed, packed_refused = _histsum.merge_packed(values)
        assert repr(unpack_histograms(packed)) == repr(py_merged) and packed_refused == py_refused
        assert packed == histsum.merge_packed(values)[0]  # the same bytes from either twin
        # a packed set merges into the same sums in either implementation, on any machine
        more = random_histogram_sets(rng, 5)
        (c_merged, c_refused), (py_merged, py_refused) = (_histsum.merge_sets([packed] + more),
                                                          histsum.merge_sets([packed] + more))
        assert repr(c_merged) == repr(py_merged) and c_refused == py_refused
    assert telemetry.merge_sets is _histsum.merge_sets  # and it is the one jobs use


@requires_c
def test_histograms_of_reads_the_pings_text_as_the_json_parser_does(data):
    texts = [text for stored in find_files(str(data))[:20] for _, text in stored.open()]
    for text in texts:
        assert repr(unpack_histograms(_histsum.histograms_of(text))) == repr(
            {name: (1, array) for name, array in histsum.histograms_of(text).items()})
    packed = [_histsum.histograms_of(text) for text in texts]
    assert repr(_histsum.merge_sets(packed)) == repr(histsum.merge_sets([histsum.histograms_of(t) for t in texts]))


@pytest.mark.parametrize("text", [
    '{"histograms": {"A": [1, 2]', '{"histograms": {"A": [1, 2,]}}', '{"histograms": {"A": [1, null]}}',
    '{"histograms": {"A": 3}}', '{"histograms": []}', '{"info": {}}', '[1, 2]', '{"histograms": {}} x',
    '{"a": "\\q", "histograms": {}}', '{"a": tru, "histograms": {}}', '{"histograms": {"A": [01]}}',
    '{"histograms": {"A": [1e]}}'
])
def test_histograms_of_refuses_what_is_not_a_pings_json_with_a_value_error(twin, text):
    with pytest.raises(ValueError):
        twin.histograms_of(text)


@requires_c
def test_histograms_of_reads_every_number_form_exactly():
    text = ('{"x": {"s": "a\\"b\\u00e9", "l": [true, false, null, -1.5e3]}, "histograms": {"A": '
            '[0, -0, 7, -9223372036854775808, 9223372036854775807, 0.1, -0.0, 1e2, 2.5E-3, 123456789.123456789, '
            '0.30000000000000004, 9223372036854775808, -9223372036854775809, 99999999999999999999]}}')
    assert repr(unpack_histograms(_histsum.histograms_of(text))["A"][1]) == repr(histsum.histograms_of(text)["A"])


def test_integer_columns_stay_exact_integers_and_float_columns_become_floats(twin):
    values = [{"A": [2**52, 1, 0.5]}, {"A": [1, 2, 0.25]}, {"A": (3, [1, 3, 1])}]
    merged, refused = twin.merge_sets(values)
    assert merged == {"A": (5, [2**52 + 2, 6, 1.75])} and refused == {}
    assert [type(v) for v in merged["A"][1]] == [int, int, float]


def test_a_non_number_in_a_histogram_is_a_type_error_naming_it(twin):
    with pytest.raises(TypeError, match="not a number"):
        twin.merge_sets([{"A": [1, None]}])


def test_float_sums_are_exact_whatever_the_grouping(twin):
    """Machines, bundles and combine passes group values differently; the sums must not notice."""
    merge_packed, merge = twin.merge_packed, twin.merge_sets
    rng = random.Random(11)
    pings = [{"A": [rng.choice([rng.random() * 10 ** rng.randint(-3, 12), rng.randint(0, 9)]) * rng.choice([1, -1])
                    for _ in range(3)]} for _ in range(400)]
    whole, _ = merge(pings)
    for _ in range(5):
        shuffled = pings[:]
        rng.shuffle(shuffled)
        cuts = sorted(rng.sample(range(1, len(pings)), 7))
        groups = [shuffled[a:b] for a, b in zip([0] + cuts, cuts + [len(pings)])]
        partials = [merge_packed(group)[0] for group in groups]
        regrouped, _ = merge([merge_packed(partials[:3])[0]] + partials[3:])
        assert repr(regrouped) == repr(whole)
    columns = list(zip(*(ping["A"] for ping in pings)))
    assert whole["A"][1] == [math.fsum(column) for column in columns]  # the correctly rounded exact sum
