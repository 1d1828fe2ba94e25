"""`mr run` over a bucket on a real S3-compatible server on 127.0.0.1: listing, cache, --local-only, S3 output."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import botocore.exceptions
import pytest

from mapreduce.destination import Destination
from mapreduce.engine import run_job
from mapreduce.errors import JobError
from mapreduce.job import load_job
from mapreduce.options import RunOptions
from mapreduce.plan import make_plan
from mapreduce.s3inputs import S3Source, s3_inputs
from storage import Schema, find_files
from storage.cache import DOWNLOAD_SUFFIX, Cache
from storage.export import export_logs
from storage.remote import list_layout
from storage.s3 import S3Settings, make_client

from .conftest import JOBS, ROOT, SHIPPED, run_mr
from .stalling_proxy import StallingProxy

PREFIX = "v2"
NIGHTLY_OCTOBER_10_11 = {"version": 1, "dimensions": [
    {"field_name": "reason", "allowed_values": "*"},
    {"field_name": "appName", "allowed_values": ["Firefox"]},
    {"field_name": "appUpdateChannel", "allowed_values": ["nightly"]},
    {"field_name": "appVersion", "allowed_values": "*"},
    {"field_name": "appBuildID", "allowed_values": "*"},
    {"field_name": "submission_date", "allowed_values": {"min": "20131010", "max": "20131011"}},
]}


@pytest.fixture
def filled(s3_server, bucket, data) -> str:
    """The session's sample store uploaded under PREFIX."""
    stats = export_logs(str(data), s3_server.client(), bucket, PREFIX)
    assert stats.files == len(find_files(str(data))) and not stats.failed
    return bucket


@pytest.fixture
def nightly(tmp_path) -> Path:
    path = tmp_path / "nightly.json"
    path.write_text(json.dumps(NIGHTLY_OCTOBER_10_11))
    return path


def s3_run(s3_server, bucket, tmp_path, job, *args, output="out.txt", work="work"):
    (tmp_path / work).mkdir(exist_ok=True)
    out = tmp_path / output
    result = run_mr("run", str(job), "--bucket", bucket, "--prefix", PREFIX, "--work-dir", str(tmp_path / work),
                    "--s3-endpoint-url", s3_server.url, "--output", str(out), *args)
    return result, out.read_bytes() if out.exists() else None


def local_run(data, tmp_path, job, *args):
    out = tmp_path / "local.txt"
    result = run_mr("run", str(job), "--data-dir", str(data), "--output", str(out), *args)
    assert result.returncode == 0, result.stderr
    return out.read_bytes()


def test_a_selective_filter_lists_only_the_prefixes_it_allows(s3_server, filled, data, nightly):
    before = len(s3_server.requests(filled))
    selection = Schema.load(str(nightly))
    listing = list_layout(s3_server.client(), filled, PREFIX, selection)
    lists = [r for r in s3_server.requests(filled)[before:] if "list-type=2" in r]

    assert sorted(o.relative for o in listing.objects) == sorted(f.relative for f in find_files(str(data), selection))
    assert listing.objects and listing.list_calls == len(lists)
    prefixes = sorted(r.split("prefix=")[1].split("&")[0] for r in lists)
    # The root is listed for the reasons; app and channel come from the filter, so the next lists are
    # <reason>/Firefox/nightly/ and its versions; nothing under another channel or app is ever listed.
    assert prefixes[0] == f"{PREFIX}/"
    assert all(p.startswith(f"{PREFIX}/") for p in prefixes)
    assert all("/Firefox/nightly/" in p for p in prefixes[1:])
    reasons = {f.dimensions[0] for f in find_files(str(data))}
    versions = {(f.dimensions[0], f.dimensions[3]) for f in find_files(str(data)) if f.dimensions[2] == "nightly"}
    assert len(lists) == 1 + len(reasons) + len(versions)


def test_a_job_over_s3_is_byte_identical_to_the_same_job_on_local_disk(s3_server, filled, data, tmp_path):
    job = SHIPPED / "histogram_aggregation.py"
    result, s3_output = s3_run(s3_server, filled, tmp_path, job, "-m", "2")
    assert result.returncode == 0, result.stderr
    assert s3_output == local_run(data, tmp_path, job)
    assert f"downloaded:   {len(find_files(str(data)))} files" in result.stderr
    cached = find_files(str(tmp_path / "work" / "cache" / PREFIX))
    assert [f.relative for f in cached] == [f.relative for f in find_files(str(data))]
    assert not list((tmp_path / "work").glob("mr-*"))  # the spill directory went; the cache stays


def test_a_second_run_downloads_nothing(s3_server, filled, tmp_path):
    first, output = s3_run(s3_server, filled, tmp_path, JOBS / "no_combine.py")
    assert first.returncode == 0, first.stderr
    before = len(s3_server.requests(filled))
    second, again = s3_run(s3_server, filled, tmp_path, JOBS / "no_combine.py", output="again.txt")
    assert second.returncode == 0, second.stderr
    assert again == output
    assert "downloaded:" not in second.stderr
    assert not [r for r in s3_server.requests(filled)[before:] if r.startswith("GET") and "list-type" not in r]


def test_local_files_and_objects_of_the_same_key_are_read_once(s3_server, filled, data, tmp_path):
    result, output = s3_run(s3_server, filled, tmp_path, JOBS / "no_combine.py", "--data-dir", str(data))
    assert result.returncode == 0, result.stderr
    assert output == local_run(data, tmp_path, JOBS / "no_combine.py")
    assert "downloaded:" not in result.stderr  # every object was also local
    assert not (tmp_path / "work" / "cache" / PREFIX).exists()


def test_local_only_reads_the_cache_and_warns_when_a_listing_never_covered_the_filter(s3_server, filled, data,
                                                                                     tmp_path, nightly):
    listed, narrow = s3_run(s3_server, filled, tmp_path, JOBS / "no_combine.py", "--input-filter", str(nightly))
    assert listed.returncode == 0, listed.stderr
    before = len(s3_server.requests(filled))

    covered, again = s3_run(s3_server, filled, tmp_path, JOBS / "no_combine.py", "--input-filter", str(nightly),
                            "--local-only", "--s3-endpoint-url", "http://127.0.0.1:9", output="again.txt")
    assert covered.returncode == 0, covered.stderr
    assert again == narrow and "WARNING" not in covered.stderr

    wider, _ = s3_run(s3_server, filled, tmp_path, JOBS / "no_combine.py", "--local-only", output="wide.txt")
    assert wider.returncode == 3  # success on data that may be partial is not reported as success
    assert "no earlier run listed" in wider.stderr and "THE RESULT MAY BE INCOMPLETE" in wider.stderr

    strict, _ = s3_run(s3_server, filled, tmp_path, JOBS / "no_combine.py", "--local-only", "--strict",
                       output="strict.txt")
    assert strict.returncode == 2 and "refusing (--strict)" in strict.stderr
    assert not (tmp_path / "strict.txt").exists()
    assert len(s3_server.requests(filled)) == before  # --local-only never contacted the bucket


def test_an_interrupted_download_is_never_read_as_a_whole_file(s3_server, bucket, data, tmp_path):
    client = s3_server.client()
    export_logs(str(data), client, bucket, PREFIX)
    big = f"{PREFIX}/saved_session/Firefox/release/24.0/20131012150202.20131012.v2.log.0000big.lz4"
    client.put_object(Bucket=bucket, Key=big, Body=os.urandom(4 << 20))
    # The server stops answering half way into the big object, so the download is always under way when
    # the run is killed.
    proxy = StallingProxy(s3_server.port, lambda proxy, request, sent: f"/{big} " in request and sent >= 2 << 20)
    work = tmp_path / "work"
    work.mkdir()
    command = [sys.executable, str(ROOT / "bin" / "mr"), "run", str(JOBS / "no_combine.py"), "--bucket", bucket,
               "--prefix", PREFIX, "--work-dir", str(work), "--s3-endpoint-url", proxy.url,
               "--download-threads", "1", "--output", str(tmp_path / "killed.txt")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    partial = work / "cache" / Path(big).parent
    try:
        wait_for(lambda: proxy.stalled.is_set() and any(p.stat().st_size for p in partial.glob(f"*{DOWNLOAD_SUFFIX}")),
                 process)
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate()
        proxy.release()
    [leftover] = partial.glob(f"*{DOWNLOAD_SUFFIX}")
    assert 0 < leftover.stat().st_size < 4 << 20
    assert not (work / "cache" / big).exists()

    result, output = s3_run(s3_server, bucket, tmp_path, JOBS / "no_combine.py", "--local-only")
    assert result.returncode == 3, result.stderr  # incomplete, and said so; the random bytes were never read
    cached = find_files(str(work / "cache" / PREFIX))
    absent = len(find_files(str(data))) + 1 - len(cached)
    assert f"--local-only: {absent} objects" in result.stderr and "are not (whole) in the cache" in result.stderr
    assert output == local_run(work / "cache" / PREFIX, tmp_path, JOBS / "no_combine.py")
    assert all(DOWNLOAD_SUFFIX not in f.path for f in cached)

    client.delete_object(Bucket=bucket, Key=big)  # now a full run completes and clears the leftover
    full, complete = s3_run(s3_server, bucket, tmp_path, JOBS / "no_combine.py", output="full.txt")
    assert full.returncode == 0, full.stderr
    assert complete == local_run(data, tmp_path, JOBS / "no_combine.py")


def wait_for(condition, process: subprocess.Popen) -> None:
    """Wait until ``condition()`` holds; fail if ``process`` ends first (or, as a last resort, after a minute)."""
    deadline = time.monotonic() + 60
    while not condition():
        assert process.poll() is None, f"the run ended before the condition held: {process.stderr.read()}"
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.01)


def test_delete_data_never_deletes_local_files_that_may_not_be_uploaded_yet(s3_server, filled, data, tmp_path):
    local = tmp_path / "local"
    stored = find_files(str(data))
    for f in stored[::2]:  # half the files are also in the data dir (not yet uploaded, say)
        (local / f.relative).parent.mkdir(parents=True, exist_ok=True)
        (local / f.relative).write_bytes(Path(f.path).read_bytes())
    before = sorted(f.relative for f in find_files(str(local)))
    result, output = s3_run(s3_server, filled, tmp_path, JOBS / "no_combine.py", "-X", "--data-dir", str(local))
    assert result.returncode == 0, result.stderr
    assert output == local_run(data, tmp_path, JOBS / "no_combine.py")
    assert sorted(f.relative for f in find_files(str(local))) == before  # every local file is still there
    assert find_files(str(tmp_path / "work" / "cache" / PREFIX)) == []  # the downloaded copies went


def test_delete_data_removes_each_cached_file_after_mapping(s3_server, filled, data, tmp_path):
    result, output = s3_run(s3_server, filled, tmp_path, JOBS / "no_combine.py", "-X")
    assert result.returncode == 0, result.stderr
    assert output == local_run(data, tmp_path, JOBS / "no_combine.py")
    assert find_files(str(tmp_path / "work" / "cache" / PREFIX)) == []
    again, _ = s3_run(s3_server, filled, tmp_path, JOBS / "no_combine.py", "--local-only", output="again.txt")
    assert again.returncode == 3 and "not (whole) in the cache" in again.stderr


@pytest.mark.parametrize("allow_partial", [False, True])
def test_an_object_that_cannot_be_downloaded_fails_the_job_with_its_key(s3_server, filled, data, tmp_path,
                                                                        allow_partial):
    client = s3_server.client()
    source = S3Source(filled, PREFIX, Cache(str(tmp_path / "cache")), S3Settings(s3_server.url))
    inputs = s3_inputs(source, None, None)
    gone = inputs.files[3]
    key = f"{PREFIX}/{gone.relative}"
    client.delete_object(Bucket=filled, Key=key)  # deleted between listing and download
    plan = make_plan(inputs.files, None)
    options = RunOptions(num_mappers=2, work_dir=str(tmp_path), allow_partial=allow_partial)
    output = tmp_path / "out.txt"
    with open(output, "w") as f:
        if not allow_partial:
            with pytest.raises(JobError, match=f"s3://{filled}/{key}: download failed after 1 attempt"):
                run_job(load_job(str(JOBS / "no_combine.py")), plan, options, f, fetcher=inputs.fetcher)
            return
        result = run_job(load_job(str(JOBS / "no_combine.py")), plan, options, f, fetcher=inputs.fetcher)
    assert result.missing == [gone.path]
    rest = tmp_path / "rest"
    for f in find_files(str(data)):
        if f.relative != gone.relative:
            (rest / f.relative).parent.mkdir(parents=True, exist_ok=True)
            (rest / f.relative).write_bytes(Path(f.path).read_bytes())
    assert output.read_bytes() == local_run(rest, tmp_path, JOBS / "no_combine.py")


def test_output_to_s3_is_uploaded_verified_with_its_sidecar(s3_server, filled, data, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    result = run_mr("run", str(JOBS / "no_combine.py"), "--data-dir", str(data), "--work-dir", str(work),
                    "--s3-endpoint-url", s3_server.url, "--output", f"s3://{filled}/results/channels.txt")
    assert result.returncode == 0, result.stderr
    client = s3_server.client()
    uploaded = client.get_object(Bucket=filled, Key="results/channels.txt")["Body"].read()
    assert uploaded == local_run(data, tmp_path, JOBS / "no_combine.py")
    meta = json.loads(client.get_object(Bucket=filled, Key="results/channels.txt.meta.json")["Body"].read())
    assert meta["records"] == 300
    assert not list((work / "outputs").rglob("*.txt*"))  # the staged copies went once the upload was confirmed


def test_a_failed_upload_keeps_the_output_and_names_it(s3_server, filled, tmp_path):
    destination = Destination.parse(f"s3://{filled}/results/out.txt", str(tmp_path), lambda: S3Settings(s3_server.url))
    Path(destination.local).write_text("the result\n")
    Path(destination.local + ".meta.json").write_text("{}\n")
    unreachable = Destination(destination.local, filled, "results/out.txt",
                              make_client(S3Settings("http://127.0.0.1:9", retries=0, timeout=2)))
    with pytest.raises(JobError) as failure:
        unreachable.publish()
    assert "s3://" in str(failure.value) and "results/out.txt" in str(failure.value)
    assert f"the output is kept at {destination.local}" in str(failure.value)
    assert Path(destination.local).read_text() == "the result\n"


def test_an_output_bucket_that_does_not_exist_fails_before_any_work(s3_server, data, tmp_path):
    result = run_mr("run", str(JOBS / "no_combine.py"), "--data-dir", str(data), "--work-dir", str(tmp_path),
                    "--s3-endpoint-url", s3_server.url, "--output", "s3://no-such-bucket-here/out.txt")
    assert result.returncode == 2
    assert result.stderr.strip() == ("mr: ERROR: --output: bucket 'no-such-bucket-here' does not exist; "
                                     "check the bucket name (and --prefix)")


def test_reading_a_missing_bucket_is_one_line(s3_server, tmp_path):
    result, _ = s3_run(s3_server, "no-such-bucket-there", tmp_path, JOBS / "no_combine.py")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "mr: ERROR: bucket 'no-such-bucket-there' does not exist; check the bucket name (and --prefix)"]


class FlakyClient:
    """The real client, except that the first download of each key fails as a dropped connection does."""

    def __init__(self, client):
        self.client = client
        self.failed: set[str] = set()

    def get_object(self, **arguments):
        if arguments["Key"] not in self.failed:
            self.failed.add(arguments["Key"])
            raise botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1")
        return self.client.get_object(**arguments)


def test_a_failed_download_is_retried_and_the_file_arrives_whole(s3_server, filled, data, tmp_path, caplog):
    client = s3_server.client()
    [obj] = list_layout(client, filled, PREFIX).objects[:1]
    cache = Cache(str(tmp_path / "cache"))
    with caplog.at_level(logging.WARNING):
        cache.fetch(FlakyClient(client), filled, obj)
    assert "download attempt 1 failed" in caplog.text and "retrying" in caplog.text
    local = next(f for f in find_files(str(data)) if f.relative == obj.relative)
    assert Path(cache.path_for(obj.key)).read_bytes() == Path(local.path).read_bytes()
    assert cache.holds(obj)


BAD_RUN_OPTIONS = [
    (["--s3-endpoint-url", "not a url"], "argument --s3-endpoint-url: 'not a url' is not a URL"),
    (["--s3-retries", "-2"], "argument --s3-retries: -2 is negative"),
    (["--s3-timeout", "-1"], "argument --s3-timeout: -1 is not a positive number of seconds"),
    (["--bucket", "my bucket"], "--bucket: 'my bucket' is not a bucket name"),
    (["--prefix", "../v2"], "--prefix: '../v2' cannot be a key prefix: it has a '..' part"),
    (["--prefix", "v2//saved_session"], "--prefix: 'v2//saved_session' cannot be a key prefix: it has an empty part"),
    (["--prefix", "x" * 300], "cannot be cached under"),
]


@pytest.mark.parametrize("options, message", BAD_RUN_OPTIONS, ids=[" ".join(o)[:30] for o, _ in BAD_RUN_OPTIONS])
def test_s3_options_that_cannot_work_are_one_error_and_exit_2_before_any_request(s3_server, bucket, tmp_path,
                                                                                 options, message):
    before = s3_server.requests(bucket)
    (tmp_path / "work").mkdir()
    result = run_mr("run", str(SHIPPED / "count.py"), "--bucket", bucket, "--s3-endpoint-url", s3_server.url,
                    "--work-dir", str(tmp_path / "work"), "--output", str(tmp_path / "out.txt"), *options)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr.splitlines()[-1] and "Traceback" not in result.stderr
    assert s3_server.requests(bucket) == before
    assert not (tmp_path / "work" / "cache").exists() or not list((tmp_path / "work" / "cache").rglob("*.lz4"))


def copy_object(client, bucket: str, source: str, key: str) -> None:
    client.put_object(Bucket=bucket, Key=key, Body=client.get_object(Bucket=bucket, Key=source)["Body"].read())


@pytest.mark.parametrize("allow_partial", [False, True])
def test_a_key_too_long_for_the_cache_fails_by_name_or_is_left_out(s3_server, filled, data, tmp_path, allow_partial):
    client = s3_server.client()
    [first, *_] = list_layout(client, filled, PREFIX).objects
    directory = first.key.rsplit("/", 1)[0]
    long_name = f"{directory}/20131010030202.20131010.v2.log.{'a' * 240}.lz4"  # over NAME_MAX with its suffix
    long_directory = f"{PREFIX}/saved_session/Firefox/nightly/{'9' * 300}/20131010030202.20131010.v2.log.u.lz4"
    for key in (long_name, long_directory):
        copy_object(client, filled, first.key, key)
    result, output = s3_run(s3_server, filled, tmp_path, SHIPPED / "count.py",
                            *(["--allow-partial"] if allow_partial else []))
    assert "Traceback" not in result.stderr and "retrying" not in result.stderr
    if not allow_partial:
        assert result.returncode == 1 and output is None
        [error] = [line for line in result.stderr.splitlines() if "ERROR" in line]
        assert f"s3://{filled}/{long_name}: cannot be cached under {tmp_path / 'work' / 'cache'}: its file name is " \
               in error or f"s3://{filled}/{long_directory}: cannot be cached" in error
        return
    assert result.returncode == 3, result.stderr
    assert output == local_run(data, tmp_path, SHIPPED / "count.py")  # the copies were left out
    meta = json.loads((tmp_path / "out.txt.meta.json").read_text())
    assert sorted(meta["missing_inputs"]) == sorted(f"s3://{filled}/{key}" for key in (long_name, long_directory))
    assert "a part is 300 bytes long, the file system allows 255" in result.stderr


def test_keys_that_are_not_clean_paths_never_reach_outside_the_cache(s3_server, filled, data, tmp_path):
    client = s3_server.client()
    [first, *_] = list_layout(client, filled, PREFIX).objects
    name = first.key.rsplit("/", 1)[1]
    odd = [f"{PREFIX}/saved_session/../../../../escaped/Firefox/nightly/24.0a1/{name}",
           f"{PREFIX}/saved_session//Firefox/nightly/{name}",
           f"{PREFIX}/saved_session/./Firefox/nightly/24.0a1/{name}"]
    for key in odd:
        copy_object(client, filled, first.key, key)
    (tmp_path / "work").mkdir()
    before = set(tmp_path.rglob("*"))
    result, output = s3_run(s3_server, filled, tmp_path, SHIPPED / "count.py")
    assert result.returncode == 0, result.stderr
    assert output == local_run(data, tmp_path, SHIPPED / "count.py")
    assert "is not part of a storage layout" in result.stderr and "Traceback" not in result.stderr
    written = set(tmp_path.rglob("*")) - before
    assert all(p.is_relative_to(tmp_path / "work" / "cache") or p.name.startswith(("out.txt", "local.txt"))
               for p in written)


def test_a_filter_value_that_is_no_path_part_lists_nothing(s3_server, filled, tmp_path):
    client = s3_server.client()
    [first, *_] = list_layout(client, filled, PREFIX).objects
    copy_object(client, filled, first.key, f"{PREFIX}/../Firefox/nightly/24.0a1/{first.key.rsplit('/', 1)[1]}")
    names = Schema.default().field_names
    dotted = Schema.from_document({"dimensions": [
        {"field_name": n, "allowed_values": [".."] if n == "reason" else "*"} for n in names]})
    assert list_layout(client, filled, PREFIX, dotted).objects == []
