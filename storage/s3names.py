"""What S3 bucket names, keys and endpoints must look like, checked before any request is made.

No boto3 here (it takes 0.2 s to import), so argument parsing can use these
checks. Each returns what is wrong, in words, or None.
"""

from __future__ import annotations

import re
import urllib.parse

BUCKET_NAME = re.compile(r"[a-zA-Z0-9._-]{1,255}")
"""What boto3 accepts. S3's rules for new buckets (3-63 lowercase letters, digits, dots and hyphens) are
stricter, but older buckets and other S3-compatible services allow more."""
MAX_KEY_BYTES = 1024
"""S3's limit on a key, in UTF-8 bytes."""


def bucket_problem(name: str) -> str | None:
    if name.startswith("arn:") or BUCKET_NAME.fullmatch(name):
        return None  # an access point ARN is for S3 itself to judge
    return f"{name!r} is not a bucket name (letters, digits, '.', '-' and '_', at most 255)"


def key_problem(key: str) -> str | None:
    """What keeps ``key`` from being a clean relative path, which is how the layout and the cache use keys."""
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        return f"it is longer than S3's {MAX_KEY_BYTES} bytes"
    if "\0" in key:
        return "it contains a NUL character"
    odd = next((part for part in key.split("/") if part in ("", ".", "..")), None)
    if odd is None:
        return None
    return "it has an empty part (a leading, doubled or trailing '/')" if odd == "" else f"it has a {odd!r} part"


def prefix_problem(prefix: str) -> str | None:
    """As ``key_problem``, for a prefix given with or without slashes at its ends."""
    problem = key_problem(prefix.strip("/")) if prefix.strip("/") else None
    return problem and f"{prefix!r} cannot be a key prefix: {problem}"


def endpoint_problem(url: str) -> str | None:
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as e:
        return f"{url!r} is not a URL ({e})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not a URL of the form http(s)://HOST[:PORT]"
    return None
