"""The C histogram helpers and their Python twin agree on everything, damaged and hostile input included.

Property-based (Hypothesis): random and mutated ping texts, random histogram sets, and packed sets cut short or
with bits flipped must give the same result in both twins, or a ValueError in both. Run under AddressSanitizer
by .ci/run, so a read past a buffer in the C version fails the run even where the results happen to agree.
"""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mapreduce import histsum
from mapreduce.telemetry import unpack_histograms

from .twins import _histsum, requires_c, twin  # noqa: F401 (twin is a fixture)

# Deterministic (the same examples on every run, as CI needs) and without a database left in the checkout.
settings.register_profile("twins", deadline=None, database=None, derandomize=True, max_examples=300,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TWINS = settings.get_profile("twins")


def text_outcome(module, text: str | bytes) -> str:
    """What histograms_of makes of ``text``: its histograms as ``{name: (1, array)}``, or 'ValueError'."""
    try:
        result = module.histograms_of(text)
    except ValueError:
        return "ValueError"
    return repr(unpack_histograms(result) if isinstance(result, bytes) else
                {name: (1, array) for name, array in result.items()})


def merge_outcome(merge, values: list) -> str:
    """What a merge makes of ``values``: the result, or 'error' (any exception but these fails the test). Which
    of two faults in one input is met first may differ between the twins, so the kind is tested elsewhere."""
    try:
        return repr(merge(values))
    except (ValueError, TypeError):
        return "error"


def assert_twins_agree_on_text(text: str | bytes) -> str:
    outcome = text_outcome(histsum, text)
    assert text_outcome(_histsum, text) == outcome, text
    return outcome


# ---- random ping texts ----------------------------------------------------------------------------------

NUMBER_TEXT = st.from_regex(r"-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,22})?([eE][+-]?[0-9]{1,3})?", fullmatch=True)
ELEMENT_TEXT = st.one_of(
    NUMBER_TEXT, st.integers().map(str), st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["true", "null", '"1"', "[]", "{}", "NaN", "-Infinity", "1e400", "18446744073709551616",
                     "-9223372036854775809", "9223372036854775807", "-0", "-0.0", "4611686018427387904"]))
NAME = st.one_of(st.sampled_from(["A", "B", "GC_MS", "é", "😀", "histograms"]), st.text(max_size=8))
SPACE = st.sampled_from(["", " ", "\n\t "])


@st.composite
def name_text(draw, name: str) -> str:
    """A name as JSON, sometimes with every character escaped (surrogate pairs for astral ones)."""
    if draw(st.booleans()):
        return json.dumps(name, ensure_ascii=draw(st.booleans()))
    return '"' + "".join(f"\\u{unit:04x}" for unit in struct.unpack(f"<{len(name.encode('utf-16-le')) // 2}H",
                                                                      name.encode("utf-16-le"))) + '"'


@st.composite
def histograms_text(draw) -> str:
    members = []
    for name in draw(st.lists(NAME, max_size=6)):
        if draw(st.integers(0, 9)) == 0:
            value = draw(st.sampled_from(['"x"', "3", "{}", "null", "[[1]]"]))
        else:
            value = "[" + ",".join(draw(SPACE) + e for e in draw(st.lists(ELEMENT_TEXT, max_size=6))) + "]"
        members.append(draw(name_text(name)) + draw(SPACE) + ":" + value)
    return "{" + ",".join(members) + "}"


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5) |
                           st.floats(allow_nan=False, allow_infinity=False),
                           lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3),
                                                                                              children, max_size=3),
                           max_leaves=8)


@st.composite
def ping_texts(draw) -> str:
    """A ping's JSON text: members before and after, "histograms" perhaps twice, perhaps with escapes."""
    members = [f"{json.dumps(key)}:{json.dumps(value)}" for key, value in
               draw(st.dictionaries(st.text(max_size=4), JSON_VALUES, max_size=3)).items()]
    for _ in range(draw(st.integers(1, 2))):
        key = draw(st.sampled_from(['"histograms"', '"histogr\\u0061ms"', '"Histograms"']))
        members.insert(draw(st.integers(0, len(members))), key + ":" + draw(histograms_text()))
    return draw(SPACE) + "{" + ",".join(members) + "}" + draw(SPACE)


MUTATIONS = [b'"', b"\\", b"[", b"]", b"{", b"}", b",", b":", b"NaN", b"1e400", b"\x00", b"\xff", b"\xc3",
             b"\xed\xa0\x80", b"\\ud800", b'"histograms":', b"-", b".", b"e", b"0", b" "]


@st.composite
def mutated(draw, text: bytes) -> bytes:
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["delete", "insert", "flip", "repeat"]))
        if action == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 4)):]
        elif action == "insert":
            text = text[:at] + draw(st.sampled_from(MUTATIONS)) + text[at:]
        elif action == "flip" and at < len(text):
            text = text[:at] + bytes([text[at] ^ (1 << draw(st.integers(0, 7)))]) + text[at + 1:]
        else:
            text = text[:at] + text[at:at + draw(st.integers(1, 12))] + text[at:]
    return text


@requires_c
@TWINS
@given(ping_texts())
def test_the_twins_read_random_pings_alike(text):
    assert_twins_agree_on_text(text)
    assert_twins_agree_on_text(text.encode())


@requires_c
@TWINS
@given(st.data())
def test_the_twins_refuse_mutated_pings_alike(data):
    text = data.draw(mutated(data.draw(ping_texts()).encode()))
    assert_twins_agree_on_text(text)
    try:
        as_str = text.decode("utf-8", "surrogateescape")  # a str with lone surrogates where the bytes were bad
    except UnicodeDecodeError:
        return
    assert_twins_agree_on_text(as_str)


# ---- what the issue found ----------------------------------------------------------------------------------

def test_a_duplicate_name_keeps_its_last_value_in_its_first_place(twin):
    """As json.loads: {"A": [1, 2], "A": [10, 20]} is one ping with A = [10, 20] (C once counted two)."""
    text = '{"histograms": {"A": [1, 2], "B": [5], "A": [10, 20]}}'
    merged, _ = twin.merge_sets([twin.histograms_of(text)])
    assert list(merged.items()) == [("A", (1, [10, 20])), ("B", (1, [5]))]
    # a bad value given first is replaced too; a bad value given last is what counts
    assert twin.merge_sets([twin.histograms_of('{"histograms": {"A": "x", "A": [1]}}')])[0] == {"A": (1, [1])}
    with pytest.raises(ValueError, match="not an array"):
        twin.histograms_of('{"histograms": {"A": [1], "A": "x"}}')
    with pytest.raises(ValueError, match="not an object"):
        twin.histograms_of('{"histograms": {"A": [1]}, "histograms": 3}')
    assert twin.merge_sets([twin.histograms_of('{"histograms": 3, "histogr\\u0061ms": {"\\u0041": [1]}}')])[0] == {
        "A": (1, [1])}


@pytest.mark.parametrize("text, message", [
    ('{"histograms": {"A": [NaN]}}', "NaN and Infinity"),
    ('{"nan": NaN, "histograms": {"A": [1]}}', "NaN and Infinity"),
    ('{"histograms": {"A": [-Infinity]}}', "NaN and Infinity"),
    ('{"histograms": {"A": [1e400]}}', "beyond the largest float"),
    ('{"histograms": {"A": [' + "9" * 400 + "]}}", "beyond the largest float"),
    (b'{"os": "\xff", "histograms": {"A": [1]}}', "UTF-8"),
    (b'{"histograms": {"\xed\xa0\x80": [1]}}', "UTF-8"),
    ('{"os": "\ud800", "histograms": {"A": [1]}}', "lone surrogate"),
    ('{"histograms": {"A\\ud800": [1]}}', "lone surrogate"),
    ('{"histograms": {"A": [1, null]}}', "not a number"),
    ("[" * 100_000, "JSON"),
    ('{"histograms": {}, "deep": ' + "[" * 100_000 + "]" * 100_000 + "}", "1024"),
])
def test_what_is_not_a_pings_standard_json_is_a_value_error_naming_it(twin, text, message):
    with pytest.raises(ValueError, match=message):
        twin.histograms_of(text)


def test_more_than_1024_levels_of_nesting_is_refused_by_both_twins_on_every_path(twin):
    for other in ('"x"', '"\\ud800"'):  # a lone surrogate escape: orjson refuses it, the standard library reads it
        nested = "[" * 1022 + "]" * 1022
        twin.histograms_of('{"histograms": {}, "a": [' + nested + "], " + '"b": ' + other + "}")  # 1024 levels
        with pytest.raises(ValueError, match="1024"):
            twin.histograms_of('{"histograms": {}, "a": [[' + nested + "]], " + '"b": ' + other + "}")


def test_an_integer_sum_beyond_64_bits_is_a_value_error_and_an_exact_one_is_not(twin):
    """Four values of 2**62 summed to 0 in C (undefined behaviour) and 2**64 in Python."""
    for values in ([{"A": [2**62]}] * 4, [twin.histograms_of('{"histograms": {"A": [4611686018427387904]}}')] * 4):
        for merge in (twin.merge_sets, twin.merge_packed):
            with pytest.raises(ValueError, match="'A': the sum of element 0 does not fit in 64 bits"):
                merge(values)
    # the sum is exact until written: going past 2**63 and back is not an overflow
    assert twin.merge_sets([{"A": [2**62]}] * 2 + [{"A": [-2**62]}] * 2)[0] == {"A": (4, [0])}
    with pytest.raises(ValueError, match="number of pings does not fit"):
        twin.merge_sets([{"A": (2**62, [1])}] * 2)
    with pytest.raises(ValueError, match="does not fit in 64 bits"):
        twin.merge_sets([{"A": [2**64]}])
    with pytest.raises(ValueError, match="not a finite number"):
        twin.merge_sets([{"A": [1e308]}, {"A": [1e308]}])


def packed(*histograms: tuple[str, int, list[tuple[int, bytes]], list[float]], count: int | None = None) -> bytes:
    """A packed set written byte by byte: (name, pings, [(kind, 8 bytes)], partials) per histogram."""
    out = [histsum.MAGIC, struct.pack("<I", len(histograms) if count is None else count)]
    for name, pings, elements, partials in histograms:
        out.append(struct.pack("<H", len(name.encode())) + name.encode() + struct.pack("<QI", pings, len(elements)))
        out.extend(bytes([kind]) + bits for kind, bits in elements)
        out.append(struct.pack(f"<{len(partials)}d", *partials))
    return b"".join(out)


ONE = struct.pack("<q", 1)
DAMAGED = {
    "kind 3 (C read partials past the end)": packed(("A", 1, [(3, struct.pack("<Q", 2))], [])),
    "a count of 4 billion histograms": packed(count=2**32 - 1),
    "more partials than there are bytes": packed(("A", 1, [(2, struct.pack("<Q", 2**61))], [1.0])),
    "pings of 2**63": packed(("A", 2**63, [(0, ONE)], [])),
    "a NaN float": packed(("A", 1, [(1, struct.pack("<d", float("nan")))], [])),
    "an infinite partial": packed(("A", 1, [(2, struct.pack("<Q", 1))], [float("inf")])),
    "a name that is not UTF-8": packed(("A", 1, [(0, ONE)], [])).replace(b"A", b"\xff"),
    "a name twice": packed(("A", 1, [(0, ONE)], []), ("A", 1, [(0, ONE)], [])),
    "bytes after the last histogram": packed(("A", 1, [(0, ONE)], [])) + b"\0",
    "cut short": packed(("A", 1, [(0, ONE)], []))[:-1],
    "no header": b"HS2\0" + bytes(4),
    "nothing": b"",
}


@pytest.mark.parametrize("value", DAMAGED.values(), ids=DAMAGED.keys())
def test_damaged_packed_data_is_a_value_error_saying_so(twin, value):
    good = packed(("A", 1, [(0, ONE)], []))
    for values in ([value], [good, value], [value, good]):
        for merge in (twin.merge_sets, twin.merge_packed):
            with pytest.raises(ValueError, match="packed histogram data is damaged"):
                merge(values)


# ---- random and damaged histogram sets ----------------------------------------------------------------------

NUMBERS = st.one_of(st.integers(-10**6, 10**6), st.integers(-2**63, 2**63 - 1), st.floats(-1e12, 1e12),
                    st.sampled_from([0.1, -0.0, 1e308, 2**62, -2**63, 5e-324]))
ODD_ELEMENTS = st.sampled_from([None, "1", True, float("nan"), float("inf"), 2**64, -2**63 - 1, [1], (1.5,)])
ARRAYS = st.lists(NUMBERS, min_size=0, max_size=4)


@st.composite
def histogram_sets(draw, odd: bool = False) -> dict:
    histograms = {}
    for name in draw(st.lists(st.sampled_from(["A", "B", "C", "é"]), max_size=4)):
        array = draw(ARRAYS)
        if odd and array and draw(st.integers(0, 3)) == 0:
            array[draw(st.integers(0, len(array) - 1))] = draw(ODD_ELEMENTS)
        entry = array if draw(st.booleans()) else (draw(st.integers(0, 10**6)), array)
        if odd and draw(st.integers(0, 9)) == 0:
            entry = draw(st.sampled_from([(1,), (-1, array), (1.0, array), (2**63, array), "x", {1: 2},
                                          (1, "ab"), (1, array, 2)]))
        histograms[name] = entry
    if odd and draw(st.integers(0, 9)) == 0:
        histograms[draw(st.sampled_from([1, None, ("A",)]))] = [1]
    return histograms


@requires_c
@TWINS
@given(st.lists(histogram_sets(), max_size=8), st.data())
def test_the_twins_merge_random_sets_to_the_same_bits(values, data):
    outcome = merge_outcome(_histsum.merge_sets, values)
    assert merge_outcome(histsum.merge_sets, values) == outcome
    if outcome == "error":  # a sum beyond 64 bits or the largest float
        return
    assert _histsum.merge_packed(values) == histsum.merge_packed(values)  # the same bytes from either machine
    # ... and packed parts merged again give the same sums in either twin (unless a part's sum overflows, or
    # a layout change makes which array came first, and so which are refused, depend on the grouping)
    cut = data.draw(st.integers(0, len(values)))
    parts = [merge_outcome(_histsum.merge_packed, values[:cut]), merge_outcome(histsum.merge_packed, values[cut:])]
    if "error" not in parts and not _histsum.merge_sets(values)[1]:
        regrouped = [_histsum.merge_packed(values[:cut])[0], histsum.merge_packed(values[cut:])[0]]
        merged = repr(_histsum.merge_sets(values)[0])
        assert repr(_histsum.merge_sets(regrouped)[0]) == repr(histsum.merge_sets(regrouped)[0]) == merged


@requires_c
@TWINS
@given(st.lists(histogram_sets(odd=True), max_size=5))
def test_the_twins_refuse_odd_sets_alike(values):
    assert merge_outcome(histsum.merge_sets, values) == merge_outcome(_histsum.merge_sets, values)
    assert merge_outcome(histsum.merge_packed, values) == merge_outcome(_histsum.merge_packed, values)


@requires_c
@TWINS
@given(st.lists(histogram_sets(), min_size=1, max_size=4), st.data())
def test_the_twins_read_packed_sets_cut_short_or_with_bits_flipped_alike(values, data):
    try:
        value = _histsum.merge_packed(values)[0]
    except ValueError:  # a sum beyond 64 bits: nothing to damage
        return
    for _ in range(data.draw(st.integers(1, 3))):
        action = data.draw(st.sampled_from(["cut", "flip", "byte", "append"]))
        at = data.draw(st.integers(0, max(len(value) - 1, 0)))
        if action == "cut":
            value = value[:at]
        elif action == "flip" and value:
            value = value[:at] + bytes([value[at] ^ (1 << data.draw(st.integers(0, 7)))]) + value[at + 1:]
        elif action == "byte" and value:
            value = value[:at] + bytes([data.draw(st.sampled_from([0, 1, 2, 3, 0x7F, 0xFF]))]) + value[at + 1:]
        else:
            value += data.draw(st.binary(max_size=12))
    more = data.draw(st.lists(histogram_sets(), max_size=2))
    for merge in (_histsum.merge_sets, _histsum.merge_packed):
        python_merge = getattr(histsum, merge.__name__)
        assert merge_outcome(merge, [value] + more) == merge_outcome(python_merge, [value] + more)
        assert merge_outcome(merge, more + [value]) == merge_outcome(python_merge, more + [value])
