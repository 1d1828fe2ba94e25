"""Where a run's output goes: a local file, stdout, or an S3 object staged locally and uploaded at the end.

An S3 output is written under ``<work-dir>/outputs/<bucket>/<key>`` like a
local one, then uploaded with its sidecar and verified; only then are the
local copies removed. If the upload fails, the error names the key, the
reason and the local file that still holds the result.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Callable

from .errors import JobError, JobLoadError

log = logging.getLogger(__name__)

META_SUFFIX = ".meta.json"


@dataclass(frozen=True)
class Destination:
    local: str
    """Where the job writes: the output file, a staging file for S3, or ``-`` for stdout."""
    bucket: str | None = None
    key: str | None = None
    client: Any = None

    @classmethod
    def parse(cls, output: str, work_dir: str, settings: Callable[[], Any]) -> "Destination":
        """Check the destination before any work: a writable directory, or an existing bucket."""
        if not output.startswith("s3://"):
            if output != "-":
                _check_writable(output)
            return cls(output)
        from storage.s3 import S3Error, check_bucket, make_client, parse_s3_url  # boto3: only when used
        try:
            bucket, key = parse_s3_url(output)
            client = make_client(settings())
            check_bucket(client, bucket)
        except S3Error as e:
            raise JobLoadError(f"--output: {e}") from None
        local = os.path.join(work_dir, "outputs", bucket, *key.split("/"))
        os.makedirs(os.path.dirname(local), exist_ok=True)
        return cls(local, bucket, key, client)

    def publish(self) -> None:
        """Upload the staged output and its sidecar, verified, then remove them; JobError if that fails."""
        if self.bucket is None:
            return
        from storage.s3 import S3Error, upload_verified
        for path, key in ((self.local, self.key), (self.local + META_SUFFIX, self.key + META_SUFFIX)):
            try:
                upload_verified(self.client, path, self.bucket, key)
            except (S3Error, OSError) as e:
                raise JobError(f"uploading the output failed: {e}; the output is kept at {self.local}") from None
        for path in (self.local, self.local + META_SUFFIX):
            os.remove(path)
        log.info("uploaded the output to s3://%s/%s (and %s)", self.bucket, self.key, META_SUFFIX)


def _check_writable(output: str) -> None:
    directory = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(directory):
        raise JobLoadError(f"{output}: the output's directory does not exist")
    if not os.access(directory, os.W_OK) or (os.path.exists(output) and not os.access(output, os.W_OK)):
        raise JobLoadError(f"{output}: cannot write there")
