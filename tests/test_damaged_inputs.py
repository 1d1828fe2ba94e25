"""Stored files that are damaged or not what their names say, through the real `mr run` and `mr cat`.

Whatever the codec's failure (random bytes, another codec's data, a cut-off
stream), the file is named, the job fails without a traceback or a pointless
retry, and --allow-partial leaves the file out with exit status 3.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest

from storage import CorruptFileError, LayoutWriter, RecordReader, compress_pending
from storage.codecs import GZIP, LZ4, LZMA

from .conftest import SHIPPED, run_mr

PARTITION = ["saved-session", "Firefox", "nightly", "24.0a1", "20130601030202", "20130602"]
DIRECTORY = Path("saved_session", "Firefox", "nightly", "24.0a1")
GOOD_PINGS = 4


def compressed(codec, data: bytes) -> bytes:
    out = io.BytesIO()
    with codec.open_write(out) as writer:
        writer.write(data)
    return out.getvalue()


RECORDS = b"".join(b"id-%d\t{}\n" % i for i in range(50))
BAD_FILES = {
    "random-as-lzma": (".lzma", b"\x5d" + random.Random(1).randbytes(4000)),
    "random-as-lzma-unknown-header": (".lzma", b"\xff" + random.Random(2).randbytes(4000)),
    "random-as-xz": (".xz", random.Random(3).randbytes(4000)),
    "random-as-lz4": (".lz4", random.Random(4).randbytes(4000)),
    "random-as-gz": (".gz", random.Random(5).randbytes(4000)),
    "lz4-as-gz": (".gz", compressed(LZ4, RECORDS)),
    "gzip-as-lzma": (".lzma", compressed(GZIP, RECORDS)),
    "cut-off-lzma": (".lzma", compressed(LZMA, RECORDS)[:40]),
}


@pytest.fixture(params=sorted(BAD_FILES))
def damaged_store(request, tmp_path) -> tuple[Path, Path]:
    """A store with one good lz4 file of GOOD_PINGS pings and, after it in path order, one bad file."""
    base = tmp_path / "store"
    with LayoutWriter(str(base)) as writer:
        for i in range(GOOD_PINGS):
            writer.write(f"good-{i}", {"i": i}, PARTITION)
        writer.rotate_all()
    compress_pending(str(base), "lz4")
    suffix, content = BAD_FILES[request.param]
    bad = base / DIRECTORY / f"20130601030202.20130603.v2.log.bad{suffix}"
    bad.write_bytes(content)
    return base, bad


def records_before_the_damage(path: Path) -> int:
    reader = RecordReader(str(path))
    with pytest.raises(CorruptFileError):
        for _ in reader:
            pass
    return reader.records


def count(store: Path, tmp_path: Path, *options: str):
    out = tmp_path / "out.txt"
    result = run_mr("run", str(SHIPPED / "count.py"), "-d", str(store), "-o", str(out), "-m", "2", *options)
    return result, out.read_text() if out.exists() else None


def test_a_bad_file_fails_the_job_naming_it_without_a_traceback_or_a_retry(damaged_store, tmp_path):
    store, bad = damaged_store
    result, output = count(store, tmp_path)
    assert result.returncode == 1, result.stderr
    assert output is None
    assert f"{bad}: damaged after {records_before_the_damage(bad)} records" in result.stderr
    assert "--allow-partial" in result.stderr
    assert "Traceback" not in result.stderr and "second time" not in result.stderr
    assert "retry" not in result.stderr.lower() and "exited with status" not in result.stderr


def test_with_allow_partial_the_bad_file_is_left_out_and_the_good_one_counted(damaged_store, tmp_path):
    store, bad = damaged_store
    result, output = count(store, tmp_path, "--allow-partial")
    assert result.returncode == 3, result.stderr
    assert output == f"pings\t{GOOD_PINGS + records_before_the_damage(bad)}\n"
    assert str(bad) in result.stderr and "Traceback" not in result.stderr


def test_cat_prints_the_good_file_and_names_the_bad_one(damaged_store):
    store, bad = damaged_store
    good = next(p for p in (store / DIRECTORY).iterdir() if p.suffix == ".lz4" and p != bad)
    result = run_mr("cat", str(bad), str(good))
    assert result.returncode == 1
    ids = [line.split("\t")[0] for line in result.stdout.splitlines()]
    assert ids == [f"id-{i}" for i in range(records_before_the_damage(bad))] + [f"good-{i}" for i in range(GOOD_PINGS)]
    assert result.stderr.startswith(f"mr: ERROR: {bad}: damaged after ")
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("suffix", [".lzma", ".xz", ".lz4", ".gz"])
def test_an_empty_compressed_file_is_an_empty_input(tmp_path, suffix):
    store = tmp_path / "store"
    (store / DIRECTORY).mkdir(parents=True)
    (store / DIRECTORY / f"20130601030202.20130602.v2.log.empty{suffix}").write_bytes(b"")
    result, output = count(store, tmp_path)
    assert result.returncode == 0, result.stderr
    assert output == ""
