"""Binary record logs: both versions, gzip and plain data, and resynchronising after damage."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest

from converter import DamagedRecord, RecordLogReader, decode_payload, encode_record
from converter.recordlog import PayloadTooLarge

PATH = "{uuid}/saved-session/Firefox/22.0a1/nightly/20130226031002"


def record(n: int, ip: str | None = None, compress: bool = True) -> bytes:
    data = json.dumps({"n": n}).encode()
    return encode_record(PATH.format(uuid=f"uuid-{n}"), gzip.compress(data) if compress else data,
                         1381449600000 + n, ip)


def read(tmp_path, content: bytes):
    path = tmp_path / "incoming.log"
    path.write_bytes(content)
    reader = RecordLogReader(str(path))
    return list(reader), reader.stats


@pytest.mark.parametrize("ip, version", [(None, 1), ("192.0.2.7", 2)])
def test_both_versions_are_detected_and_read(tmp_path, ip, version):
    records, stats = read(tmp_path, b"".join(record(n, ip) for n in range(5)))
    assert [r.uuid for r in records] == [f"uuid-{n}" for n in range(5)]
    assert stats.version == version and stats.records == 5 and not stats.damaged
    first = records[0]
    assert first.ip == ip and first.timestamp_ms == 1381449600000
    assert first.path_fields == {"uuid": "uuid-0", "reason": "saved-session", "appName": "Firefox",
                                 "appVersion": "22.0a1", "appUpdateChannel": "nightly",
                                 "appBuildID": "20130226031002"}


def test_gzip_and_plain_data_decode_alike(tmp_path):
    records, _ = read(tmp_path, record(1, compress=True) + record(2, compress=False))
    assert [decode_payload(r.data) for r in records] == [{"n": 1}, {"n": 2}]


def test_garbage_between_records_is_counted_and_skipped(tmp_path):
    content = record(0) + b"\x00garbage\x1egarbage" + record(1) + record(2)
    records, stats = read(tmp_path, content)
    assert [r.uuid for r in records] == ["uuid-0", "uuid-1", "uuid-2"]
    assert stats.damaged == {"bad separator": 1} and stats.skipped_bytes == 16  # exactly the garbage


def test_impossible_lengths_resynchronise_at_the_next_record(tmp_path):
    broken = bytearray(record(1, "10.0.0.1"))
    broken[4:8] = (2**31).to_bytes(4, "little")  # data length far past the end of the file
    records, stats = read(tmp_path, record(0, "10.0.0.1") + bytes(broken) + record(2, "10.0.0.1"))
    assert [r.uuid for r in records] == ["uuid-0", "uuid-2"]
    assert stats.damaged == {"impossible lengths": 1}


def test_a_record_cut_short_by_the_next_one_is_damage_and_the_next_one_survives(tmp_path):
    cut = record(1)[:-10]  # the writer died mid-record and the next record was appended after it
    records, stats = read(tmp_path, record(0) + cut + record(2) + record(3))
    assert [r.uuid for r in records] == ["uuid-0", "uuid-2", "uuid-3"]
    assert stats.damaged == {"truncated record": 1}


def test_a_truncated_last_record_is_counted(tmp_path):
    records, stats = read(tmp_path, record(0) + record(1)[:-5])
    assert [r.uuid for r in records] == ["uuid-0"]
    assert sum(stats.damaged.values()) == 1


def test_a_bad_path_is_damage(tmp_path):
    bad = encode_record("not/a/telemetry/path", b"{}", 0)
    records, stats = read(tmp_path, record(0) + bad + record(1))
    assert [r.uuid for r in records] == ["uuid-0", "uuid-1"]
    assert stats.damaged == {"bad path": 1}


def test_an_empty_log_has_no_records(tmp_path):
    records, stats = read(tmp_path, b"")
    assert records == [] and stats.records == 0 and not stats.damaged


@pytest.mark.parametrize("data, reason", [(b"\x1f\x8bnot gzip at all", "bad gzip"),
                                          (gzip.compress(b"{not json"), "bad JSON"), (b"[1,", "bad JSON")])
def test_undecodable_data_is_a_damaged_record(data, reason):
    with pytest.raises(DamagedRecord) as error:
        decode_payload(data)
    assert error.value.reason == reason


def bomb(size: int) -> bytes:
    """Valid JSON of ``size`` bytes, mostly spaces, gzipped to about a thousandth of that."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = b" " * (1 << 20)
    parts = [compressor.compress(b'{"pad": "')]
    parts += [compressor.compress(chunk) for _ in range(size >> 20)]
    return b"".join(parts + [compressor.compress(b'"}'), compressor.flush()])


def test_a_decompression_bomb_is_refused_without_inflating_it():
    data = bomb(64 << 20)
    assert len(data) < 100_000
    with pytest.raises(PayloadTooLarge, match="payload larger than 20,971,520 bytes"):
        decode_payload(data)
    assert decode_payload(data, max_size=65 << 20)["pad"][:3] == "   "


def test_the_limit_counts_every_gzip_member_and_plain_data_too():
    two_members = gzip.compress(b'{"a": "' + b"x" * 600) + gzip.compress(b'"}')
    assert decode_payload(two_members, max_size=1000) == {"a": "x" * 600}
    with pytest.raises(PayloadTooLarge):
        decode_payload(two_members, max_size=500)
    with pytest.raises(PayloadTooLarge):
        decode_payload(b'{"a": "' + b"x" * 600 + b'"}', max_size=500)


def test_deep_nesting_is_bad_json_not_a_crash():
    with pytest.raises(DamagedRecord) as error:
        decode_payload(gzip.compress(b"[" * 100_000 + b"]" * 100_000))
    assert error.value.reason == "bad JSON"


@pytest.mark.parametrize("data", [gzip.compress(b"{}")[:-3], gzip.compress(b"{}") + b"trailing"])
def test_a_cut_or_padded_gzip_member_is_bad_gzip(data):
    with pytest.raises(DamagedRecord) as error:
        decode_payload(data)
    assert error.value.reason == "bad gzip"
