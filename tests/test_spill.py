"""Spill runs: plain data round-trips exactly, anything else is refused naming its key, damage is always caught."""

from __future__ import annotations

import collections
import math
import pickle
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mapreduce.context import CombineContext, MapContext
from mapreduce.keys import order_key
from mapreduce.plain import NotPlainData
from mapreduce.spill import DamagedRunError, read_run, write_run

from .conftest import JOBS, mr_run

characters = st.one_of(st.characters(exclude_categories=()), st.sampled_from(["\ud800", "\udfff", "\x00"]))
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=-2 ** 200, max_value=2 ** 200),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(characters, max_size=8),
                    st.binary(max_size=16))
hashable = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3).map(tuple), max_leaves=6)
plain = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.lists(inner, max_size=4).map(tuple),
                                                     st.dictionaries(hashable, inner, max_size=3)), max_leaves=12)


def same(a, b) -> bool:
    """Equal and of the same types all the way down: tuples are not lists, 1 is not 1.0 or True, NaN is NaN."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return struct.pack("<d", a) == struct.pack("<d", b)
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(map(same, a, b))
    if type(a) is dict:
        return len(a) == len(b) and all(same(ka, kb) and same(va, vb)
                                        for (ka, va), (kb, vb) in zip(a.items(), b.items()))
    return a == b


def entries_of(pairs) -> list:
    return [(order_key(key), (number, 0), key, values) for number, (key, values) in enumerate(pairs)]


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pairs=st.lists(st.tuples(plain, st.lists(plain, min_size=1, max_size=4)), max_size=40))
def test_plain_data_comes_back_exactly(tmp_path, pairs):
    entries = entries_of(pairs)
    write_run(str(tmp_path / "r.run"), entries)
    back = list(read_run(str(tmp_path / "r.run")))
    assert len(back) == len(entries) and all(map(same, back, entries))


def test_many_entries_and_big_values_cross_batches(tmp_path):
    entries = entries_of([((f"key{n:05d}", n), [b"x" * (n * 37 % 4000), n / 3, [n] * (n % 7)]) for n in range(20000)])
    write_run(str(tmp_path / "r.run"), entries)
    assert list(read_run(str(tmp_path / "r.run"))) == entries


def test_a_reducers_output_run_holds_ordered_keys_and_text(tmp_path):
    entries = [(order_key(n), f"{n}\t{n * 2}\n") for n in range(1000)] + [(order_key("\ud800"), "\ud800\n")]
    write_run(str(tmp_path / "out.run"), entries)
    assert list(read_run(str(tmp_path / "out.run"))) == entries


@pytest.fixture
def small_run(tmp_path) -> tuple[Path, list, bytes]:
    entries = entries_of([(("nightly", "Linux"), [3]), ("x", [1.5, None, (1, [2])]), (2 ** 70, [b"\x00\xff"])])
    path = tmp_path / "small.run"
    write_run(str(path), entries)
    return path, entries, path.read_bytes()


def test_every_flipped_bit_is_caught_naming_the_file_or_changes_nothing(small_run):
    """A few bits of an lz4 frame are not read at all (e.g. the last sequence's match length): flipping them
    changes nothing. Every other flip is an error naming the file, and no entry read before it is wrong."""
    path, entries, data = small_run
    caught = 0
    for bit in range(len(data) * 8):
        damaged = bytearray(data)
        damaged[bit // 8] ^= 1 << bit % 8
        path.write_bytes(damaged)
        read = []
        try:
            for entry in read_run(str(path)):
                read.append(entry)
        except DamagedRunError as e:
            assert str(e).startswith(f"work dir file {path} is damaged (")
            assert str(e).endswith("); the work dir's disk may be failing; rerun the job")
            caught += 1
        else:
            assert read == entries, f"bit {bit} gave wrong entries"
        assert read == entries[:len(read)], f"bit {bit} gave wrong entries"
    assert caught > len(data) * 8 * 0.95


def test_a_run_cut_short_anywhere_is_caught(small_run):
    path, entries, data = small_run
    for length in range(len(data)):
        path.write_bytes(data[:length])
        with pytest.raises(DamagedRunError, match="is damaged"):
            list(read_run(str(path)))


def test_a_pickle_in_the_work_dir_is_damage_not_code(tmp_path):
    marker = tmp_path / "ran"

    class Planted:
        def __reduce__(self):
            return (marker.write_text, ("code ran",))

    planted = tmp_path / "planted.run"
    planted.write_bytes(pickle.dumps([Planted()]))
    with pytest.raises(DamagedRunError):
        list(read_run(str(planted)))
    assert not marker.exists()


@pytest.mark.parametrize("key, values, message", [
    ("h", [{1, 2}], "wrote a value of type set for key 'h'"),
    ("h", [1, (2, {3})], "wrote a value containing a set for key 'h'"),
    ("c", [collections.Counter(a=1)], "wrote a value of type Counter for key 'c'"),
    ("p", [collections.namedtuple("Point", "x y")(1, 2)], "wrote a value of type Point for key 'p'"),
    ("o", [[object()]], "wrote a value containing a object for key 'o'"),
])
def test_a_value_that_is_not_plain_data_is_refused_naming_its_key(tmp_path, key, values, message):
    entries = entries_of([("fine", [1]), (key, values)])
    with pytest.raises(NotPlainData) as caught:
        write_run(str(tmp_path / "r.run"), entries)
    assert str(caught.value).startswith(message)
    assert "keys and values must be plain data (str, int, float, bool, None, bytes" in str(caught.value)


@pytest.mark.parametrize("key, message", [
    (("a", frozenset()), "wrote a key containing a frozenset (('a', frozenset()))"),
    ([1, {2: object()}], "wrote a key containing a object ([1, {2: <object object at "),
    (collections.namedtuple("Point", "x y")(1, 2), "wrote a key of type Point (Point(x=1, y=2))"),
])
def test_a_key_that_is_not_plain_data_cannot_be_ordered(key, message):
    """Every key the engine orders (and spills) is plain data of exact types: a subclass would come back as its
    base type, so a named tuple key would print differently after a spill."""
    with pytest.raises(NotPlainData) as caught:
        order_key(key)
    assert str(caught.value).startswith(message)


def test_lone_surrogates_come_back_in_keys_values_and_text(tmp_path):
    entries = entries_of([("\ud800", ["x\udfff"]), (["\udc00"], [("\ud801", ["\ud802"])])])
    write_run(str(tmp_path / "r.run"), entries)
    assert list(read_run(str(tmp_path / "r.run"))) == entries
    texts = [(order_key("\ud800"), "\ud800\tx\n")]
    write_run(str(tmp_path / "out.run"), texts)
    assert list(read_run(str(tmp_path / "out.run"))) == texts


def test_the_map_context_refuses_a_value_or_key_of_another_type_at_the_write():
    context = MapContext(None, 1 << 30, lambda: None)
    context.write(("fine", 1), [1, {"a": (2,)}])
    with pytest.raises(NotPlainData, match="wrote a value of type set for key 'x'"):
        context.write("x", {1})
    with pytest.raises(NotPlainData, match=r"wrote a key of type set \(\{1\}\)"):
        context.write({1}, 1)
    with pytest.raises(NotPlainData, match="wrote a key of type Decimal"):
        context.write(__import__("decimal").Decimal(1), 1)
    with pytest.raises(NotPlainData, match="wrote a value of type object for key 'y'"):
        CombineContext().write("y", object())


def test_map_writing_a_set_fails_naming_map_the_key_and_the_line(data, tmp_path):
    result, _ = mr_run(JOBS / "writes_a_set.py", data, tmp_path)
    assert result.returncode == 1
    assert "map() raised NotPlainData: wrote a value of type set for key 'channels'; keys and values must be " \
           "plain data" in result.stderr
    assert "writes_a_set.py\", line 5" in result.stderr


def test_a_damaged_spill_run_fails_the_job_naming_the_file(data, tmp_path):
    """The job's finish_map flips a byte in the middle of every run its worker spilled; the reducer reads them."""
    work = tmp_path / "work"
    work.mkdir()
    result, _ = mr_run(JOBS / "damages_its_spills.py", data, tmp_path, "-m", "1", "-w", str(work))
    assert result.returncode == 1, result.stderr
    [line] = [line for line in result.stderr.splitlines() if "is damaged" in line]
    assert f"work dir file {work}" in line and ".run is damaged (" in line
    assert line.endswith("the work dir's disk may be failing; rerun the job")
    assert "Traceback" not in result.stderr and not (tmp_path / "out.txt").exists()


def test_nan_and_big_numbers_stay_what_they_were(tmp_path):
    values = [math.nan, -0.0, math.inf, 2 ** 64, -2 ** 63 - 1, 2 ** 64 - 1, True, 1, 1.0]
    write_run(str(tmp_path / "r.run"), entries_of([("k", values)]))
    [(_, _, _, back)] = read_run(str(tmp_path / "r.run"))
    assert same(back, values)
