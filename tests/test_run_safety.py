"""`mr run` as a careless, unlucky or hostile user meets it: outputs that must not be replaced, inputs that must
survive a failed job, full and foreign work dirs, killed runs, and job code that raises what it should not."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from storage import LayoutWriter, Schema, find_files
from storage.fastjson import dumps_indented

from .conftest import JOBS, ROOT, SHIPPED, mr_run, one_line_error, run_mr, tsv, wait_for

MR = [sys.executable, str(ROOT / "bin" / "mr")]
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (device nodes, other users' files, mounts)")


@pytest.fixture
def own_data(data, tmp_path) -> Path:
    """A copy of the sample data that a test may delete from or damage."""
    copy = tmp_path / "own-data"
    shutil.copytree(data, copy)
    return copy


# -- the output -----------------------------------------------------------------------

@needs_root
def test_a_device_output_is_written_through_not_replaced(data, tmp_path):
    device = tmp_path / "null"
    os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a /dev/null of our own
    result = run_mr("run", str(SHIPPED / "count.py"), "-d", str(data), "-o", str(device))
    assert result.returncode == 0, result.stderr
    assert stat.S_ISCHR(device.stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null"]  # no sidecar beside a device


@pytest.fixture
def full_device(tmp_path) -> Path:
    """A /dev/full to write to: our own node where we may make one, so a regression cannot replace the
    system's (as it once did); else the system's, which an unprivileged run cannot replace anyway."""
    if os.geteuid() != 0:
        return Path("/dev/full")
    device = tmp_path / "full"
    os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 7))
    return device


def test_a_full_device_output_fails_and_stays_a_device(data, full_device):
    result = run_mr("run", str(SHIPPED / "count.py"), "-d", str(data), "-o", str(full_device))
    assert result.returncode == 1
    assert one_line_error(result.stderr) == (f"mr: ERROR: writing the output to {full_device} failed: "
                                             "No space left on device")
    assert stat.S_ISCHR(full_device.stat().st_mode) and not Path(f"{full_device}.meta.json").exists()


def test_a_fifo_output_is_written_through(data, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    result = run_mr("run", str(SHIPPED / "count.py"), "-d", str(data), "-o", str(fifo))
    assert result.returncode == 0, result.stderr
    assert reader.communicate(timeout=60)[0] == b"pings\t300\n"
    assert stat.S_ISFIFO(fifo.stat().st_mode) and not (tmp_path / "fifo.meta.json").exists()


def test_an_output_that_is_a_directory_is_refused_before_any_work(data, tmp_path):
    result = run_mr("run", str(JOBS / "started.py"), "-d", str(data), "-o", str(tmp_path),
                    env=dict(os.environ, MR_TEST_MARKER=str(tmp_path / "started")))
    assert result.returncode == 2
    assert "is a directory; name a file" in one_line_error(result.stderr)
    assert not (tmp_path / "started").exists()


@pytest.mark.parametrize("target", ["an input", "inside the data dir", "the job", "a sidecar over an input"])
def test_an_output_over_the_inputs_is_refused(own_data, tmp_path, target):
    first = find_files(str(own_data))[0].path
    job = tmp_path / "count.py"
    shutil.copy(SHIPPED / "count.py", job)
    output = {"an input": first, "inside the data dir": str(own_data / "out.txt"), "the job": str(job),
              "a sidecar over an input": first.removesuffix(".meta.json")}[target]
    if target == "a sidecar over an input":
        os.rename(first, first + ".meta.json")
        output, first = first, first + ".meta.json"
    before = Path(first).read_bytes()
    result = run_mr("run", str(job), "-d", str(own_data), "-o", output)
    assert result.returncode == 2
    assert "Write the output elsewhere" in one_line_error(result.stderr)
    assert Path(first).read_bytes() == before and not (own_data / "out.txt").exists()


def test_a_failing_stdout_fails_the_run(data, full_device):
    with open(full_device, "w") as full:
        result = subprocess.run([*MR, "run", str(SHIPPED / "count.py"), "-d", str(data)], stdout=full,
                                stderr=subprocess.PIPE, text=True, timeout=120)
    assert result.returncode == 1
    assert one_line_error(result.stderr) == ("mr: ERROR: writing the output to standard output failed: "
                                             "No space left on device")


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_take_their_mode_from_the_umask(data, tmp_path, umask, mode):
    output = tmp_path / "out.txt"
    result = subprocess.run([*MR, "run", str(SHIPPED / "count.py"), "-d", str(data), "-o", str(output)],
                            capture_output=True, preexec_fn=lambda: os.umask(umask), timeout=120)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(output.stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "out.txt.meta.json").stat().st_mode) == mode


def test_a_full_disk_under_the_output_is_named_and_leaves_nothing(data, small_filesystem):
    disk = small_filesystem("out", 64)
    result = run_mr("run", str(JOBS / "many_keys.py"), "-d", str(data), "-o", str(disk / "out.txt"))
    assert result.returncode == 1
    assert one_line_error(result.stderr) == (f"mr: ERROR: writing the output to {disk}/out.txt failed: "
                                             "No space left on device")
    assert list(disk.iterdir()) == []


# -- -X deletes only what a successful job read --------------------------------------

def test_delete_data_keeps_the_inputs_of_a_job_that_fails(own_data, tmp_path):
    before = len(find_files(str(own_data)))
    result, text = mr_run(JOBS / "raises_in_reduce.py", own_data, tmp_path, "-X")
    assert result.returncode == 1 and text is None
    assert len(find_files(str(own_data))) == before


def test_delete_data_keeps_everything_when_an_input_is_damaged(own_data, tmp_path):
    files = find_files(str(own_data))
    _damage(files[0].path)
    result, _ = mr_run(SHIPPED / "count.py", own_data, tmp_path, "-X")
    assert result.returncode == 1
    assert len(find_files(str(own_data))) == len(files)


def test_delete_data_with_allow_partial_deletes_only_what_was_read_whole(own_data, tmp_path):
    files = find_files(str(own_data))
    _damage(files[0].path)
    result, _ = mr_run(SHIPPED / "count.py", own_data, tmp_path, "-X", "--allow-partial")
    assert result.returncode == 3, result.stderr
    assert [f.path for f in find_files(str(own_data))] == [files[0].path]


def test_delete_data_after_a_successful_job_deletes_its_inputs(own_data, tmp_path):
    result, text = mr_run(SHIPPED / "count.py", own_data, tmp_path, "-X")
    assert result.returncode == 0 and text == "pings\t300\n"
    assert find_files(str(own_data)) == []


def _damage(path: str) -> None:
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


# -- the work dir ---------------------------------------------------------------------

@needs_root
@pytest.mark.parametrize("problem", ["another user's", "open to others", "a symlink"])
def test_a_default_work_dir_that_is_not_private_is_refused(data, tmp_path, problem):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    work = tmp / f"mr-{os.getuid()}"
    if problem == "a symlink":
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        work.symlink_to(tmp_path / "elsewhere")
    else:
        work.mkdir(mode=0o700)
        if problem == "another user's":
            os.chown(work, 65534, 65534)
        else:
            work.chmod(0o755)
    result = run_mr("run", str(SHIPPED / "count.py"), "-d", str(data), env=dict(os.environ, TMPDIR=str(tmp)))
    assert result.returncode == 2
    assert "give another work dir with -w DIR" in one_line_error(result.stderr)


def test_the_default_work_dir_is_made_private(data, tmp_path):
    result = run_mr("run", str(SHIPPED / "count.py"), "-d", str(data), env=dict(os.environ, TMPDIR=str(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE((tmp_path / f"mr-{os.getuid()}").stat().st_mode) == 0o700


@needs_root
def test_an_s3_cache_that_another_user_owns_is_refused(tmp_path):
    (tmp_path / "cache").mkdir()
    os.chown(tmp_path / "cache", 65534, 65534)
    result = run_mr("run", str(SHIPPED / "count.py"), "-b", "some-bucket", "-l", "-w", str(tmp_path))
    assert result.returncode == 2
    assert "the S3 cache" in one_line_error(result.stderr) and "another user" in result.stderr


def test_a_full_work_dir_is_one_line_and_not_retried(data, small_filesystem):
    work = small_filesystem("work", 256)
    result = run_mr("run", str(JOBS / "many_keys.py"), "-d", str(data), "-o", "-", "-w", str(work),
                    "--memory", "16", "-m", "2")
    assert result.returncode == 1
    assert one_line_error(result.stderr) == (f"mr: ERROR: work dir {work}: no space left on device; free some "
                                             "space there or give another work dir with -w DIR")
    assert list(work.iterdir()) == []


def test_a_read_only_work_dir_is_refused_before_any_work(data, small_filesystem):
    work = small_filesystem("work", 64, read_only=True)
    result = run_mr("run", str(SHIPPED / "count.py"), "-d", str(data), "-w", str(work))
    assert result.returncode == 2
    assert "read-only file system" in one_line_error(result.stderr)


def test_a_killed_run_leaves_leftovers_that_the_next_run_removes(data, tmp_path):
    work, output, marker = tmp_path / "work", tmp_path / "out.txt", tmp_path / "started"
    work.mkdir()
    run = subprocess.Popen([*MR, "run", str(JOBS / "started.py"), "-d", str(data), "-o", str(output),
                            "-w", str(work)], stderr=subprocess.DEVNULL, env=dict(os.environ, MR_TEST_MARKER=str(marker)))
    wait_for(marker.exists, "the run to start mapping")
    run.kill()
    run.wait()
    leftovers = list(work.glob("mr-run-*")) + list(tmp_path.glob(".out.txt.*"))
    assert len(leftovers) == 2  # the scratch dir and the output's temporary file
    result, text = mr_run(SHIPPED / "count.py", data, tmp_path, "-w", str(work))
    assert result.returncode == 0 and text == "pings\t300\n"
    assert not any(path.exists() for path in leftovers)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt", "out.txt.meta.json", "started", "work"]


def test_a_live_runs_files_are_not_taken_for_leftovers(data, tmp_path):
    work, marker = tmp_path / "work", tmp_path / "started"
    work.mkdir()
    live = subprocess.Popen([*MR, "run", str(JOBS / "started.py"), "-d", str(data), "-o", str(tmp_path / "out.txt"),
                             "-w", str(work), "-m", "1"], stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, MR_TEST_MARKER=str(marker)))
    wait_for(marker.exists, "the run to start mapping")
    other, text = mr_run(SHIPPED / "count.py", data, tmp_path, "-w", str(work), output="other.txt")
    assert other.returncode == 0 and text == "pings\t300\n"
    _, stderr = live.communicate(timeout=120)
    assert live.returncode == 0, stderr
    assert (tmp_path / "out.txt").read_text() == "x\t1\n" * 300


# -- what the job's code raises --------------------------------------------------------

@pytest.mark.parametrize("kind", ["SystemExit", "KeyboardInterrupt"])
def test_a_map_raising_systemexit_or_keyboardinterrupt_is_the_jobs_error(data, tmp_path, kind):
    result, _ = mr_run(JOBS / "raises_base_exception.py", data, tmp_path, "-m", "2",
                       env=dict(os.environ, MR_TEST_RAISE=f"map:{kind}"))
    assert result.returncode == 1
    assert f"map() raised {kind}: " in result.stderr and "raises_base_exception.py\", line " in result.stderr
    assert "retrying" not in result.stderr and "exited with status" not in result.stderr


@pytest.mark.parametrize("kind", ["SystemExit", "KeyboardInterrupt"])
def test_a_reduce_raising_systemexit_or_keyboardinterrupt_is_the_jobs_error(data, tmp_path, kind):
    result, _ = mr_run(JOBS / "raises_base_exception.py", data, tmp_path,
                       env=dict(os.environ, MR_TEST_RAISE=f"reduce:{kind}"))
    assert result.returncode == 1
    assert f"reduce() raised {kind}: " in result.stderr


def test_a_job_that_exits_at_import_is_one_line(data):
    result = run_mr("run", str(JOBS / "exits_at_import.py"), "-d", str(data))
    assert result.returncode == 2
    assert one_line_error(result.stderr).endswith("failed to load: SystemExit: 5 (at "
                                                  f"{JOBS / 'exits_at_import.py'}:3)")


def test_json_nested_too_deep_is_a_bad_record(tmp_path):
    store = tmp_path / "store"
    with LayoutWriter(str(store), Schema.default(), version=2) as writer:
        dims = ["saved_session", "Firefox", "nightly", "27.0a1", "20131001030204", "20131002"]
        writer.write("deep", "[" * 100_000 + "]" * 100_000, dims)
        writer.write("fine", '{"info": {"OS": "Linux"}}', dims)
    result, text = mr_run(SHIPPED / "osdistribution.py", store, tmp_path)
    assert result.returncode == 0, result.stderr
    assert text == "Linux\t1\n" and "bad records:  1" in result.stderr


# -- options ---------------------------------------------------------------------------

def test_sigterm_stops_the_run_with_status_143(data, tmp_path):
    marker = tmp_path / "started"
    run = subprocess.Popen([*MR, "run", str(JOBS / "started.py"), "-d", str(data), "-o", str(tmp_path / "out.txt")],
                           stderr=subprocess.PIPE, text=True, env=dict(os.environ, MR_TEST_MARKER=str(marker)))
    wait_for(marker.exists, "the run to start mapping")
    run.send_signal(signal.SIGTERM)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 143
    assert "interrupted (SIGTERM)" in stderr and not (tmp_path / "out.txt").exists()


@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_prints_nothing_but_errors(data, where):
    args = ["run", str(SHIPPED / "count.py"), "-d", str(data)]
    result = run_mr(*(["-q", *args] if where == "before" else [*args, "-q"]))
    assert result.returncode == 0 and result.stdout == "pings\t300\n" and result.stderr == ""


@pytest.mark.parametrize("option", [["--max-errors", "-1"], ["--mapper-cmd", "'unterminated"],
                                    ["--reducer-cmd", "awk 'no end"]])
def test_bad_option_values_are_one_line(data, option):
    result = run_mr("run", str(SHIPPED / "count.py"), "-d", str(data), *option)
    assert result.returncode == 2
    assert one_line_error(result.stderr).startswith("mr")


def test_a_sample_says_how_many_files_it_took_and_why(data, tmp_path):
    total = len(find_files(str(data)))
    plan = run_mr("run", str(SHIPPED / "count.py"), "-d", str(data), "--sample", "0.1", "--dry-run")
    result, _ = mr_run(SHIPPED / "count.py", data, tmp_path, "--sample", "0.1")
    line = next(line for line in result.stderr.splitlines() if line.startswith("sample 0.1: "))
    taken = int(line.split()[2])
    assert line.startswith(f"sample 0.1: {taken} of {total} files") and "at least one file" in line
    assert line in plan.stdout.splitlines()
    assert tsv((tmp_path / "out.txt").read_text()) == {"pings": str(_pings_in_sample(tmp_path))}


def _pings_in_sample(tmp_path: Path) -> int:
    meta = json.loads((tmp_path / "out.txt.meta.json").read_text())
    assert meta["sample"]["taken"] == len(meta["inputs"])
    return meta["records"]


def test_a_value_with_a_set_nested_inside_is_the_jobs_error(data, tmp_path):
    result, _ = mr_run(JOBS / "writes_a_nested_set.py", data, tmp_path)
    assert result.returncode == 1
    assert "map() raised NotPlainData: wrote a value containing a set for key 'channels'" in result.stderr
    assert "Traceback" not in result.stderr and "retrying" not in result.stderr


def test_a_damaged_spill_run_is_one_line_with_several_reducers(data, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    result, _ = mr_run(JOBS / "damages_its_spills.py", data, tmp_path, "-m", "1", "-r", "3", "-w", str(work))
    assert result.returncode == 1
    assert "is damaged (" in one_line_error(result.stderr)


def test_the_sidecar_is_indented_json_even_with_integers_beyond_64_bits(tmp_path):
    document = {"counters": {"big": 2 ** 70, "small": 1}, "inputs": [{"path": "é", "bytes": 3}]}
    assert dumps_indented(document) == json.dumps(document, indent=2, ensure_ascii=False)
    assert dumps_indented({"small": 1}) == json.dumps({"small": 1}, indent=2)
