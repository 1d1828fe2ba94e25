"""Find the Histograms.json of the browser revision that sent a payload: memory, then disk, then the network.

A payload names its revision by URL (``http://hg.mozilla.org/releases/mozilla-release/rev/a55c55edf302``).
Definitions filled in by hand, ``<cache-dir>/<rev>/Histograms.json``, are trusted
for that revision whatever repository a payload names. Anything else is fetched
only from an allowed repository (see ``repositories``) and kept under the
repository it came from, ``<cache-dir>/<host>/<repository path>/<rev>/Histograms.json``,
so a payload naming another server can neither make the converter connect to
it nor plant definitions for a revision. Fetch failures are retried, then
remembered for the rest of the run and reported once per revision; a missing
revision never stops a run. At most ``MAX_LOADED`` revisions are kept in
memory (about 5 MB each), the least recently used making way.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import tempfile
import time
import urllib.error
from collections import OrderedDict
from typing import Any, Callable, Mapping

from storage.documents import parse_json, read_text

from .download import DownloadRefused, http_get
from .errors import DefinitionError
from .histograms import Definitions
from .repositories import DEFAULT_REPOSITORIES, AllowedRepositories, Location, UntrustedRepository, shown

log = logging.getLogger(__name__)

DEFAULT_URL_TEMPLATE = "{repo}/raw-file/{rev}/toolkit/components/telemetry/Histograms.json"
_REVISION_ID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_.-]{0,63}$")  # Mercurial's are 12 or 40 hex digits
MAX_DEFINITIONS_SIZE = 16 * 1024 * 1024
"""Bytes of a fetched Histograms.json; a real one is 100 kB to 1 MB."""
MAX_LOADED = 64
REPORTED_FAILURES = 20
"""Failures logged as they happen; the rest are only counted (a hostile input can name millions)."""
MAX_FAILED_FETCHES = 50
"""After this many revisions could not be fetched, a run stops fetching: the server is down, or the
input names revisions that do not exist, and either way more requests would only cost time."""


class RevisionCache:
    """Resolve revision URLs (or bare ids) to ``Definitions``.

    ``url_template`` takes ``{repo}`` (the repository URL to fetch from) and
    ``{rev}``; None disables fetching. ``repositories`` are the allowed
    repository URL prefixes. ``fallback`` maps channel -> build id or version
    -> revision, for payloads that do not name one.
    """

    def __init__(self, cache_dir: str | None, url_template: str | None = DEFAULT_URL_TEMPLATE, *,
                 repositories: tuple[str, ...] = DEFAULT_REPOSITORIES,
                 fallback: Mapping[str, Mapping[str, str]] | None = None, retries: int = 3,
                 backoff: float = 0.5):
        self.cache_dir = cache_dir
        self.url_template = url_template
        self.repositories = AllowedRepositories(repositories)
        self.fallback = fallback or {}
        self.retries = retries
        self.backoff = backoff
        self._loaded: OrderedDict[tuple, Definitions] = OrderedDict()
        """(None or the repository's identity, rev) -> definitions, the most recently used last."""
        self.failures: dict[str, str] = {}
        """Revision -> why it could not be had (reported once, remembered for the run)."""
        self._unreported: dict[str, str] = {}
        self._failed_fetches = 0

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
            self._fail(shown(str(revision)), "not a revision URL or id")
            return None
        hand_filled = self._remembered((None, rev), lambda: self._from_disk(self._hand_filled(rev)))
        if hand_filled is not None:
            return hand_filled
        name = rev if repo is None else f"{rev} ({shown(repo)})"
        if name in self.failures:
            return None
        if repo is None:
            self._fail(name, "not in the cache, and a bare revision id names no repository to fetch from")
            return None
        try:
            location, repo_url = self.repositories.source(repo)
        except UntrustedRepository as e:
            self._fail(name, str(e))
            return None
        return self._remembered((location.identity, rev),
                                lambda: self._from_repository(name, rev, location, repo_url))

    def take_failures(self) -> dict[str, str]:
        """The failures recorded since the last call (to report each once)."""
        new, self._unreported = self._unreported, {}
        return new

    def _remembered(self, key: tuple, load: Callable[[], Definitions | None]) -> Definitions | None:
        """The definitions in memory under ``key``, else ``load()``'s (kept, the least recently used making way)."""
        found = self._loaded.get(key)
        if found is not None:
            self._loaded.move_to_end(key)
            return found
        found = load()
        if found is not None:
            self._loaded[key] = found
            if len(self._loaded) > MAX_LOADED:
                self._loaded.popitem(last=False)
        return found

    def _hand_filled(self, rev: str) -> str | None:
        return None if self.cache_dir is None else os.path.join(self.cache_dir, rev, "Histograms.json")

    def _from_disk(self, path: str | None) -> Definitions | None:
        if path is None or not os.path.exists(path):
            return None
        try:
            return Definitions.load(path)
        except DefinitionError as e:
            log.warning("%s; ignoring the cached copy", e)
            return None

    def _from_repository(self, name: str, rev: str, location: Location, repo_url: str) -> Definitions | None:
        """From the repository's copy in the cache, else fetched from ``repo_url`` and kept there."""
        cached = None if self.cache_dir is None else os.path.join(
            location.cache_directory(self.cache_dir), rev, "Histograms.json")
        definitions = self._from_disk(cached)
        if definitions is not None:
            return definitions
        if self.url_template is None:
            self._fail(name, "not in the cache and fetching is off")
            return None
        if self._failed_fetches >= MAX_FAILED_FETCHES:
            self._fail(name, f"not fetched: {self._failed_fetches} fetches failed already in this run")
            return None
        url = self.url_template.format(repo=repo_url, rev=rev)
        body = self._fetch_with_retries(name, url)
        if body is None:
            self._failed_fetches += 1
            return None
        try:
            definitions = Definitions.from_json(body.decode("utf-8", "replace"), url)
        except DefinitionError as e:
            self._fail(name, str(e))
            return None
        if cached is not None:
            try:
                _store(cached, body)
            except OSError as e:
                log.warning("%s: cannot keep the fetched copy (%s); it is fetched again next run", cached, e)
        return definitions

    def _fetch_with_retries(self, name: str, url: str) -> bytes | None:
        for attempt in range(self.retries + 1):
            try:
                return http_get(url, MAX_DEFINITIONS_SIZE)
            except DownloadRefused as e:
                self._fail(name, str(e))
                return None
            except urllib.error.HTTPError as e:
                if 400 <= e.code < 500:
                    self._fail(name, f"{url}: HTTP {e.code}")
                    return None
                problem = f"HTTP {e.code}"
            except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
                problem = str(getattr(e, "reason", e)) or type(e).__name__
            if attempt < self.retries:
                time.sleep(self.backoff * 2 ** attempt)
        self._fail(name, f"{url}: {problem} (after {self.retries + 1} attempts)")
        return None

    def _fail(self, name: str, reason: str) -> None:
        if name not in self.failures:
            self.failures[name] = self._unreported[name] = reason
            if len(self.failures) <= REPORTED_FAILURES:
                log.warning("revision %s: %s; its payloads are rejected", name, reason)


def _store(path: str, body: bytes) -> None:
    """Write a fetched file into the cache whole or not at all (a temporary name, then a rename)."""
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".Histograms.json.")
    with os.fdopen(fd, "wb") as f:
        f.write(body)
    os.replace(temporary, path)


def split_revision(revision: str) -> tuple[str | None, str | None]:
    """(rev id, repository URL or None) from a revision URL or a bare id."""
    text = str(revision).strip().rstrip("/")
    repo, marker, rev = text.rpartition("/rev/")
    if not marker:
        repo, rev = None, text.rsplit("/", 1)[-1]
    return (rev if _REVISION_ID.match(rev) else None), (repo or None)

