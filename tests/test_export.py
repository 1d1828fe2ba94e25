"""`mr export` against a real S3-compatible server on 127.0.0.1: keys, content, verification, resuming."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storage import LayoutWriter, compress_pending
from storage.export import compressed_files, key_for

from .conftest import run_mr
from .stalling_proxy import StallingProxy

DIMS = [["saved-session", "Firefox", channel, "24.0a1", f"2013060{day}030202", f"2013060{day}"]
        for channel in ("nightly", "beta") for day in range(1, 4)]


@pytest.fixture
def store(tmp_path):
    """Six compressed logs and one pending (rotated, not yet compressed) log."""
    base = tmp_path / "store"
    with LayoutWriter(str(base)) as writer:
        for n, dims in enumerate(DIMS):
            for i in range(50):
                writer.write(f"id-{n}-{i}", {"n": n, "pad": os.urandom(100).hex()}, dims)
        writer.rotate_all()
    compress_pending(str(base))
    with LayoutWriter(str(base)) as writer:
        writer.write("late-1", {"late": True}, DIMS[0])
        writer.rotate_all()  # leaves one pending log for export to compress first
    return base


def export(s3_server, store, bucket, *args):
    return run_mr("export", "--storage", str(store), "--bucket", bucket, "--s3-endpoint-url", s3_server.url, *args)


def bucket_contents(s3_server, bucket) -> dict[str, bytes]:
    client = s3_server.client()
    keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", [])]
    return {key: client.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


def test_every_file_lands_under_its_relative_key_with_its_content(s3_server, store, bucket):
    result = export(s3_server, store, bucket, "--prefix", "v2")
    assert result.returncode == 0, result.stderr
    local = {key_for(str(store), path, "v2"): Path(path).read_bytes() for path in compressed_files(str(store))}
    assert len(local) == 7  # the pending log was compressed first
    assert bucket_contents(s3_server, bucket) == local
    assert all(key.startswith("v2/saved_session/Firefox/") for key in local)
    assert result.stdout.startswith("exported 7 files")


def test_a_rerun_skips_what_is_already_there(s3_server, store, bucket):
    export(s3_server, store, bucket)
    result = export(s3_server, store, bucket)
    assert result.returncode == 0 and "exported 0 files" in result.stdout and "skipped 7" in result.stdout


def test_delete_removes_only_verified_files(s3_server, store, bucket):
    compress_pending(str(store))
    local = {key_for(str(store), p, ""): Path(p).read_bytes() for p in compressed_files(str(store))}
    (store / "notes.txt").write_text("not a log")
    result = export(s3_server, store, bucket, "--delete")
    assert result.returncode == 0, result.stderr
    assert compressed_files(str(store)) == [] and not list(store.rglob("*.compressme"))
    assert bucket_contents(s3_server, bucket) == local
    assert (store / "notes.txt").exists()  # only exported logs are removed


def test_a_failure_in_the_middle_loses_nothing_and_a_rerun_completes(s3_server, store, bucket):
    compress_pending(str(store))
    local = {key_for(str(store), p, ""): Path(p).read_bytes() for p in compressed_files(str(store))}
    # Once the second upload has been answered, the server stops answering: its verification and every
    # later file time out, whatever the speed of the machine.
    proxy = StallingProxy(s3_server.port,
                          lambda proxy, request, sent: sum(r.startswith("PUT ") for r in proxy.answered) >= 2)
    try:
        result = run_mr("export", "--storage", str(store), "--bucket", bucket, "--s3-endpoint-url", proxy.url,
                        "--delete", "--workers", "1", "--s3-timeout", "1", "--s3-retries", "0")
    finally:
        proxy.release()
    assert proxy.stalled.is_set()
    assert result.returncode == 1 and "cannot reach the S3 endpoint" in result.stdout
    assert result.stdout.startswith("exported 1 files") and "removed 1 local files, failed 6" in result.stdout
    assert len(compressed_files(str(store))) == 6  # only the verified file was removed
    assert len(bucket_contents(s3_server, bucket)) == 2  # the second arrived, but was never verified

    result = export(s3_server, store, bucket, "--delete")
    assert result.returncode == 0, result.stdout
    assert bucket_contents(s3_server, bucket) == local and compressed_files(str(store)) == []


@pytest.mark.parametrize("problem, message", [
    ("missing-bucket", "does not exist; check the bucket name"),
    ("unreachable", "cannot reach the S3 endpoint"),
])
def test_errors_people_meet_are_one_line_with_advice(s3_server, store, problem, message):
    if problem == "missing-bucket":
        result = export(s3_server, store, "no-such-bucket-here")
    else:
        result = run_mr("export", "--storage", str(store), "--bucket", "b", "--s3-endpoint-url", "http://127.0.0.1:9",
                        "--s3-retries", "0", "--s3-timeout", "1")
    assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr


def test_missing_credentials_are_explained(s3_server, store, tmp_path):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    environment.update(HOME=str(tmp_path), AWS_CONFIG_FILE=str(tmp_path / "none"),
                       AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_EC2_METADATA_DISABLED="true")
    result = run_mr("export", "--storage", str(store), "--bucket", "b", "--s3-endpoint-url", s3_server.url,
                    env=environment)
    assert result.returncode == 1 and "no AWS credentials found" in result.stderr


BAD_S3_OPTIONS = [
    (["--s3-endpoint-url", "not a url"], "argument --s3-endpoint-url: 'not a url' is not a URL of the form "
                                         "http(s)://HOST[:PORT]"),
    (["--s3-endpoint-url", "http://127.0.0.1:99999"], "argument --s3-endpoint-url: 'http://127.0.0.1:99999' is not "
                                                      "a URL (Port out of range"),
    (["--s3-retries", "-1"], "argument --s3-retries: -1 is negative"),
    (["--s3-timeout", "0"], "argument --s3-timeout: 0 is not a positive number of seconds"),
    (["--s3-timeout", "nan"], "argument --s3-timeout: nan is not a positive number of seconds"),
    (["--bucket", "my/bucket"], "argument --bucket: 'my/bucket' is not a bucket name"),
    (["--prefix", "v2/../v3"], "argument --prefix: 'v2/../v3' cannot be a key prefix: it has a '..' part"),
    (["--prefix", "v2//x"], "argument --prefix: 'v2//x' cannot be a key prefix: it has an empty part"),
    (["--workers", "0"], "argument --workers: 0 is not a positive number"),
]


@pytest.mark.parametrize("options, message", BAD_S3_OPTIONS, ids=[" ".join(o) for o, _ in BAD_S3_OPTIONS])
def test_s3_options_that_cannot_work_are_refused_before_any_request(s3_server, store, bucket, options, message):
    before = s3_server.requests(bucket)
    result = export(s3_server, store, bucket, *options)
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr
    assert s3_server.requests(bucket) == before and list(store.rglob("*.compressme"))  # nothing was done


def test_an_endpoint_from_the_environment_that_is_not_a_url_is_one_line(s3_server, store, bucket):
    environment = dict(os.environ, AWS_ENDPOINT_URL="not a url")
    result = run_mr("export", "--storage", str(store), "--bucket", bucket, env=environment)
    assert result.returncode == 1
    assert result.stderr.splitlines() == ["mr: ERROR: AWS_ENDPOINT_URL: 'not a url' is not a URL of the form "
                                          "http(s)://HOST[:PORT]"]
