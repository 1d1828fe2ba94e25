"""`mr convert` on hostile and unlucky input: bombs, names too long, odd records, a full disk.

Every case must end in counts and a summary, never a traceback, and leave no
active log behind; what the summary counts as converted is exactly what is stored.
"""

from __future__ import annotations

import gzip
import json
import os
import resource
import shutil
import signal
import subprocess
import zlib
from pathlib import Path

import pytest

from converter import encode_record
from storage import RecordReader, find_files, find_pending
from storage.codecs import PLAIN

from .conftest import HISTOGRAMS_JSON, REVISION, raw_payload, run_mr
from .test_convert_command import OCT_11_2013, summary_counts

REVISION_URL = f"http://hg.mozilla.org/mozilla-central/rev/{REVISION}"


def record(uuid: str, body: dict | None = None, *, data: bytes | None = None, timestamp: int = OCT_11_2013,
           **info) -> bytes:
    if data is None:
        data = gzip.compress(json.dumps(body or raw_payload(REVISION_URL, {}, **info)).encode())
    return encode_record(f"{uuid}/saved-session/Firefox/22.0a1/nightly/20130226031002", data, timestamp)


def fill_cache(tmp_path: Path) -> None:
    """The test revision's definitions, filled into ``tmp_path/cache`` by hand."""
    cache = tmp_path / "cache" / REVISION
    cache.mkdir(parents=True, exist_ok=True)
    shutil.copy(HISTOGRAMS_JSON, cache / "Histograms.json")


def convert(tmp_path: Path, *inputs, extra=(), **kwargs):
    """Convert with the test revision's definitions filled into the cache by hand, fetching nothing."""
    fill_cache(tmp_path)
    return run_mr("convert", *map(str, inputs), "--storage", str(kwargs.pop("storage", tmp_path / "store")),
                  "--histogram-cache", str(tmp_path / "cache"), "--no-fetch", *extra, **kwargs)


def stored_uuids(store: Path) -> list[str]:
    """Every record in the store, compressed or still pending."""
    found = [uuid for f in find_files(str(store)) for uuid, _ in f.open()]
    return found + [uuid for path in find_pending(str(store)) for uuid, _ in RecordReader(path, codec=PLAIN)]


def active_logs(store: Path) -> list[Path]:
    return [p for p in store.rglob("*.log") if p.stat().st_size > 0]


def bomb(size: int) -> bytes:
    """A gzipped payload of ``size`` bytes, nearly all spaces: about a thousandth of that on disk."""
    text = json.dumps(raw_payload(REVISION_URL, {}, pad="@")).encode()
    before, after = text.split(b"@")
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [compressor.compress(before)]
    parts += [compressor.compress(b" " * (1 << 20)) for _ in range(size >> 20)]
    return b"".join(parts + [compressor.compress(after), compressor.flush()])


def test_a_decompression_bomb_is_rejected_and_counted_not_stored(tmp_path):
    log = tmp_path / "in.log"
    log.write_bytes(record("ok-1") + record("bomb", data=bomb(30 << 20)) + record("ok-2"))
    assert log.stat().st_size < 100_000
    result = convert(tmp_path, log, extra=("--rejected", str(tmp_path / "rejected.log")))
    assert result.returncode == 0, result.stderr
    counts = summary_counts(result.stdout)
    assert counts["converted"] == 2 and counts["rejected"] == 1 and counts["payload too large"] == 1
    assert sorted(stored_uuids(tmp_path / "store")) == ["ok-1", "ok-2"]
    assert (tmp_path / "rejected.log").read_text() == "bomb\tpayload too large\tnull\n"


def test_the_payload_size_limit_is_an_option_and_covers_exports(tmp_path):
    export = tmp_path / "export.txt"
    small = json.dumps(raw_payload(REVISION_URL, {}))
    large = json.dumps(raw_payload(REVISION_URL, {}, pad="x" * 3000))
    export.write_text(f"small\t{small}\nlarge\t{large}\n")
    result = convert(tmp_path, export, extra=("--submission-date", "20131011", "--max-payload-size", "0.002"))
    assert result.returncode == 0, result.stderr
    assert summary_counts(result.stdout)["payload too large"] == 1
    assert stored_uuids(tmp_path / "store") == ["small"]


@pytest.mark.parametrize("field", ["appVersion", "appBuildID"])
def test_a_value_too_long_for_a_file_name_is_rejected_and_the_run_goes_on(tmp_path, field):
    log = tmp_path / "in.log"
    log.write_bytes(record("ok-1") + record("long", **{field: "9" * 300}) + record("ok-2"))
    result = convert(tmp_path, log, extra=("--workers", "2"))
    assert result.returncode == 0, result.stderr
    counts = summary_counts(result.stdout)
    assert counts["converted"] == 2 and counts["path too long"] == 1
    assert sorted(stored_uuids(tmp_path / "store")) == ["ok-1", "ok-2"]
    assert active_logs(tmp_path / "store") == [] and "Traceback" not in result.stderr


@pytest.mark.parametrize("timestamp", [2**64 - 1, 2**63, 253402300800000])
def test_a_timestamp_that_is_no_date_is_damage(tmp_path, timestamp):
    log = tmp_path / "in.log"
    log.write_bytes(record("ok-1") + record("odd", timestamp=timestamp) + record("ok-2"))
    result = convert(tmp_path, log)
    assert result.returncode == 0, result.stderr
    assert summary_counts(result.stdout)["bad timestamp"] == 1
    assert sorted(stored_uuids(tmp_path / "store")) == ["ok-1", "ok-2"]


def test_deeply_nested_json_is_a_bad_record_in_logs_and_exports(tmp_path):
    nested = b"[" * 100_000 + b"]" * 100_000
    log = tmp_path / "in.log"
    log.write_bytes(record("ok") + record("deep", data=nested))
    export = tmp_path / "export.txt"
    export.write_bytes(b"deep-too\t" + nested + b"\n")
    result = convert(tmp_path, log, export, extra=("--submission-date", "20131011"))
    assert result.returncode == 0, result.stderr
    assert summary_counts(result.stdout)["bad JSON"] == 2
    assert stored_uuids(tmp_path / "store") == ["ok"]


def test_thousands_of_unknown_revisions_give_a_short_summary(tmp_path):
    log = tmp_path / "in.log"
    log.write_bytes(b"".join(record(f"r{n}", raw_payload(f"http://evil.example/r/rev/{n:012x}", {}))
                             for n in range(2000)))
    result = convert(tmp_path, log, extra=("--workers", "2"))
    assert result.returncode == 0, result.stderr
    assert summary_counts(result.stdout)["no usable revision"] == 2000
    assert len([line for line in result.stdout.splitlines() if line.startswith("revision ")]) == 20
    assert "... and 1,980 more revisions could not be had" in result.stdout
    assert len(result.stderr.splitlines()) <= 2 * 20  # each worker names its first few


def test_an_unwritable_storage_or_rejected_file_is_a_usage_error_before_any_work(tmp_path):
    log = tmp_path / "in.log"
    log.write_bytes(record("ok"))
    (tmp_path / "a-file").write_text("")
    result = convert(tmp_path, log, storage=tmp_path / "a-file" / "store")
    assert result.returncode == 2 and "storage directory" in result.stderr and "cannot write there" in result.stderr
    result = convert(tmp_path, log, extra=("--rejected", str(tmp_path / "missing" / "rejected.log")))
    assert result.returncode == 2 and "--rejected" in result.stderr and "No such file or directory" in result.stderr
    assert not (tmp_path / "store").exists() or stored_uuids(tmp_path / "store") == []


# -- a full disk -------------------------------------------------------------------------

def big_records(count: int) -> bytes:
    """Records of about 20 kB of JSON each that compress poorly (random hex)."""
    return b"".join(record(f"big-{n:04d}", raw_payload(REVISION_URL, {}, pad=os.urandom(10_000).hex()))
                    for n in range(count))


@pytest.fixture
def small_disk(tmp_path):
    """A real 1 MB file system (tmpfs); skipped where mounting is not permitted."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command here to make a small file system")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)


def tmp_input(result) -> str:
    return result.args[result.args.index("convert") + 1]


def assert_stopped_cleanly(result, store: Path, message: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("mr: ERROR")]
    assert f"{store}{os.sep}" in errors[0] and message in errors[0]  # one line naming the file
    assert f"stopped: storing {tmp_input(result)}@" in result.stdout and message in result.stdout
    counts = summary_counts(result.stdout)
    stored = stored_uuids(store)
    assert len(stored) == len(set(stored)) == counts["converted"] > 0
    assert active_logs(store) == []


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_full_disk_stops_the_run_with_one_line_naming_the_path_and_a_summary(tmp_path, small_disk, workers):
    log = tmp_path / "in.log"
    log.write_bytes(big_records(100))  # about 2 MB of JSON for a 1 MB disk
    store = small_disk / "store"
    result = convert(tmp_path, log, storage=store, extra=("--workers", workers))
    assert_stopped_cleanly(result, store, "No space left on device")


def test_a_file_size_limit_stops_the_run_the_same_way(tmp_path):
    """Where no small file system can be mounted: RLIMIT_FSIZE makes writes fail (EFBIG) past 300 kB."""
    log = tmp_path / "in.log"
    log.write_bytes(big_records(40))

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))

    result = convert(tmp_path, log, extra=("--workers", "2"), preexec_fn=limit_file_size)
    assert_stopped_cleanly(result, tmp_path / "store", "File too large")
