"""`mr run` end to end on generated data: the job API, determinism, memory, and every failure mode."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from storage import find_files

from .conftest import JOBS, ROOT, SHIPPED, mr_run, run_mr, tsv, wait_for

def test_an_original_telemetry_server_job_runs_unchanged(data, truth, tmp_path):
    result, text = mr_run(SHIPPED / "osdistribution.py", data, tmp_path)
    assert result.returncode == 0, result.stderr
    assert tsv(text) == {os_name: str(count) for os_name, count in truth["oses"].items()}
    assert list(tsv(text)) == sorted(truth["oses"])


def test_job_scripts_import_modules_beside_them(data, truth, tmp_path):
    result, text = mr_run(JOBS / "sibling_import.py", data, tmp_path)
    assert tsv(text) == {f"from-helper:{c}": str(n) for c, n in truth["channels"].items()}


def test_map_only_writes_every_pair_sorted_by_key_then_input_order(data, truth, tmp_path):
    result, text = mr_run(JOBS / "map_only.py", data, tmp_path)
    lines = [tuple(line.split("\t")) for line in text.splitlines()]
    assert lines == sorted(truth["uuids"], key=lambda pair: pair[0])  # stable: input order within a key


def test_combine_runs_in_mappers_and_shrinks_the_shuffle(data, truth, tmp_path):
    combined, text = mr_run(JOBS / "counted_combine.py", data, tmp_path, output="a.txt")
    plain, plain_text = mr_run(JOBS / "no_combine.py", data, tmp_path, output="b.txt")
    assert text == plain_text == "".join(f"{c}\t{n}\n" for c, n in sorted(truth["channels"].items()))
    with_combine = json.loads((tmp_path / "a.txt.meta.json").read_text())
    without = json.loads((tmp_path / "b.txt.meta.json").read_text())
    assert with_combine["counters"]["combine calls"] > 0
    assert without["shuffle_values"] == sum(truth["channels"].values())  # one value per ping
    assert with_combine["shuffle_values"] <= 4 * 2  # one per channel per bundle


@pytest.mark.parametrize("job", ["histogram_aggregation.py", "histogram_distribution.py"])
def test_output_is_identical_for_any_number_of_mappers_and_reducers(data, tmp_path, job):
    outputs = {args: mr_run(SHIPPED / job, data, tmp_path, "-m", args[0], "-r", args[1], output=f"{args}.txt")[1]
               for args in (("1", "1"), ("2", "1"), ("1", "3"), ("2", "4"))}
    assert len(set(outputs.values())) == 1
    assert len(next(iter(outputs.values())).splitlines()) > 100


def test_keys_of_every_type_come_out_in_one_stable_order(data, tmp_path):
    one = mr_run(JOBS / "mixed_keys.py", data, tmp_path, "-r", "1", output="1.txt")[1]
    three = mr_run(JOBS / "mixed_keys.py", data, tmp_path, "-r", "3", "-m", "1", output="3.txt")[1]
    assert one == three
    keys = [line.split("\t")[0] for line in one.splitlines()]
    channels = ("aurora", "beta", "nightly", "release")
    # None, bools, numbers (ints and floats together), strings, tuples, lists, dicts.
    assert keys == (["None", "True", "0.25", "0.75", "1.25", "1.75", "2", "3", "4", "5", "6", "0", "1", "2"]
                    + [f"('{c}', {n})" for c in channels for n in (0, 1)]
                    + [f"['{c}']" for c in channels] + [f"{{'c': '{c}'}}" for c in channels])


def test_the_histogram_aggregation_sums_arrays_and_counts_pings(data, tmp_path):
    result, text = mr_run(SHIPPED / "histogram_aggregation.py", data, tmp_path)
    rows = [json.loads(line) for line in text.splitlines()]
    expected: dict[tuple, list] = {}
    for stored in find_files(str(data)):
        for _, payload in stored.open():
            for name, array in json.loads(payload)["histograms"].items():
                key = (stored.dimensions[2], stored.dimensions[3].split(".")[0], name)
                if key not in expected:
                    expected[key] = [0, [0] * len(array)]
                expected[key][0] += 1
                expected[key][1] = [a + b for a, b in zip(expected[key][1], array)]
    assert len(rows) == len(expected)
    for row in rows:
        pings, sums = expected[(row["channel"], row["version"], row["histogram"])]
        assert row["pings"] == pings
        assert row["values"] == pytest.approx(sums)


def test_setup_map_finish_map_and_counters(data, truth, tmp_path):
    result, text = mr_run(JOBS / "per_worker.py", data, tmp_path, "-m", "2")
    total = sum(truth["channels"].values())
    assert tsv(text) == {"pings": str(total)}
    assert f"counter pings seen: {total}" in result.stderr


def test_value_errors_are_bad_records_counted_and_sampled(data, truth, tmp_path):
    result, text = mr_run(JOBS / "bad_values.py", data, tmp_path)
    bad = sum(1 for _, uuid in truth["uuids"] if int(uuid.replace("-", ""), 16) % 10 == 0)
    assert result.returncode == 0
    assert tsv(text) == {"good": str(len(truth["uuids"]) - bad)}
    assert f"bad records:  {bad}" in result.stderr
    assert "ValueError: not the ping I wanted" in result.stderr and ".lz4:" in result.stderr


def test_an_exception_in_map_fails_the_job_naming_the_place_and_the_jobs_traceback(data, tmp_path):
    (tmp_path / "out.txt").write_text("previous result\n")
    result, text = mr_run(JOBS / "raises.py", data, tmp_path)
    assert result.returncode == 1
    assert "map() raised KeyError: 'no such field' at " in result.stderr and ".lz4:" in result.stderr
    assert "raises.py\", line 2, in lookup" in result.stderr
    assert "mapreduce/" not in result.stderr  # the job's frames, not the engine's
    assert text == "previous result\n"  # a failed job leaves the old output alone
    assert not list(tmp_path.glob(".out.txt.*"))  # and no half-written temporary


def test_max_errors_lets_the_job_succeed_with_a_warning(data, truth, tmp_path):
    failing = sum(1 for _, uuid in truth["uuids"] if int(uuid.replace("-", ""), 16) % 7 == 0)
    result, text = mr_run(JOBS / "raises.py", data, tmp_path, "--max-errors", str(failing))
    assert result.returncode == 0, result.stderr
    assert tsv(text) == {"ok": str(len(truth["uuids"]) - failing)}
    assert f"errors:       {failing}" in result.stderr and "--max-errors" in result.stderr


def test_an_exception_in_reduce_names_the_key(data, tmp_path):
    result, _ = mr_run(JOBS / "raises_in_reduce.py", data, tmp_path)
    assert result.returncode == 1
    assert "reduce() raised RuntimeError: cannot reduce beta at key 'beta'" in result.stderr


@pytest.mark.parametrize("job, message", [("syntax_error.py", "syntax_error.py:1: syntax error"),
                                          ("no_map.py", "defines no map(key, dims, value, context)"),
                                          ("nowhere.py", "no such job script")])
def test_a_job_that_does_not_load_is_one_line_and_exit_2(data, tmp_path, job, message):
    result, _ = mr_run(JOBS / job, data, tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_bad_filter_missing_data_and_unwritable_output_exit_2_before_work(data, tmp_path):
    bad_filter = tmp_path / "f.json"
    bad_filter.write_text("{}")
    assert run_mr("run", str(JOBS / "map_only.py"), "-d", str(data), "-f", str(bad_filter)).returncode == 2
    assert run_mr("run", str(JOBS / "map_only.py"), "-d", str(tmp_path / "none")).returncode == 2
    result = run_mr("run", str(JOBS / "map_only.py"), "-d", str(data), "-o", str(tmp_path / "no" / "out"))
    assert result.returncode == 2 and "directory does not exist" in result.stderr


def test_a_filter_that_matches_nothing_is_an_empty_output(data, tmp_path):
    none = tmp_path / "none.json"
    names = ["appName", "appUpdateChannel", "appVersion", "appBuildID", "submission_date"]
    none.write_text(json.dumps({"dimensions": [{"field_name": "reason", "allowed_values": ["main"]}] +
                                [{"field_name": name, "allowed_values": "*"} for name in names]}))
    result, text = mr_run(JOBS / "map_only.py", data, tmp_path, "-f", str(none))
    assert result.returncode == 0 and text == "" and "selects no files" in result.stderr


def damaged_copy(data: Path, tmp_path: Path) -> tuple[Path, str]:
    copy = tmp_path / "store"
    shutil.copytree(data, copy)
    victim = find_files(str(copy))[0].path
    with open(victim, "r+b") as f:
        f.truncate(os.path.getsize(victim) // 2)
    return copy, victim


def test_a_damaged_input_fails_the_job_naming_the_file(data, tmp_path):
    copy, victim = damaged_copy(data, tmp_path)
    result, text = mr_run(JOBS / "no_combine.py", copy, tmp_path)
    assert result.returncode == 1 and text is None
    assert f"{victim}: damaged after" in result.stderr and "--allow-partial" in result.stderr


def test_allow_partial_says_data_was_missing(data, truth, tmp_path):
    copy, victim = damaged_copy(data, tmp_path)
    result, text = mr_run(JOBS / "no_combine.py", copy, tmp_path, "--allow-partial")
    assert result.returncode == 3
    assert f"MISSING input: {victim}" in result.stderr
    assert sum(int(v) for v in tsv(text).values()) < len(truth["uuids"])
    assert json.loads((tmp_path / "out.txt.meta.json").read_text())["missing_inputs"] == [victim]


def test_a_killed_worker_is_named_and_its_files_retried(data, truth, tmp_path):
    marker = tmp_path / "killed-once"
    env = dict(os.environ, MR_TEST_MARKER=str(marker))
    result, text = mr_run(JOBS / "killer.py", data, tmp_path, "-m", "2", env=env)
    assert result.returncode == 0, result.stderr
    assert marker.exists() and "was killed by SIGKILL while reading" in result.stderr
    assert tsv(text) == {c: str(n) for c, n in truth["channels"].items()}  # nothing lost, nothing twice


def peak_memory_kb(*command: str) -> int:
    """Peak RSS of the biggest process a command starts, measured from a fresh parent."""
    probe = ("import resource, subprocess, sys;"
             "subprocess.run(sys.argv[1:], check=True, capture_output=True);"
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    return int(subprocess.run([sys.executable, "-c", probe, *command], capture_output=True, text=True,
                              check=True).stdout)


def test_a_reduction_bigger_than_the_memory_budget_completes_within_it(data, tmp_path):
    def run(job: Path, budget: str) -> int:
        return peak_memory_kb(sys.executable, str(ROOT / "bin" / "mr"), "run", str(job), "-d", str(data),
                              "-o", str(tmp_path / f"{job.stem}-{budget}.txt"), "-m", "1", "--memory", budget)

    floor = run(SHIPPED / "count.py", "16")  # mr itself, measured here: what any run costs
    small, large = run(JOBS / "many_keys.py", "16") - floor, run(JOBS / "many_keys.py", "4096") - floor
    assert (tmp_path / "many_keys-16.txt").read_text() == (tmp_path / "many_keys-4096.txt").read_text()
    assert (tmp_path / "many_keys-16.txt").read_text().count("\n") == 300 * 2000
    assert small < 2 * 16 << 10  # kB: within the 16 MB budget, give or take its estimate
    assert large > 4 * small  # and the budget is what kept it there: unbounded, the same job grows far past


def test_keys_go_to_the_same_reducer_in_every_process_and_run():
    code = ("from mapreduce.keys import order_key, partition_of;"
            "print([partition_of(order_key(k), 7) for k in ('nightly', ('a', 1), 3, None, 'x' * 40)])")
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                           env=dict(os.environ, PYTHONHASHSEED=seed)).stdout for seed in ("1", "2", "3")}
    assert len(runs) == 1 and runs.pop().startswith("[")


def test_ctrl_c_stops_every_process_promptly(data, tmp_path):
    work, marker = tmp_path / "work", tmp_path / "started"
    work.mkdir()
    job = subprocess.Popen([sys.executable, str(ROOT / "bin" / "mr"), "run", str(JOBS / "started.py"), "-d", str(data),
                            "-o", str(tmp_path / "out.txt"), "-m", "2", "-w", str(work)],
                           stderr=subprocess.PIPE, start_new_session=True,
                           env=dict(os.environ, MR_TEST_MARKER=str(marker)))
    wait_for(marker.exists, "the run to start mapping")
    os.killpg(job.pid, signal.SIGINT)
    _, stderr = job.communicate(timeout=60)
    assert job.returncode == 130
    wait_for(lambda: _processes_in_session(job.pid) == [], "every process of the run to end")
    assert not (tmp_path / "out.txt").exists()
    assert list(work.iterdir()) == []  # spill files cleaned up too


def _processes_in_session(session: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == session and fields[0] != "Z":
                found.append(int(entry))
    return found


def test_dry_run_prints_the_plan_and_runs_nothing(data, tmp_path):
    result = run_mr("run", str(JOBS / "map_only.py"), "-d", str(data), "--dry-run", "-m", "2")
    assert result.returncode == 0
    assert "files" in result.stdout and "appUpdateChannel: aurora (" in result.stdout
    assert "worker 0:" in result.stdout and "worker 1:" in result.stdout


def test_sample_is_stable_and_keeps_every_channel(data, truth, tmp_path):
    first = mr_run(JOBS / "no_combine.py", data, tmp_path, "--sample", "0.3", output="1.txt")[1]
    second = mr_run(JOBS / "no_combine.py", data, tmp_path, "--sample", "0.3", output="2.txt")[1]
    assert first == second
    sampled = {k: int(v) for k, v in tsv(first).items()}
    assert set(sampled) == set(truth["channels"])
    assert sum(sampled.values()) < sum(truth["channels"].values())


def test_the_provenance_sidecar(data, tmp_path):
    mr_run(SHIPPED / "count.py", data, tmp_path, "-m", "2")
    meta = json.loads((tmp_path / "out.txt.meta.json").read_text())
    assert meta["job"]["sha256"] and meta["job"]["path"].endswith("jobs/count.py")
    assert len(meta["inputs"]) == len(find_files(str(data)))
    assert meta["records"] == 300 and meta["output_records"] == 1
    assert meta["options"]["num_mappers"] == 2 and meta["mr_version"]


def test_python_dash_m_mapreduce_job_is_mr_run(data, tmp_path):
    result = subprocess.run([sys.executable, "-m", "mapreduce.job", str(SHIPPED / "count.py"), "-d", str(data)],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0 and result.stdout == "pings\t300\n"
