"""The streaming reader: every codec, malformed lines, damaged files, and bounded memory."""

from __future__ import annotations

import io
import logging
import lzma
import os
import random
import subprocess
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage import CodecError, CorruptFileError, RecordReader, dimensions_from_path, read_records
from storage.codecs import CODECS, GZIP, LZ4, LZMA, PLAIN, XZ

from .conftest import REAL_DIMENSIONS, REAL_PING, REAL_STORE, REAL_UUID

RECORDS = [(f"id-{i}", f'{{"i":{i},"text":"{"é" * (i % 7)}"}}') for i in range(500)]


def name_for(codec) -> str:
    return "1.2.v1.log" if codec.suffix == ".log" else f"1.2.v1.log.x{codec.suffix}"


def write_file(path, codec, lines: bytes) -> str:
    with open(path, "wb") as raw, codec.open_write(raw) as out:
        out.write(lines)
    return str(path)


def encoded(records) -> bytes:
    return "".join(f"{u}\t{p}\n" for u, p in records).encode("utf-8")


def test_real_ping_reads_back_with_its_uuid_and_dimensions():
    reader = RecordReader(str(REAL_PING), dimensions_from_path(str(REAL_STORE), str(REAL_PING), levels=6))
    [(uuid, payload)] = list(reader)
    assert uuid == REAL_UUID
    assert reader.dimensions == REAL_DIMENSIONS
    assert payload.startswith('{"info": {') and '"appBuildID": "20130226031002"' in payload


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_every_codec_round_trips(tmp_path, codec):
    path = write_file(tmp_path / name_for(codec), codec, encoded(RECORDS))
    reader = RecordReader(path)
    assert list(reader) == RECORDS
    assert reader.records == 500 and reader.bad_lines == 0
    assert reader.uncompressed_bytes == len(encoded(RECORDS))
    assert reader.compressed_bytes == os.path.getsize(path)


@pytest.mark.parametrize("command, suffix", [(["xz", "--format=lzma", "-0"], ".lzma"), (["xz", "-0"], ".xz"),
                                             (["lz4"], ".lz4"), (["gzip"], ".gz")])
def test_files_made_by_the_standard_tools_are_read(tmp_path, command, suffix):
    plain = tmp_path / "1.2.v1.log"
    plain.write_bytes(encoded(RECORDS))
    made = tmp_path / f"1.2.v1.log.x{suffix}"
    with open(made, "wb") as out:
        subprocess.run(command + ["-c", str(plain)], stdout=out, check=True)
    assert list(read_records(str(made))) == RECORDS


@pytest.mark.parametrize("codec", [XZ, LZ4, GZIP], ids=lambda c: c.name)
def test_concatenated_streams_are_all_read(tmp_path, codec):
    path = tmp_path / name_for(codec)
    write_file(tmp_path / "first", codec, encoded(RECORDS[:10]))
    write_file(tmp_path / "second", codec, encoded(RECORDS[10:20]))
    path.write_bytes((tmp_path / "first").read_bytes() + (tmp_path / "second").read_bytes())
    assert list(read_records(str(path))) == RECORDS[:20]


def test_garbage_after_the_end_of_an_lzma_stream_is_damage(tmp_path):
    path = write_file(tmp_path / name_for(LZMA), LZMA, encoded(RECORDS))
    with open(path, "ab") as f:
        f.write(b"\x00garbage" * 10)
    with pytest.raises(CorruptFileError, match="damaged after 500 records"):
        list(read_records(path))


def test_malformed_lines_are_counted_reported_with_line_numbers_and_skipped(tmp_path, caplog):
    content = b"a\t{}\nno tab here\n\nb\t{}\n\xff\xfe\t{}\n\t{}\nc\t{}\n"
    path = write_file(tmp_path / "1.2.v1.log.lz4", LZ4, content)
    with caplog.at_level(logging.WARNING):
        reader = RecordReader(path)
        assert [u for u, _ in reader] == ["a", "b", "c"]
    assert reader.bad_lines == 4 and reader.lines == 7
    assert f"{path}:2: malformed line (no tab)" in caplog.text
    assert f"{path}:3: malformed line (empty line)" in caplog.text
    assert f"{path}:5: malformed line (not UTF-8" in caplog.text
    assert f"{path}:6: malformed line (empty id)" in caplog.text


def test_only_the_first_bad_lines_are_logged_but_all_are_counted(tmp_path, caplog):
    path = write_file(tmp_path / "1.2.v1.log", PLAIN, b"bad\n" * 100 + b"a\t{}\n")
    with caplog.at_level(logging.WARNING):
        reader = RecordReader(path)
        assert len(list(reader)) == 1
    assert reader.bad_lines == 100
    assert caplog.text.count("malformed line (") == 5
    assert "100 malformed lines in all" in caplog.text


def test_lines_longer_than_a_chunk_and_cut_anywhere(tmp_path, monkeypatch):
    monkeypatch.setattr("storage.reader.CHUNK_SIZE", 7)  # every line spans several chunks
    records = [("a", "{}"), ("b" * 20, '{"x": "' + "y" * 50 + '"}'), ("c", "é" * 9)]
    path = write_file(tmp_path / "1.2.v1.log", PLAIN, encoded(records) + b"no tab\n" + b"d\t1")
    reader = RecordReader(path)
    assert list(reader) == records + [("d", "1")]
    assert reader.bad_lines == 1 and reader.lines == 5


def test_last_line_without_newline_is_delivered(tmp_path):
    path = write_file(tmp_path / "1.2.v1.log.xz", XZ, b"a\t{}\nb\t{}")
    assert [u for u, _ in read_records(path)] == ["a", "b"]


@pytest.mark.parametrize("codec", [LZMA, XZ, LZ4, GZIP], ids=lambda c: c.name)
def test_truncated_file_delivers_the_records_before_the_damage_then_names_it(tmp_path, codec):
    many = [(f"id-{i}", os.urandom(200).hex()) for i in range(3000)]  # incompressible: damage lands mid-file
    path = write_file(tmp_path / f"1.2.v1.log.x{codec.suffix}", codec, encoded(many))
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    delivered = []
    with pytest.raises(CorruptFileError) as error:
        for record in RecordReader(path):
            delivered.append(record)
    assert 1400 < len(delivered) < 3000  # about half the file decodes: all of it is delivered
    assert delivered == many[: len(delivered)]
    assert error.value.records_read == len(delivered)
    assert str(error.value).startswith(f"{path}: damaged after {len(delivered)} records")


@pytest.mark.parametrize("codec", [LZMA, XZ, LZ4, GZIP], ids=lambda c: c.name)
def test_corrupt_bytes_raise_an_error_naming_the_file(tmp_path, codec):
    many = [(f"id-{i}", os.urandom(200).hex()) for i in range(3000)]
    path = write_file(tmp_path / f"1.2.v1.log.x{codec.suffix}", codec, encoded(many))
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        f.write(b"\x00" * 64)
    delivered = []
    with pytest.raises(CorruptFileError) as error:
        for record in RecordReader(path):
            delivered.append(record)
    assert error.value.path == path
    assert error.value.records_read == len(delivered)
    if codec is LZ4:  # block checksums: nothing garbled gets through
        assert delivered == many[: len(delivered)]


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_an_empty_file_of_any_codec_reads_as_empty(tmp_path, codec):
    path = tmp_path / name_for(codec)
    path.write_bytes(b"")
    reader = RecordReader(str(path))
    assert list(reader) == [] and reader.records == reader.bad_lines == 0


@pytest.mark.parametrize("real, named", [(LZ4, ".lzma"), (LZMA, ".log"), (GZIP, ".xz"), (XZ, ".gz"), (LZ4, ".gz"),
                                         (GZIP, ".lz4")],
                         ids=["lz4-as-lzma", "lzma-as-log", "gzip-as-xz", "xz-as-gz", "lz4-as-gz", "gzip-as-lz4"])
def test_a_mislabelled_file_is_damage_that_names_the_right_suffix(tmp_path, real, named):
    path = write_file(tmp_path / f"1.2.v1.log.x{named}", real, encoded(RECORDS))
    with pytest.raises(CorruptFileError, match=f"content looks like {real.name}; rename the file to end in "
                                               f"\\{real.suffix}") as error:
        list(read_records(path))
    assert error.value.path == path and error.value.records_read == 0


@pytest.mark.parametrize("codec", [LZMA, XZ, LZ4, GZIP], ids=lambda c: c.name)
@pytest.mark.parametrize("first", [0x00, 0x5D, 0xFF], ids=["00", "5d", "ff"])
def test_random_bytes_under_a_codec_name_are_damage_not_a_crash(tmp_path, codec, first):
    path = tmp_path / name_for(codec)
    path.write_bytes(bytes([first]) + random.Random(first).randbytes(5000))
    with pytest.raises(CorruptFileError) as error:
        list(read_records(str(path)))
    assert error.value.path == str(path) and error.value.records_read == 0


def compressed(codec, data: bytes) -> bytes:
    out = io.BytesIO()
    with codec.open_write(out) as writer:
        writer.write(data)
    return out.getvalue()


VALID = {codec.name: compressed(codec, encoded(RECORDS[:40])) for codec in (LZMA, XZ, LZ4, GZIP)}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(codec=st.sampled_from([LZMA, XZ, LZ4, GZIP]), base=st.sampled_from(sorted(VALID)),
       cut=st.integers(0, 4000), flips=st.lists(st.tuples(st.integers(0, 4000), st.integers(1, 255)), max_size=4),
       tail=st.binary(max_size=64))
def test_whatever_the_bytes_reading_delivers_records_or_raises_corrupt_file_error(tmp_path, codec, base, cut, flips,
                                                                                tail):
    data = bytearray(VALID[base][:cut])
    for at, mask in flips:
        if at < len(data):
            data[at] ^= mask
    path = tmp_path / name_for(codec)
    path.write_bytes(bytes(data) + tail)
    delivered = []
    try:
        delivered.extend(read_records(str(path)))
    except CorruptFileError as e:
        assert e.path == str(path) and e.records_read == len(delivered)


def test_a_hostile_lzma_header_cannot_make_the_decoder_allocate_gigabytes(tmp_path):
    header = bytes([0x5D]) + (0xFFFF_FFFF).to_bytes(4, "little") + (2**64 - 1).to_bytes(8, "little")
    path = tmp_path / name_for(LZMA)
    path.write_bytes(header + lzma.compress(encoded(RECORDS), format=lzma.FORMAT_ALONE)[13:])
    with pytest.raises(CorruptFileError, match="Memory usage limit"):
        list(read_records(str(path)))


def test_a_name_without_a_record_suffix_is_refused(tmp_path):
    with pytest.raises(CodecError, match="not a record file"):
        RecordReader(str(tmp_path / "1.2.v1.log.abc.compressme"))


def test_memory_stays_bounded_on_a_large_file(tmp_path):
    line = b"x" * 2000
    path = tmp_path / "1.2.v1.log.x.lz4"
    with open(path, "wb") as raw, LZ4.open_write(raw) as out:
        for i in range(25_000):  # 50 MB uncompressed
            out.write(b"id-%d\t%s\n" % (i, line))
    tracemalloc.start()
    try:
        count = sum(1 for _ in read_records(str(path)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 25_000
    assert peak < 8_000_000


@pytest.mark.parametrize("chunk", [7, 1 << 20], ids=["tiny-chunks", "default-chunks"])
def test_a_line_longer_than_the_limit_is_a_bad_line_and_the_rest_is_read(tmp_path, monkeypatch, chunk, caplog):
    monkeypatch.setattr("storage.reader.CHUNK_SIZE", chunk)
    at_limit, over = "a\t" + "x" * 18, "b\t" + "y" * 19  # 20 and 21 bytes
    path = write_file(tmp_path / "1.2.v1.log", PLAIN, f"{at_limit}\n{over}\nc\t{{}}\n{over}".encode())
    with caplog.at_level(logging.WARNING):
        reader = RecordReader(path, max_line_bytes=20)
        assert list(reader) == [("a", "x" * 18), ("c", "{}")]
    assert reader.bad_lines == 2 and reader.lines == 4
    assert f"{path}:2: malformed line (longer than 20 bytes)" in caplog.text
    assert f"{path}:4: malformed line (longer than 20 bytes)" in caplog.text


def test_a_decompression_bomb_line_is_never_held_whole(tmp_path):
    path = tmp_path / "1.2.v1.log.x.lz4"
    with open(path, "wb") as raw, LZ4.open_write(raw) as out:
        out.write(b"a\t{}\nbomb\t")
        for _ in range(200):  # 200 MB without a newline, 1 MB on disk
            out.write(b"x" * (1 << 20))
        out.write(b"\nb\t{}\n")
    assert os.path.getsize(path) < 2 << 20
    tracemalloc.start()
    try:
        reader = RecordReader(str(path), max_line_bytes=4 << 20)
        records = list(reader)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert records == [("a", "{}"), ("b", "{}")] and reader.bad_lines == 1
    assert peak < 12 << 20  # the limit and a chunk or two, not the 200 MB line
