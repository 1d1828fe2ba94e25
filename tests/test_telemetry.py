"""Job helpers: combiners for telemetry data, and the layout-change refusal."""

from __future__ import annotations

from collections import Counter

from mapreduce.telemetry import count_values, loads, merge_histogram_sets, merge_histograms, sum_values


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


def test_merge_histograms_adds_pings_and_arrays():
    context = Context()
    merge_histograms(("nightly", "27", "GC_MS"), [(1, [1, 2, 3]), (2, [10, 20, 30.5])], context)
    assert context.written == [(("nightly", "27", "GC_MS"), (3, [11, 22, 33.5]))]


def test_arrays_of_another_layout_are_refused_and_counted_by_name():
    context = Context()
    merge_histograms(("nightly", "27", "GC_MS"), [(1, [1, 2, 3]), (4, [1, 1]), (2, [1, 1, 1])], context)
    assert context.written == [(("nightly", "27", "GC_MS"), (3, [2, 3, 4]))]
    assert context.counters == {"histogram layout changed: GC_MS": 4}


def test_merge_histogram_sets_takes_raw_pings_and_merged_sets():
    context = Context()
    merge_histogram_sets("k", [{"A": [1, 2], "B": [5]}, {"A": (3, [10, 10])}, {"A": [1], "B": [1]}], context)
    assert context.written == [("k", {"A": (4, [11, 12]), "B": (2, [6])})]
    assert context.counters == {"histogram layout changed: A": 1}


def test_loads_reads_what_the_standard_library_reads():
    assert loads('{"a": [1, 2.5, null, true]}') == {"a": [1, 2.5, None, True]}
    assert loads('{"big": 123456789012345678901234567890, "nan": NaN}')["big"] == 123456789012345678901234567890
