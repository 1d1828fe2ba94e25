"""The layout writer: line format, payload cleaning, rotation, and many processes at once."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import subprocess
import sys

import pytest

from storage import LayoutWriter, RecordReader, Schema, compress_pending, find_files, find_pending
from storage.codecs import PLAIN
from storage.layout import LONGEST_ADDED_SUFFIX, NameTooLong

from .conftest import ROOT

DIMS = [
    ["saved-session", "Firefox", "nightly", "24.0a1", "20130601030202", "20130602"],
    ["saved-session", "Firefox", "beta", "22.0", "20130520000000", "20130602"],
    ["idle-daily", "Fennec", "release", "21.0", "20130511120000", "20130603"],
]


def lines_of(path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()


def all_records(base) -> list[tuple[str, str]]:
    """Every record in a store: active logs, pending logs and compressed files."""
    records = [r for f in find_files(str(base)) for r in f.open()]
    records += [r for path in find_pending(str(base)) for r in RecordReader(path, codec=PLAIN)]
    return records


def test_string_payload_is_written_as_is(tmp_path):
    with LayoutWriter(str(tmp_path), version=2) as writer:
        path = writer.write("id-1", '{"a": 1}', DIMS[0])
    assert path == str(tmp_path / "saved_session/Firefox/nightly/24.0a1/20130601030202.20130602.v2.log")
    assert lines_of(path) == ['id-1\t{"a": 1}']


def test_object_payload_is_minimal_json(tmp_path):
    with LayoutWriter(str(tmp_path)) as writer:
        path = writer.write("id-1", {"a": [1, 2], "b": "x"}, DIMS[0])
    assert lines_of(path) == ['id-1\t{"a":[1,2],"b":"x"}']


def test_line_breaks_in_a_string_payload_become_spaces_and_are_logged(tmp_path, caplog):
    with caplog.at_level(logging.WARNING), LayoutWriter(str(tmp_path)) as writer:
        path = writer.write("id-1", '{"a":\r\n1}', DIMS[0])
    assert lines_of(path) == ['id-1\t{"a":  1}']
    assert writer.stats.cleaned_payloads == 1
    assert "id-1" in caplog.text and "line breaks" in caplog.text


@pytest.mark.parametrize("bad_id", ["", "a\tb", "a\nb"])
def test_ids_that_would_break_the_line_format_are_refused(tmp_path, bad_id):
    with LayoutWriter(str(tmp_path)) as writer, pytest.raises(ValueError, match="tab or line break"):
        writer.write(bad_id, "{}", DIMS[0])


def test_disallowed_values_are_filed_under_other(tmp_path):
    with LayoutWriter(str(tmp_path)) as writer:
        path = writer.write("id-1", "{}", ["saved-session", "Firefox", "esr", "17.0", "20130101", "20130102"])
    assert "/Firefox/OTHER/17.0/" in path


def test_a_full_log_is_rotated_to_a_pending_name(tmp_path):
    with LayoutWriter(str(tmp_path), max_log_size=1000) as writer:
        for i in range(50):
            writer.write(f"id-{i}", {"pad": "x" * 80}, DIMS[0])
    pending = find_pending(str(tmp_path))
    assert len(pending) == writer.stats.rotations >= 4
    assert all(os.path.getsize(p) >= 1000 for p in pending)
    assert sorted(uuid for uuid, _ in all_records(tmp_path)) == sorted(f"id-{i}" for i in range(50))


def test_rotate_all_hands_every_touched_log_to_the_compressor(tmp_path):
    with LayoutWriter(str(tmp_path)) as writer:
        for dims in DIMS:
            writer.write("id", "{}", dims)
        pending = writer.rotate_all()
    assert len(pending) == 3
    assert sorted(pending) == find_pending(str(tmp_path))
    assert find_files(str(tmp_path)) == []  # no active logs left


def test_more_partitions_than_open_files(tmp_path):
    with LayoutWriter(str(tmp_path), max_open_files=2) as writer:
        for i in range(30):
            writer.write(f"id-{i}", "{}", DIMS[i % 3])
    assert len(all_records(tmp_path)) == 30


def payload_for(worker: int, i: int) -> str:
    # Lengths vary up to ~4 kB so that torn or interleaved writes would show.
    return json.dumps({"w": worker, "i": i, "pad": "x" * ((i * 7919) % 4000)})


def write_many(base: str, worker: int, count: int) -> None:
    with LayoutWriter(base, Schema.default(), max_log_size=200_000) as writer:
        for i in range(count):
            writer.write(f"w{worker}-{i}", payload_for(worker, i), DIMS[i % len(DIMS)])


def compress_until(base: str, stop) -> None:
    while not stop.is_set():
        compress_pending(base, "lz4")


def test_concurrent_writers_and_compressor_lose_and_tear_nothing(tmp_path):
    workers, count = 4, 3000
    base = str(tmp_path / "store")
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    compressor = context.Process(target=compress_until, args=(base, stop))
    writers = [context.Process(target=write_many, args=(base, w, count)) for w in range(workers)]
    compressor.start()
    for p in writers:
        p.start()
    for p in writers:
        p.join(timeout=300)
    stop.set()
    compressor.join(timeout=60)
    assert [p.exitcode for p in writers + [compressor]] == [0] * (workers + 1)

    records = all_records(tmp_path / "store")
    assert len(records) == workers * count
    expected = {f"w{w}-{i}": payload_for(w, i) for w in range(workers) for i in range(count)}
    assert dict(records) == expected
    assert any(f.path.endswith(".lz4") for f in find_files(base))  # rotation and compression happened


def test_a_value_too_long_for_a_file_name_is_refused_before_anything_is_written(tmp_path):
    too_long = ["saved-session", "Firefox", "nightly", "2" * 300, "20130601030202", "20130602"]
    with LayoutWriter(str(tmp_path), version=2) as writer:
        with pytest.raises(NameTooLong, match="directory name of 300 bytes, more than the 255"):
            writer.write("id-1", {"a": 1}, too_long)
        assert writer.touched == set()
    assert list(tmp_path.iterdir()) == []


def test_a_log_name_that_would_not_survive_rotation_is_refused(tmp_path):
    """A build id that fits in a name now, but not once rotation and compression add their suffixes."""
    room = 255 - LONGEST_ADDED_SUFFIX - len(".20130602.v2.log")
    with LayoutWriter(str(tmp_path), version=2) as writer:
        with pytest.raises(NameTooLong, match="with the suffixes rotation adds"):
            writer.write("id-1", {"a": 1}, DIMS[0][:4] + ["1" * (room + 1), "20130602"])
        writer.write("id-2", {"a": 2}, DIMS[0][:4] + ["1" * room, "20130602"])  # the longest that fits
        writer.rotate_all()
    compress_pending(str(tmp_path), "lzma")
    [stored] = find_files(str(tmp_path))
    assert len(os.path.basename(stored.path)) + len(".partial") <= 255
    assert [uuid for uuid, _ in stored.open()] == ["id-2"]


def test_a_failed_write_names_the_log_and_leaves_it_as_it_was(tmp_path):
    """RLIMIT_FSIZE in a child process makes the write fail (EFBIG) as a full disk would."""
    script = f"""
import resource, signal, sys
sys.path.insert(0, {str(ROOT)!r})
from storage import LayoutWriter
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
writer = LayoutWriter({str(tmp_path)!r}, version=2)
writer.write("id-1", "x" * 100, {DIMS[0]!r})
resource.setrlimit(resource.RLIMIT_FSIZE, (150, 150))
try:
    writer.write("id-2", "y" * 100, {DIMS[0]!r})
except OSError as e:
    print(e.filename, e.strerror, sep="\\n")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    log = tmp_path / "saved_session/Firefox/nightly/24.0a1/20130601030202.20130602.v2.log"
    assert result.stdout.splitlines() == [str(log), "File too large"], result.stderr
    assert lines_of(log) == ["id-1\t" + "x" * 100]
