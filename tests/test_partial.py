"""Partial results as files: plain data that cannot run code, damage refused, and no input counted twice."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import lz4.frame
import pytest

from mapreduce.keys import order_key
from mapreduce.partial import PartialError, open_partial, write_partial

from .conftest import JOBS, run_mr, tsv

COUNTS = JOBS / "no_combine.py"  # pings per channel; its partial ships raw values


def combine_only(data: Path, partial: Path, *args: str, job: Path = COUNTS) -> Path:
    result = run_mr("run", str(job), "--data-dir", str(data), "--combine-only", "--output", str(partial), *args)
    assert result.returncode == 0, result.stderr
    return partial


def reduce(tmp_path: Path, *partials: Path, job: Path = COUNTS):
    out = tmp_path / "reduced.txt"
    result = run_mr("reduce", str(job), *map(str, partials), "--output", str(out))
    return result, (out.read_text() if out.exists() else None)


class Planted:
    """Unpickling it writes a file: what a planted pickle could do instead."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


def header_and_body(partial: Path) -> tuple[bytes, bytes]:
    magic, header, body = partial.read_bytes().split(b"\n", 2)
    return magic + b"\n" + header + b"\n", body


# -- plain data, never code ------------------------------------------------------------

def test_a_pickled_partial_of_an_older_mr_is_refused_without_running_it(store, tmp_path):
    real = combine_only(store, tmp_path / "real.partial")
    header = header_and_body(real)[0].split(b"\n")[1]
    marker = tmp_path / "ran"
    old = tmp_path / "old.partial"
    old.write_bytes(b"mr-partial 1\n" + header + b"\n"
                    + lz4.frame.compress(pickle.dumps([Planted(marker)]), content_checksum=True))
    result, output = reduce(tmp_path, old)
    assert result.returncode == 2 and output is None
    assert f"{old}: a partial result of an older mr (format 1, pickled values, which could run code when " \
           "read); make it again with this version" in result.stderr
    assert not marker.exists()


def test_a_partial_whose_body_is_a_pickle_is_damaged_not_run(store, tmp_path):
    header, _ = header_and_body(combine_only(store, tmp_path / "real.partial"))
    marker = tmp_path / "ran"
    planted = tmp_path / "planted.partial"
    planted.write_bytes(header + lz4.frame.compress(pickle.dumps([Planted(marker)]), content_checksum=True))
    result, output = reduce(tmp_path, planted)
    assert result.returncode == 1 and output is None
    assert f"{planted}: the partial result is damaged (" in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists()


def test_entries_that_do_not_hold_together_are_refused(store, tmp_path):
    """Another machine's entries are checked before they are compared with anything: a key and an ordered key
    that disagree, or a tag of another shape, would otherwise mis-sort or raise deep in the merge."""
    real = combine_only(store, tmp_path / "real.partial")
    header = json.loads(header_and_body(real)[0].split(b"\n")[1])
    for name, entry in [("lying", (order_key(("aurora",)), (("a",), 0), ("nightly",), [1])),
                        ("tag", (order_key("nightly"), (1, 0), "nightly", [1]))]:
        path = tmp_path / f"{name}.partial"
        write_partial(str(path), header, [entry])
        result, output = reduce(tmp_path, path)
        assert result.returncode == 1 and output is None, result.stderr
        assert f"{path}: the partial result is damaged (a malformed" in result.stderr, result.stderr


def test_every_flipped_bit_of_the_body_is_refused_or_changes_nothing(store, tmp_path):
    partial = combine_only(store, tmp_path / "m.partial")
    header, body = header_and_body(partial)
    entries = list(open_partial(str(partial)).entries())
    refused = 0
    for bit in range(len(body) * 8):
        damaged = bytearray(body)
        damaged[bit // 8] ^= 1 << bit % 8
        partial.write_bytes(header + damaged)
        read = []
        try:
            for entry in open_partial(str(partial)).entries():
                read.append(entry)
        except PartialError as e:
            assert str(e).startswith(f"{partial}: the partial result is damaged (")
            refused += 1
        else:
            assert read == entries, f"bit {bit} gave wrong entries"
        assert read == entries[:len(read)], f"bit {bit} gave wrong entries"
    assert refused > len(body) * 8 * 0.95


def test_a_damaged_header_is_refused(store, tmp_path):
    partial = combine_only(store, tmp_path / "m.partial")
    header, body = header_and_body(partial)
    fields = json.loads(header.split(b"\n")[1])
    del fields["inputs"]
    partial.write_bytes(b"mr-partial 2\n" + json.dumps(fields).encode() + b"\n" + body)
    result, _ = reduce(tmp_path, partial)
    assert result.returncode == 1 and f"{partial}: the partial result's header is damaged" in result.stderr


# -- no input counted twice --------------------------------------------------------------

def test_a_partial_given_twice_or_copied_is_refused_naming_both(store, tmp_path):
    partial = combine_only(store, tmp_path / "a.partial")
    result, output = reduce(tmp_path, partial, partial)
    assert result.returncode == 2 and output is None
    assert f"{partial} and {partial} read 6 of the same input files (e.g. idle_daily/Firefox/beta/22.0/20130520000000.20130603.v2.log)" in result.stderr
    assert "counted twice: is one machine listed twice (under two names), or a partial given twice?" in result.stderr

    copy = tmp_path / "copy.partial"
    shutil.copyfile(partial, copy)
    result, output = reduce(tmp_path, partial, copy)
    assert result.returncode == 2 and output is None
    assert f"{copy} and {partial} read 6 of the same input files" in result.stderr


def test_active_logs_of_the_same_name_in_two_places_are_two_inputs(store, tmp_path):
    """An active log (`<build>.<date>.v2.log`) is named alike on every machine that got pings of that build and
    date: in another data dir, or on another machine with the same data dir path, it is other data."""
    other_dir = tmp_path / "other-store"
    shutil.copytree(store, other_dir)
    here = combine_only(store, tmp_path / "here.partial")
    there = combine_only(other_dir, tmp_path / "there.partial")
    result, output = reduce(tmp_path, here, there)
    assert result.returncode == 0, result.stderr
    assert tsv(output)["nightly"] == "12"  # 2 partitions x 3 pings, in each of the two stores

    magic, header, body = (tmp_path / "here.partial").read_bytes().split(b"\n", 2)
    fields = json.loads(header)
    fields["machine"] = "another-machine"
    elsewhere = tmp_path / "elsewhere.partial"
    elsewhere.write_bytes(magic + b"\n" + json.dumps(fields).encode() + b"\n" + body)
    result, output = reduce(tmp_path, here, elsewhere)
    assert result.returncode == 0, result.stderr
    assert tsv(output)["nightly"] == "12"


def test_a_compressed_log_copied_to_another_data_dir_is_the_same_input(data, tmp_path):
    """A compressed log's name holds the unique id of its rotation: a copy anywhere is the same data."""
    copied = tmp_path / "copied"
    shutil.copytree(data, copied)
    result, output = reduce(tmp_path, combine_only(data, tmp_path / "a.partial"),
                            combine_only(copied, tmp_path / "b.partial"))
    assert result.returncode == 2 and output is None
    files = len(list(data.rglob("*.lz4")))
    assert f"read {files} of the same input files (e.g. " in result.stderr and ".lz4), whose data" in result.stderr


def test_partials_made_with_different_numbers_of_mappers_merge(data, tmp_path):
    """Machines differ in cores, so their --num-mappers default differs: only the sample must agree."""
    files = sorted(p for p in data.rglob("*.lz4"))
    halves = [tmp_path / "one", tmp_path / "two"]
    for number, path in enumerate(files):
        target = halves[number % 2] / path.relative_to(data)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    result, output = reduce(tmp_path, combine_only(halves[0], tmp_path / "a.partial", "-m", "1"),
                            combine_only(halves[1], tmp_path / "b.partial", "-m", "2"))
    assert result.returncode == 0, result.stderr
    assert sum(int(count) for count in tsv(output).values()) == 300

    sampled = combine_only(halves[1], tmp_path / "c.partial", "--sample", "0.5")
    result, _ = reduce(tmp_path, tmp_path / "a.partial", sampled)
    assert result.returncode == 2 and "were made with different samples (--sample 0.5 against None)" in result.stderr
