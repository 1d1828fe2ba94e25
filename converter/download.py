"""One HTTP(S) GET of a definitions file that stays where it was sent: http(s) only, no redirect to
another scheme, host or port, no compressed body, and never more than a given number of bytes read."""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
import urllib.request

FETCH_TIMEOUT = 30
"""Seconds for connecting and for each read."""
FETCH_DEADLINE = 120
"""Seconds for the whole body, so a server sending a byte at a time cannot hold a run."""
_CHUNK = 1 << 16
_SCHEMES = ("http", "https")


class DownloadRefused(Exception):
    """The server answered with something not to be followed or read (retrying will not help)."""


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if _origin(newurl) != _origin(req.full_url):
            raise DownloadRefused(f"{req.full_url}: redirected to {newurl}, another scheme, host or port; "
                                  "not followed")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_SameOriginRedirects)


def http_get(url: str, max_size: int) -> bytes:
    """The body at ``url``; urllib's errors as they are, DownloadRefused for what must not be read."""
    if urllib.parse.urlsplit(url).scheme not in _SCHEMES:
        raise DownloadRefused(f"{url}: only http and https URLs are fetched")
    try:
        response = _OPENER.open(url, timeout=FETCH_TIMEOUT)
    except urllib.error.HTTPError as e:
        if 300 <= e.code < 400:  # urllib's own refusal of a redirect (to file:, or too many)
            raise DownloadRefused(f"{url}: {e.reason}; not followed") from None
        raise
    with response:
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding != "identity":
            raise DownloadRefused(f"{url}: the server sent a {encoding}-encoded body, which was not asked for")
        return _read_body(url, response, max_size)


def _read_body(url: str, response, max_size: int) -> bytes:
    body = bytearray()
    deadline = time.monotonic() + FETCH_DEADLINE
    while chunk := response.read(min(_CHUNK, max_size + 1 - len(body))):
        body += chunk
        if len(body) > max_size:
            raise DownloadRefused(f"{url}: larger than {max_size:,} bytes; not a real Histograms.json")
        if time.monotonic() > deadline:
            raise DownloadRefused(f"{url}: still arriving after {FETCH_DEADLINE} s; given up")
    return bytes(body)


def _origin(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()
