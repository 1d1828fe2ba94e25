"""Which repositories a payload may name for its definitions, and where those are fetched and cached.

Anyone can send a payload, so its ``info.revision`` must not choose where the
converter connects: definitions are fetched only from repositories under an
allowed URL prefix. A payload names its repository over http or https (real
ones say ``http://hg.mozilla.org/...``); it is fetched with the scheme of the
prefix that allows it, so the default prefix fetches the production server
over https. Host, port and path are compared part by part, never as text, and
a repository URL with anything unusual in it (credentials, a query, ``..``,
escapes) is refused rather than normalised.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from dataclasses import dataclass
from typing import Iterable

DEFAULT_REPOSITORIES = ("https://hg.mozilla.org/",)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_PATH_SEGMENT = re.compile(r"[A-Za-z0-9_~-][A-Za-z0-9_.~-]*\Z")
_HOST = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?\Z")
_SHOWN_LENGTH = 120


class UntrustedRepository(ValueError):
    """A repository URL that is malformed or under no allowed prefix; the message says which and why."""


@dataclass(frozen=True)
class Location:
    """A repository URL taken apart: the scheme, and the host, port and path segments that identify it."""

    scheme: str
    host: str
    port: int | None
    """None for the scheme's default port."""
    segments: tuple[str, ...]

    @classmethod
    def parse(cls, url: str) -> "Location":
        """The parts of an http(s) URL with a plain path; UntrustedRepository saying what is wrong."""
        if not (url.isascii() and url.isprintable()) or " " in url:  # urlsplit would quietly drop tabs and newlines
            raise UntrustedRepository(f"{shown(url)}: a repository URL is printable ASCII without spaces")
        try:
            parts = urllib.parse.urlsplit(url)
            port = parts.port
        except ValueError:
            raise UntrustedRepository(f"{shown(url)} is not a valid URL") from None
        if parts.scheme not in _DEFAULT_PORTS:
            raise UntrustedRepository(f"{shown(url)}: only http and https repositories are fetched from")
        host = parts.hostname or ""
        if "@" in parts.netloc or not _HOST.match(host) or parts.query or parts.fragment or "#" in url:
            raise UntrustedRepository(f"{shown(url)} is not a plain repository URL (host and path only)")
        segments = tuple(s for s in parts.path.split("/") if s)
        if not all(_PATH_SEGMENT.match(s) for s in segments):
            raise UntrustedRepository(f"{shown(url)}: its path has characters a repository path does not")
        return cls(parts.scheme, host, None if port == _DEFAULT_PORTS[parts.scheme] else port, segments)

    @property
    def identity(self) -> tuple[str, int | None, tuple[str, ...]]:
        """What makes two URLs the same repository: not the scheme (http and https name the same one)."""
        return self.host, self.port, self.segments

    def within(self, prefix: "Location") -> bool:
        """Is this repository under ``prefix`` (same host and port, path starting with its segments)?"""
        return ((self.host, self.port) == (prefix.host, prefix.port)
                and self.segments[:len(prefix.segments)] == prefix.segments)

    def url(self, scheme: str) -> str:
        netloc = self.host if self.port is None else f"{self.host}:{self.port}"
        return urllib.parse.urlunsplit((scheme, netloc, "/".join(("",) + self.segments), "", ""))

    def cache_directory(self, cache_dir: str) -> str:
        """Where this repository's fetched definitions are kept: ``<cache>/<host>[_<port>]/<path>``."""
        host = self.host if self.port is None else f"{self.host}_{self.port}"
        return os.path.join(cache_dir, host, *self.segments)


class AllowedRepositories:
    """The allow-list: a payload's repository is fetched from only if it is under one of these prefixes."""

    def __init__(self, prefixes: Iterable[str] = DEFAULT_REPOSITORIES):
        self.prefixes = [Location.parse(prefix) for prefix in prefixes]

    def source(self, repository: str) -> tuple[Location, str]:
        """(the named repository, the URL to fetch it from); UntrustedRepository if it is not allowed."""
        named = Location.parse(repository)
        for prefix in self.prefixes:
            if named.within(prefix):
                return named, named.url(prefix.scheme)
        raise UntrustedRepository(f"repository {shown(repository)} is not an allowed repository "
                                  "(mr convert --repository adds one)")


def shown(text: str) -> str:
    """Text from a payload, safe to print on one line: control characters escaped, long text cut."""
    escaped = text[:_SHOWN_LENGTH + 1].encode("unicode_escape").decode("ascii")
    return escaped if len(escaped) <= _SHOWN_LENGTH else escaped[:_SHOWN_LENGTH] + "..."
