"""`mr convert --journal`: a run stopped by a full disk or by Ctrl-C can be re-run and stores each record once."""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest

from .conftest import ROOT, raw_payload
from .test_convert_command import summary_counts
from .test_convert_limits import active_logs, big_records, convert, fill_cache, record, stored_uuids
from .test_revision_fetching import Misbehaving


def test_a_rerun_after_a_full_disk_stores_each_record_once(tmp_path):
    log = tmp_path / "in.log"
    log.write_bytes(big_records(40))
    journal = tmp_path / "journal.json"

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))

    first = convert(tmp_path, log, extra=("--journal", str(journal), "--workers", "2"), preexec_fn=limit_file_size)
    assert first.returncode == 1 and "File too large" in first.stdout
    assert "a re-run with the same --journal stores only the rest" in first.stdout
    stored_first = summary_counts(first.stdout)["converted"]
    assert 0 < stored_first < 40

    again = convert(tmp_path, log, extra=("--journal", str(journal), "--workers", "2"))
    assert again.returncode == 0, again.stderr
    assert summary_counts(again.stdout)["skipped"] == stored_first
    assert summary_counts(again.stdout)["converted"] == 40 - stored_first
    assert Counter(stored_uuids(tmp_path / "store")) == Counter(f"big-{n:04d}" for n in range(40))
    assert active_logs(tmp_path / "store") == []


def test_a_rerun_of_a_finished_run_stores_nothing_twice(tmp_path):
    log = tmp_path / "in.log"
    log.write_bytes(b"".join(record(f"r{n}") for n in range(500)))
    journal = tmp_path / "journal.json"
    assert convert(tmp_path, log, extra=("--journal", str(journal))).returncode == 0
    again = convert(tmp_path, log, extra=("--journal", str(journal)))
    assert again.returncode == 0 and summary_counts(again.stdout)["skipped"] == 500
    assert sorted(stored_uuids(tmp_path / "store")) == sorted(f"r{n}" for n in range(500))


def test_an_input_that_changed_is_converted_again(tmp_path):
    log = tmp_path / "in.log"
    log.write_bytes(record("a"))
    journal = tmp_path / "journal.json"
    assert convert(tmp_path, log, extra=("--journal", str(journal))).returncode == 0
    log.write_bytes(record("b"))
    again = convert(tmp_path, log, extra=("--journal", str(journal)))
    assert "skipped" not in summary_counts(again.stdout)
    assert sorted(stored_uuids(tmp_path / "store")) == ["a", "b"]


@pytest.mark.parametrize("content", ["{", '{"version": 1, "done": {"x": [[1]]}}', "[]"])
def test_a_damaged_journal_is_a_usage_error(tmp_path, content):
    log = tmp_path / "in.log"
    log.write_bytes(record("a"))
    (tmp_path / "journal.json").write_text(content)
    result = convert(tmp_path, log, extra=("--journal", str(tmp_path / "journal.json")))
    assert result.returncode == 2 and "journal" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_lets_the_batches_in_flight_finish_and_a_rerun_stores_the_rest_once(tmp_path, stop):
    """A payload whose revision is on a server that answers only when told holds a batch in flight;
    the signal arrives while it waits, so the run is stopped with work genuinely in progress."""
    release = threading.Event()
    stalling = Misbehaving(lambda path: (release.wait(60), (404, {}, b""))[1])
    try:
        stalled = raw_payload(f"http://127.0.0.1:{stalling.port}/repo/rev/00000000abcd", {})
        records = [record(f"r{n}") for n in range(300)] + [record("stalled", stalled)]
        records += [record(f"r{n}") for n in range(300, 1000)]
        log = tmp_path / "in.log"
        log.write_bytes(b"".join(records))
        journal = tmp_path / "journal.json"
        fill_cache(tmp_path)
        command = [sys.executable, str(ROOT / "bin" / "mr"), "convert", str(log), "--storage",
                   str(tmp_path / "store"), "--histogram-cache", str(tmp_path / "cache"), "--repository",
                   f"http://127.0.0.1:{stalling.port}/", "--journal", str(journal), "--workers", "1"]
        stalling.requests.clear()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not stalling.requests and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stalling.requests, "the stalled payload's revision was never asked for"
        process.send_signal(stop)
        release.set()
        stdout, stderr = process.communicate(timeout=120)
    finally:
        release.set()
        stalling.close()
    assert process.returncode == 128 + stop, stderr
    assert "Traceback" not in stderr and "stopped: interrupted" in stdout
    first = stored_uuids(tmp_path / "store")
    assert 300 <= len(first) < 999 and len(set(first)) == len(first)
    assert summary_counts(stdout)["converted"] == len(first)
    assert active_logs(tmp_path / "store") == []

    again = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert Counter(stored_uuids(tmp_path / "store")) == Counter(f"r{n}" for n in range(1000))
    assert json.loads(journal.read_text())["version"] == 1
