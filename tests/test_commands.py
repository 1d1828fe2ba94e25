"""`mr cat`, `mr ls` and the command group, run as real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from storage import find_files
from storage.codecs import LZ4

from .conftest import REAL_PING, REAL_STORE, REAL_UUID, ROOT, run_mr


def test_cat_prints_the_real_ping(tmp_path):
    result = run_mr("cat", str(REAL_PING))
    assert result.returncode == 0
    [line] = result.stdout.splitlines()
    uuid, payload = line.split("\t")
    assert uuid == REAL_UUID
    assert json.loads(payload)["info"]["appBuildID"] == "20130226031002"


def test_cat_mixes_codecs_in_argument_order(store):
    from storage import compress_pending
    plain = find_files(str(store))
    os.rename(plain[0].path, plain[0].path + ".1.compressme")
    compress_pending(str(store), "lz4")
    files = [f.path for f in find_files(str(store))]
    result = run_mr("cat", *files)
    assert result.returncode == 0
    assert len(result.stdout.splitlines()) == 18
    assert {line.split("\t")[0] for line in result.stdout.splitlines()} == {
        f"uuid-{n}-{i}" for n in range(6) for i in range(3)}


def test_cat_of_a_damaged_file_prints_what_it_can_then_fails(tmp_path):
    damaged = tmp_path / "1.2.v1.log.x.lz4"
    good = [f"id-{i}\t{os.urandom(300).hex()}\n" for i in range(2000)]
    with open(damaged, "wb") as raw, LZ4.open_write(raw) as out:
        out.write("".join(good).encode())
    with open(damaged, "r+b") as f:
        f.truncate(os.path.getsize(damaged) // 2)
    result = run_mr("cat", str(damaged), str(REAL_PING))
    assert result.returncode == 1
    printed = result.stdout.splitlines(keepends=True)
    assert printed[:-1] == good[: len(printed) - 1] and len(printed) > 500
    assert printed[-1].startswith(REAL_UUID)  # the next file is still printed
    assert f"{damaged}: damaged after {len(printed) - 1} records" in result.stderr
    assert "Traceback" not in result.stderr


def test_cat_into_a_closed_pipe_stops_at_once_and_cleanly(tmp_path):
    big = tmp_path / "1.2.v1.log.x.lz4"
    with open(big, "wb") as raw, LZ4.open_write(raw) as out:
        for i in range(100_000):
            out.write(b"id-%d\t{\"pad\":\"%s\"}\n" % (i, b"x" * 1000))
    with open(big, "r+b") as f:  # damaged at the very end: reading that far would say so
        f.truncate(big.stat().st_size - 100)
    cat = subprocess.Popen([sys.executable, str(ROOT / "bin" / "mr"), "cat", str(big)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = cat.stdout.readline()
    cat.stdout.close()
    _, stderr = cat.communicate(timeout=120)
    assert first.startswith(b"id-0\t")
    assert cat.returncode == 0
    assert stderr == b""  # it stopped long before the damage at the end of the 100 MB


def test_cat_into_head_in_a_shell_pipeline(store):
    [first] = find_files(str(store))[:1]
    result = subprocess.run(f"'{sys.executable}' '{ROOT}/bin/mr' cat '{first.path}' | head -1",
                            shell=True, capture_output=True, text=True, timeout=30)
    assert result.stdout.startswith("uuid-") and result.stderr == ""


def test_ls_lists_files_with_dimensions_sizes_and_a_total(store):
    result = run_mr("ls", "--data-dir", str(store))
    assert result.returncode == 0
    *rows, total = result.stdout.splitlines()
    assert len(rows) == 6
    path, dims, size = rows[0].split("\t")
    assert os.path.getsize(path) == int(size)
    assert dims == "idle_daily/Firefox/beta/22.0/20130520000000/20130603"
    total_bytes = sum(int(r.split("\t")[2]) for r in rows)
    assert total.startswith(f"total: 6 files, {total_bytes} bytes")


def test_ls_with_a_range_filter(store, tmp_path):
    nightly = tmp_path / "nightly.json"
    nightly.write_text(json.dumps({"version": 1, "dimensions": [
        {"field_name": "reason", "allowed_values": ["saved-session"]},
        {"field_name": "appName", "allowed_values": "*"},
        {"field_name": "appUpdateChannel", "allowed_values": ["nightly", "release"]},
        {"field_name": "appVersion", "allowed_values": "*"},
        {"field_name": "appBuildID", "allowed_values": {"max": "20130602000000"}},
        {"field_name": "submission_date", "allowed_values": {"min": "20130602"}}]}))
    result = run_mr("ls", "-d", str(store), "-f", str(nightly))
    *rows, total = result.stdout.splitlines()
    assert [r.split("\t")[1] for r in rows] == [
        "saved_session/Firefox/nightly/24.0a1/20130601030202/20130602",
        "saved_session/Firefox/release/21.0/20130511120000/20130602"]
    assert total.startswith("total: 2 files")


def test_ls_partitions_groups_by_directory(store):
    result = run_mr("ls", "--data-dir", str(store), "--partitions")
    *rows, _ = result.stdout.splitlines()
    nightly = [r for r in rows if r.startswith(str(store / "saved_session/Firefox/nightly/24.0a1"))]
    assert len(rows) == 5 and nightly[0].split("\t")[1] == "2 files"


def test_ls_of_an_empty_selection_is_not_an_error(store, tmp_path):
    none = tmp_path / "none.json"
    names = ["appName", "appUpdateChannel", "appVersion", "appBuildID", "submission_date"]
    none.write_text(json.dumps({"dimensions": [{"field_name": "reason", "allowed_values": "main"}] + [
        {"field_name": name, "allowed_values": "*"} for name in names]}))
    result = run_mr("ls", "-d", str(store), "-f", str(none))
    assert result.returncode == 0 and result.stdout == "total: 0 files, 0 bytes (0 bytes)\n"


def test_ls_with_a_bad_filter_names_the_file_and_exits_2(store, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"dimensions": [{"field_name": "reason", "allowed_values": 7}]}')
    result = run_mr("ls", "-d", str(store), "-f", str(bad))
    assert result.returncode == 2
    assert f"{bad}: dimension 0 ('reason')" in result.stderr and "Traceback" not in result.stderr


def test_ls_of_a_missing_directory_exits_2(tmp_path):
    result = run_mr("ls", "-d", str(tmp_path / "nowhere"))
    assert result.returncode == 2 and "no such directory" in result.stderr


def test_mr_runs_as_a_module_too():
    result = subprocess.run([sys.executable, "-m", "mapreduce", "ls", "-d", str(REAL_STORE)],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0 and result.stdout.startswith(str(REAL_PING))
