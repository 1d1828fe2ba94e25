"""Find the Histograms.json of the browser revision that sent a payload: memory, then disk, then the network.

A payload names its revision by URL (``http://hg.mozilla.org/releases/mozilla-release/rev/a55c55edf302``).
The on-disk cache is ``<cache-dir>/<rev>/Histograms.json``, which people may also
fill by hand. Fetch failures are retried, then remembered for the rest of the
run and reported once per revision; a missing revision never stops a run.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Mapping

from storage.documents import parse_json, read_text

from .errors import DefinitionError
from .histograms import Definitions

log = logging.getLogger(__name__)

DEFAULT_URL_TEMPLATE = "{repo}/raw-file/{rev}/toolkit/components/telemetry/Histograms.json"
_REVISION_ID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_.-]*$")
FETCH_TIMEOUT = 30


class RevisionCache:
    """Resolve revision URLs (or bare ids) to ``Definitions``.

    ``url_template`` takes ``{repo}`` (the revision URL before ``/rev/``) and
    ``{rev}``; None disables fetching. ``fallback`` maps channel -> build id or
    version -> revision, for payloads that do not name one.
    """

    def __init__(self, cache_dir: str | None, url_template: str | None = DEFAULT_URL_TEMPLATE, *,
                 fallback: Mapping[str, Mapping[str, str]] | None = None, retries: int = 3,
                 backoff: float = 0.5, fetch: Callable[[str], bytes] | None = None):
        self.cache_dir = cache_dir
        self.url_template = url_template
        self.fallback = fallback or {}
        self.retries = retries
        self.backoff = backoff
        self._fetch = fetch or _http_get
        self._loaded: dict[str, Definitions] = {}
        self.failures: dict[str, str] = {}
        """Revision id -> why it could not be had (reported once, remembered for the run)."""

    @staticmethod
    def load_fallback(path: str) -> dict[str, dict[str, str]]:
        """Read a ``{channel: {build id or version: revision}}`` file, checking its shape."""
        document = parse_json(read_text(path, DefinitionError), path, DefinitionError)
        if not isinstance(document, dict) or not all(
                isinstance(v, dict) and all(isinstance(r, str) for r in v.values()) for v in document.values()):
            raise DefinitionError(f"{path}: expected {{channel: {{build id or version: revision}}}}")
        return document

    def for_info(self, info: Mapping[str, Any]) -> Definitions | None:
        """The definitions for a payload's ``info``: its revision, else the fallback mapping."""
        revision = info.get("revision")
        if not revision:
            by_channel = self.fallback.get(str(info.get("appUpdateChannel")), {})
            revision = by_channel.get(str(info.get("appBuildID"))) or by_channel.get(str(info.get("appVersion")))
        return self.resolve(revision) if revision else None

    def resolve(self, revision: str) -> Definitions | None:
        rev, repo = split_revision(revision)
        if rev is None:
            self._fail(str(revision), "not a revision URL or id")
            return None
        if rev in self._loaded:
            return self._loaded[rev]
        if rev in self.failures:
            return None
        definitions = self._from_disk(rev) or self._from_network(rev, repo)
        if definitions is not None:
            self._loaded[rev] = definitions
        return definitions

    def _from_disk(self, rev: str) -> Definitions | None:
        if self.cache_dir is None:
            return None
        path = os.path.join(self.cache_dir, rev, "Histograms.json")
        if not os.path.exists(path):
            return None
        try:
            return Definitions.load(path)
        except DefinitionError as e:
            log.warning("%s; ignoring the cached copy", e)
            return None

    def _from_network(self, rev: str, repo: str | None) -> Definitions | None:
        if self.url_template is None:
            self._fail(rev, "not in the cache and fetching is off")
            return None
        if repo is None and "{repo}" in self.url_template:
            self._fail(rev, "a bare revision id has no repository to fetch from")
            return None
        url = self.url_template.format(repo=repo, rev=rev)
        body = self._fetch_with_retries(rev, url)
        if body is None:
            return None
        try:
            definitions = Definitions.from_json(body.decode("utf-8", "replace"), url)
        except DefinitionError as e:
            self._fail(rev, str(e))
            return None
        self._store(rev, body)
        return definitions

    def _fetch_with_retries(self, rev: str, url: str) -> bytes | None:
        for attempt in range(self.retries + 1):
            try:
                return self._fetch(url)
            except urllib.error.HTTPError as e:
                if 400 <= e.code < 500:
                    self._fail(rev, f"{url}: HTTP {e.code}")
                    return None
                problem = f"HTTP {e.code}"
            except (urllib.error.URLError, OSError) as e:
                problem = str(getattr(e, "reason", e))
            if attempt < self.retries:
                time.sleep(self.backoff * 2 ** attempt)
        self._fail(rev, f"{url}: {problem} (after {self.retries + 1} attempts)")
        return None

    def _store(self, rev: str, body: bytes) -> None:
        if self.cache_dir is None:
            return
        directory = os.path.join(self.cache_dir, rev)
        os.makedirs(directory, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=".Histograms.json.")
        with os.fdopen(fd, "wb") as f:
            f.write(body)
        os.replace(temporary, os.path.join(directory, "Histograms.json"))

    def _fail(self, rev: str, reason: str) -> None:
        if rev not in self.failures:
            self.failures[rev] = reason
            log.warning("revision %s: %s; its payloads are rejected", rev, reason)


def split_revision(revision: str) -> tuple[str | None, str | None]:
    """(rev id, repository URL or None) from a revision URL or a bare id."""
    text = str(revision).strip().rstrip("/")
    repo, marker, rev = text.rpartition("/rev/")
    if not marker:
        repo, rev = None, text.rsplit("/", 1)[-1]
    return (rev if _REVISION_ID.match(rev) else None), (repo or None)


def _http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT) as response:
        return response.read()
