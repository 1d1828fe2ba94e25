"""The compressor: output readable by the standard tools, and nothing lost when it dies part-way."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from storage import LayoutWriter, RecordReader, compress_file, compress_pending, find_files, find_pending
from storage.codecs import LZ4

from .conftest import ROOT

DIMS = ["saved-session", "Firefox", "nightly", "24.0a1", "20130601030202", "20130602"]


def make_pending(base, count: int = 100, pad: int = 100) -> tuple[str, bytes]:
    """One rotated log of ``count`` lines; returns its path and exact content."""
    with LayoutWriter(str(base)) as writer:
        for i in range(count):
            writer.write(f"id-{i:07d}", {"i": i, "pad": os.urandom(pad // 2).hex()}, DIMS)
        [pending] = writer.rotate_all()
    with open(pending, "rb") as f:
        return pending, f.read()


def test_lzma_output_is_legacy_lzma_alone_readable_by_xz(tmp_path):
    pending, content = make_pending(tmp_path)
    stats = compress_pending(str(tmp_path))
    [stored] = find_files(str(tmp_path))
    assert stored.path == pending[: -len(".compressme")] + ".lzma"
    assert not os.path.exists(pending)
    assert stats.files == 1 and stats.raw_bytes == len(content)
    xz = subprocess.run(["xz", "--format=lzma", "-dc", stored.path], capture_output=True, check=True)
    assert xz.stdout == content


def test_lz4_output_is_a_frame_readable_by_lz4(tmp_path):
    pending, content = make_pending(tmp_path)
    compress_pending(str(tmp_path), "lz4")
    [stored] = find_files(str(tmp_path))
    assert stored.path.endswith(".lz4")
    assert subprocess.run(["lz4", "-dc", stored.path], capture_output=True, check=True).stdout == content


def test_parallel_compression_handles_every_file(tmp_path):
    with LayoutWriter(str(tmp_path), max_log_size=500) as writer:
        for i in range(200):
            writer.write(f"id-{i}", {"i": i}, DIMS)
        writer.rotate_all()
    stats = compress_pending(str(tmp_path), workers=2)
    assert stats.files > 2 and find_pending(str(tmp_path)) == []
    assert sorted(u for f in find_files(str(tmp_path)) for u, _ in f.open()) == sorted(f"id-{i}" for i in range(200))


def test_killed_compressor_leaves_only_the_pending_log_visible_and_a_rerun_finishes(tmp_path):
    pending, content = make_pending(tmp_path, count=40_000, pad=1000)  # ~40 MB: seconds of lzma
    compressor = subprocess.Popen([sys.executable, str(ROOT / "bin" / "mr"), "compress",
                                   "--storage", str(tmp_path), "--workers", "1"])
    partial = pending[: -len(".compressme")] + ".lzma.partial"
    deadline = time.monotonic() + 60
    while not (os.path.exists(partial) and os.path.getsize(partial) > 0):
        assert compressor.poll() is None, "compressor finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    compressor.send_signal(signal.SIGKILL)
    compressor.wait()

    assert os.path.exists(pending) and os.path.exists(partial)
    assert find_files(str(tmp_path)) == []  # the half-written file is never taken for a complete one

    compress_pending(str(tmp_path))
    [stored] = find_files(str(tmp_path))
    assert not os.path.exists(pending) and not os.path.exists(partial)
    assert sum(1 for _ in RecordReader(stored.path)) == 40_000
    assert subprocess.run(["xz", "--format=lzma", "-dc", stored.path], capture_output=True,
                          check=True).stdout == content


def test_death_between_rename_and_unlink_keeps_one_copy(tmp_path):
    pending, content = make_pending(tmp_path)
    shutil.copy(pending, pending + ".copy")
    compress_file(pending)
    os.rename(pending + ".copy", pending)  # as if the unlink never happened

    stats = compress_pending(str(tmp_path))
    assert find_pending(str(tmp_path)) == []
    [stored] = find_files(str(tmp_path))
    assert stats.files == 1
    assert sum(1 for _ in stored.open()) == 100


def compress_in_process(base: str) -> None:
    compress_pending(base, "lz4")


def test_two_compressors_at_once_compress_each_log_once(tmp_path):
    with LayoutWriter(str(tmp_path), max_log_size=5000) as writer:
        for i in range(2000):
            writer.write(f"id-{i}", {"i": i}, DIMS)
        writer.rotate_all()
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=compress_in_process, args=(str(tmp_path),)) for _ in range(2)]
    for p in processes:
        p.start()
    for p in processes:
        p.join(timeout=120)
    assert [p.exitcode for p in processes] == [0, 0]
    uuids = [u for f in find_files(str(tmp_path)) for u, _ in f.open()]
    assert sorted(uuids) == sorted(f"id-{i}" for i in range(2000))


def test_compressing_a_vanished_log_is_a_no_op(tmp_path):
    assert compress_file(str(tmp_path / "gone.log.x.compressme"), LZ4).files == 0


@pytest.mark.parametrize("codec", ["lzma", "lz4"])
def test_mr_compress_reports_what_it_did(tmp_path, codec):
    make_pending(tmp_path)
    result = subprocess.run([sys.executable, str(ROOT / "bin" / "mr"), "compress", "--storage", str(tmp_path),
                             "--codec", codec], capture_output=True, text=True, check=True)
    assert result.stdout.startswith("compressed 1 logs:")


def test_a_failed_compression_names_the_file_and_keeps_the_pending_log(tmp_path):
    """RLIMIT_FSIZE in a child process makes the compressed copy's writes fail (EFBIG) as a full disk would."""
    pending, content = make_pending(tmp_path, count=200, pad=1000)
    script = f"""
import resource, signal, sys
sys.path.insert(0, {str(ROOT)!r})
from storage import compress_pending
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (10000, 10000))
try:
    compress_pending({str(tmp_path)!r}, "lzma")
except OSError as e:
    print(e.filename, e.strerror, sep="\\n")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    partial = pending[:-len(".compressme")] + ".lzma.partial"
    assert result.stdout.splitlines() == [partial, "File too large"], result.stderr
    assert not os.path.exists(partial)
    assert find_pending(str(tmp_path)) == [pending]
    with open(pending, "rb") as f:
        assert f.read() == content
