"""S3 access for the storage layout: a client with clear errors, and verified uploads of stored logs.

A bucket holds the layout exactly as on disk (``<prefix>/<reason>/<app>/...``).
An upload is verified by size and by its ETag, which for files uploaded here
is the MD5 of the content (single part) or the MD5 of the parts' MD5s with a
``-N`` suffix (multipart); both are computed locally and compared.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig

from .errors import StorageError
from .s3names import MAX_KEY_BYTES, bucket_problem, endpoint_problem

log = logging.getLogger(__name__)

MULTIPART_THRESHOLD = 64 << 20
PART_SIZE = 16 << 20


class S3Error(StorageError):
    """S3 could not be used; the message says what to fix."""


S3_ERRORS = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, S3UploadFailedError)
"""What boto3 raises for S3 trouble (as opposed to bugs)."""


@dataclass(frozen=True)
class S3Settings:
    endpoint_url: str | None = None
    """Any S3-compatible service; None uses AWS_ENDPOINT_URL or AWS itself."""
    retries: int = 5
    timeout: float = 60.0


def make_client(settings: S3Settings) -> Any:
    """A boto3 S3 client from the standard credential chain (environment, config files, roles).

    S3Error, before any request, if the endpoint (an option or AWS_ENDPOINT_URL) is not a URL.
    """
    endpoint = settings.endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint and endpoint_problem(endpoint):
        source = "--s3-endpoint-url" if settings.endpoint_url else "AWS_ENDPOINT_URL"
        raise S3Error(f"{source}: {endpoint_problem(endpoint)}")
    config = botocore.config.Config(retries={"max_attempts": settings.retries + 1, "mode": "standard"},
                                    connect_timeout=settings.timeout, read_timeout=settings.timeout,
                                    max_pool_connections=32)
    return boto3.client("s3", endpoint_url=endpoint, config=config)


def transfer_config() -> TransferConfig:
    return TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=PART_SIZE,
                          use_threads=False)


def expected_etag(path: str, size: int) -> str:
    """The ETag S3 gives ``path`` when uploaded with ``transfer_config()``."""
    with open(path, "rb") as f:
        if size < MULTIPART_THRESHOLD:
            return hashlib.md5(f.read()).hexdigest()
        parts = [hashlib.md5(chunk).digest() for chunk in iter(lambda: f.read(PART_SIZE), b"")]
    return f"{hashlib.md5(b''.join(parts)).hexdigest()}-{len(parts)}"


def remote_etag(client: Any, bucket: str, key: str) -> tuple[int, str] | None:
    """(size, ETag) of an object, or None if there is none."""
    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except botocore.exceptions.ClientError as e:
        if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    return head["ContentLength"], head["ETag"].strip('"')


def upload_verified(client: Any, path: str, bucket: str, key: str, skip_existing: bool = False) -> bool:
    """Upload ``path`` (multipart when large) and check the object's size and ETag against the file.

    Returns False if ``skip_existing`` and the same content is already there.
    Raises S3Error, naming the key and the reason, if it cannot be done.
    """
    size = os.path.getsize(path)
    etag = expected_etag(path, size)
    try:
        if skip_existing and remote_etag(client, bucket, key) == (size, etag):
            return False
        client.upload_file(path, bucket, key, Config=transfer_config())
        found = remote_etag(client, bucket, key)
    except S3_ERRORS as e:
        raise explain(e, bucket, key) from None
    if found != (size, etag):
        raise S3Error(f"s3://{bucket}/{key}: verification failed: the bucket has (size, ETag) {found}, "
                      f"expected {(size, etag)}")
    return True


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key); S3Error unless both are there."""
    bucket, _, key = url.removeprefix("s3://").partition("/")
    if not url.startswith("s3://") or not bucket or not key or key.endswith("/"):
        raise S3Error(f"{url}: expected s3://BUCKET/KEY (a key naming an object, not ending in /)")
    problem = bucket_problem(bucket) or (f"the key is longer than S3's {MAX_KEY_BYTES} bytes"
                                         if len(key.encode("utf-8")) > MAX_KEY_BYTES else None)
    if problem:
        raise S3Error(f"{url}: {problem}")
    return bucket, key


def check_bucket(client: Any, bucket: str) -> None:
    """Fail early, in one line, if the bucket cannot be used."""
    try:
        client.head_bucket(Bucket=bucket)
    except S3_ERRORS as e:
        raise explain(e, bucket) from None


def explain(error: BaseException, bucket: str, key: str | None = None) -> S3Error:
    """A one-line message for the errors people meet, saying what to fix."""
    where = f"s3://{bucket}/{key}" if key else f"bucket {bucket!r}"
    if isinstance(error, botocore.exceptions.NoCredentialsError):
        return S3Error("no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                       "or configure a profile (aws configure)")
    if isinstance(error, (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError,
                          botocore.exceptions.ReadTimeoutError)):
        return S3Error(f"cannot reach the S3 endpoint for {where}: {error}; check --s3-endpoint-url "
                       "(or AWS_ENDPOINT_URL) and the network")
    if isinstance(error, botocore.exceptions.ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        if code in ("404", "NoSuchBucket"):
            return S3Error(f"{where} does not exist; check the bucket name (and --prefix)")
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return S3Error(f"access denied to {where}: check the credentials and their permissions")
        return S3Error(f"{where}: S3 said {code}: {error.response.get('Error', {}).get('Message', error)}")
    return S3Error(f"{where}: {error}")
