"""Histogram definitions from a Mozilla ``Histograms.json``, with bucket lower bounds computed as the browser does.

A definition whose numbers cannot be resolved (a C++ symbol such as
``JS::gcreason::NUM_TELEMETRY_REASONS``) is kept as unusable with its reason;
it never stops the rest of the file from loading. Definitions come from the
network, so sizes are capped: a definition with more than ``MAX_BUCKETS``
buckets is unusable, and a file with more than ``MAX_DEFINITIONS`` definitions,
or whose usable ones add up to more than ``MAX_TOTAL_BUCKETS``, is refused
before that much memory and time are taken.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from storage.documents import parse_json, read_text

from .errors import DefinitionError
from .expressions import UnresolvedExpression, evaluate

STARTUP_PREFIX = "STARTUP_"
MAX_BUCKETS = 10_000
"""Real definitions stay far below: the largest in the test revision has 1,000."""
MAX_DEFINITIONS = 20_000
"""The test revision has 590; later ones a few thousand."""
MAX_TOTAL_BUCKETS = 1_000_000
"""A real revision has about 60,000 buckets in all (5 MB in memory); this bounds one at about 150 MB."""

# The browser reports a histogram's type as a number; enumerated ones report as linear.
TYPE_CODES = {"exponential": 0, "linear": 1, "enumerated": 1, "boolean": 2, "flag": 3, "count": 4}


@dataclass(frozen=True)
class Histogram:
    """One usable definition: its kind, range and the lower bound of every bucket."""

    name: str
    kind: str
    low: int
    high: int
    buckets: tuple[int, ...]
    index_of: Mapping[int, int] = field(repr=False, compare=False)
    """Bucket lower bound -> position in ``buckets``."""
    bucket_count: int = field(init=False)
    type_code: int = field(init=False)
    """The number the browser reports as ``histogram_type``."""
    range: list[int] = field(init=False, repr=False, compare=False)
    """``[low, high]`` as the browser reports it."""

    def __post_init__(self) -> None:
        # Stored, not computed per call: the converter checks them for every histogram of every ping.
        object.__setattr__(self, "bucket_count", len(self.buckets))
        object.__setattr__(self, "type_code", TYPE_CODES[self.kind])
        object.__setattr__(self, "range", [self.low, self.high])


class Definitions:
    """All definitions of one revision: usable ones by name, and the reasons the others are not."""

    def __init__(self, usable: dict[str, Histogram], unusable: dict[str, str], source: str):
        self.usable = usable
        self.unusable = unusable
        self.source = source

    @classmethod
    def load(cls, path: str) -> "Definitions":
        return cls.from_json(read_text(path, DefinitionError), path)

    @classmethod
    def from_json(cls, text: str, source: str = "<Histograms.json>") -> "Definitions":
        document = parse_json(text, source, DefinitionError)
        if not isinstance(document, dict):
            raise DefinitionError(f"{source}: expected an object of histogram definitions")
        if len(document) > MAX_DEFINITIONS:
            raise DefinitionError(f"{source}: {len(document):,} definitions, more than the {MAX_DEFINITIONS:,} "
                                  "allowed; not a real Histograms.json")
        usable, unusable = {}, {}
        total_buckets = 0
        for name, spec in document.items():
            try:
                histogram = define(name, spec)
            except UnresolvedExpression as e:
                unusable[name] = str(e)
                continue
            total_buckets += histogram.bucket_count
            if total_buckets > MAX_TOTAL_BUCKETS:
                raise DefinitionError(f"{source}: more than the {MAX_TOTAL_BUCKETS:,} buckets in all allowed; "
                                      "not a real Histograms.json")
            usable[name] = histogram
        return cls(usable, unusable, source)

    def lookup(self, name: str) -> Histogram | None:
        """The definition for a name in a payload; ``STARTUP_X`` uses the definition of ``X``."""
        found = self.usable.get(name)
        if found is None and name.startswith(STARTUP_PREFIX):
            found = self.usable.get(name[len(STARTUP_PREFIX):])
        return found

    def describe(self, names: list[str] | None = None) -> dict[str, Any]:
        """``{NAME: {"kind", "buckets"}}`` or ``{NAME: {"error"}}``, for people checking by hand."""
        wanted = names if names else sorted(set(self.usable) | set(self.unusable))
        described: dict[str, Any] = {}
        for name in wanted:
            histogram = self.lookup(name)
            if histogram is not None:
                described[name] = {"kind": histogram.kind, "low": histogram.low, "high": histogram.high,
                                   "bucket_count": histogram.bucket_count, "buckets": list(histogram.buckets)}
            else:
                described[name] = {"error": self.unusable.get(name, "not defined in this revision")}
        return described


def define(name: str, spec: Any) -> Histogram:
    """One definition from its Histograms.json entry; UnresolvedExpression if it cannot be used."""
    if not isinstance(spec, dict):
        raise UnresolvedExpression("definition is not an object")
    kind = spec.get("kind")
    if kind in ("boolean", "flag", "count"):
        low, high, n_buckets = 1, 2, 3
    elif kind == "enumerated":
        if "n_values" not in spec:
            raise UnresolvedExpression("enumerated histogram without n_values")
        low, high = 1, evaluate(spec["n_values"])
        n_buckets = high + 1
    elif kind in ("linear", "exponential"):
        missing = [k for k in ("high", "n_buckets") if k not in spec]
        if missing:
            raise UnresolvedExpression(f"{kind} histogram without {' and '.join(missing)}")
        low, high, n_buckets = evaluate(spec.get("low", 1)), evaluate(spec["high"]), evaluate(spec["n_buckets"])
    else:
        raise UnresolvedExpression(f"unknown kind {kind!r}")
    if not 1 <= low < high or n_buckets < 3:
        raise UnresolvedExpression(f"impossible range: low {low}, high {high}, {n_buckets} buckets")
    if n_buckets > MAX_BUCKETS:
        raise UnresolvedExpression(f"{n_buckets:,} buckets, more than the {MAX_BUCKETS:,} allowed")
    buckets = (exponential_buckets if kind == "exponential" else linear_buckets)(low, high, n_buckets)
    return Histogram(name, kind, low, high, tuple(buckets), {b: i for i, b in enumerate(buckets)})


def linear_buckets(low: int, high: int, n_buckets: int) -> list[int]:
    """Bucket 0 is 0 (underflow); buckets 1..n-1 are evenly spaced from low to high, rounded."""
    buckets = [0] * n_buckets
    for i in range(1, n_buckets):
        buckets[i] = int((low * (n_buckets - 1 - i) + high * (i - 1)) / (n_buckets - 2) + 0.5)
    return buckets


def exponential_buckets(low: int, high: int, n_buckets: int) -> list[int]:
    """Bucket 0 is 0; from low, each bound is log-spaced towards high, rounded, and at least one more."""
    buckets = [0] * n_buckets
    buckets[1] = current = low
    log_high = math.log(high)
    for i in range(2, n_buckets):
        log_current = math.log(current)
        candidate = int(math.floor(math.exp(log_current + (log_high - log_current) / (n_buckets - i)) + 0.5))
        current = candidate if candidate > current else current + 1
        buckets[i] = current
    return buckets
