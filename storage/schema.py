"""The partitioning schema: which dimensions a ping is filed under, and which values each may take.

The same document serves two purposes. When writing, it maps a ping's values onto
path parts (rare values collapse into ``OTHER``). When reading, it is a job's
input filter: ``allows(level, part)`` decides whether a directory walk may enter
a subtree at all. See StorageLayout.md for the rules in prose.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any, Iterable, Mapping, Sequence

from .documents import parse_json, read_text
from .errors import SchemaError

OTHER = "OTHER"
"""Stands in for any value the schema does not allow."""

UNKNOWN = "UNKNOWN"
"""Stands in for a value the ping does not have."""

_UNSAFE = re.compile(r"[^a-zA-Z0-9_/.]")


def safe_filename(value: str) -> str:
    """Replace every character outside ``[a-zA-Z0-9_/.]`` with ``_`` (the production rule)."""
    return _UNSAFE.sub("_", value)


def path_part(value: object, in_file_name: bool = False) -> str:
    """Turn one dimension value into one path component.

    On top of ``safe_filename``: a ``/`` would add a directory level and a lone
    ``.``/``..`` would walk out of the tree, so both become ``_``; the last two
    dimensions share the file name with dots as separators, so their dots do too.
    A missing value is ``UNKNOWN``.
    """
    if value is None or value == "":
        return UNKNOWN
    part = safe_filename(str(value)).replace("/", "_")
    if in_file_name or not part.strip("."):
        part = part.replace(".", "_")
    return part


class AnyValue:
    """``"*"``: every value is allowed."""

    def __contains__(self, part: str) -> bool:
        return True

    def includes(self, other: "AllowedValues") -> bool:
        return True

    def __repr__(self) -> str:
        return '"*"'


@dataclass(frozen=True)
class ValueSet:
    """A list of allowed values (a single string is a list of one)."""

    values: frozenset[str]

    def __contains__(self, part: str) -> bool:
        return part in self.values

    def includes(self, other: "AllowedValues") -> bool:
        return isinstance(other, ValueSet) and other.values <= self.values

    def __repr__(self) -> str:
        return json.dumps(sorted(self.values))


@dataclass(frozen=True)
class ValueRange:
    """``{"min": .., "max": ..}``, inclusive, either bound optional, compared as strings."""

    low: str | None
    high: str | None

    def __contains__(self, part: str) -> bool:
        return (self.low is None or part >= self.low) and (self.high is None or part <= self.high)

    def includes(self, other: "AllowedValues") -> bool:
        if isinstance(other, ValueSet):
            return all(value in self for value in other.values)
        if isinstance(other, ValueRange):
            return ((self.low is None or (other.low is not None and other.low >= self.low))
                    and (self.high is None or (other.high is not None and other.high <= self.high)))
        return self.low is None and self.high is None

    def __repr__(self) -> str:
        return json.dumps({k: v for k, v in (("min", self.low), ("max", self.high)) if v is not None})


AllowedValues = AnyValue | ValueSet | ValueRange


@dataclass(frozen=True)
class Dimension:
    field_name: str
    allowed: AllowedValues


class Schema:
    """An ordered list of dimensions; the last two are named in the file, the rest are directories."""

    def __init__(self, dimensions: Sequence[Dimension], version: int = 1, source: str = "<schema>"):
        if len(dimensions) < 2:
            raise SchemaError(f"{source}: a schema needs at least two dimensions "
                              "(the last two name the file: build id and submission date)")
        self.dimensions = tuple(dimensions)
        self.version = version
        self.source = source

    # -- loading ---------------------------------------------------------------

    @classmethod
    def load(cls, path: str) -> "Schema":
        """Read a schema or filter file, with errors that name the file."""
        return cls.from_json(read_text(path, SchemaError), source=path)

    @classmethod
    def from_json(cls, text: str, source: str = "<schema>") -> "Schema":
        return cls.from_document(parse_json(text, source, SchemaError), source)

    @classmethod
    def from_document(cls, document: Any, source: str = "<schema>") -> "Schema":
        if not isinstance(document, dict):
            raise SchemaError(f"{source}: a schema is a JSON object with a \"dimensions\" list")
        entries = document.get("dimensions")
        if not isinstance(entries, list):
            raise SchemaError(f"{source}: missing \"dimensions\" (a list of "
                              "{\"field_name\": ..., \"allowed_values\": ...})")
        version = document.get("version", 1)
        if not isinstance(version, int) or isinstance(version, bool):
            raise SchemaError(f"{source}: \"version\" must be an integer, got {_shown(version)}")
        dimensions = [_parse_dimension(entry, i, source) for i, entry in enumerate(entries)]
        return cls(dimensions, version, source)

    @classmethod
    def default(cls) -> "Schema":
        """The production telemetry schema shipped with the package."""
        text = resources.files(__package__).joinpath("telemetry_schema.json").read_text("utf-8")
        return cls.from_json(text, source="telemetry_schema.json (built in)")

    @classmethod
    def selecting(cls, selection: "Schema | None") -> "Schema":
        """``selection``, checked against the built-in layout, or (None) a filter that keeps every file of it."""
        layout = cls.default()
        if selection is None:
            return layout.unfiltered()
        layout.check_filter(selection)
        return selection

    def check_filter(self, selection: "Schema") -> None:
        """SchemaError unless ``selection`` names this layout's dimensions in order.

        A filter is matched against path levels by position, so one with a
        dimension missing, extra or out of place would select the wrong files,
        or none, without a word.
        """
        expected, names = self.field_names, selection.field_names
        layout = f"a filter lists the storage layout's {len(expected)} dimensions in order: {', '.join(expected)}"
        if len(names) != len(expected):
            raise SchemaError(f"{selection.source}: {len(names)} dimensions ({', '.join(names)}); {layout}")
        for index, (name, wanted) in enumerate(zip(names, expected)):
            if name != wanted:
                known = f"it is dimension {expected.index(name)}" if name in expected else "no such dimension"
                raise SchemaError(f"{selection.source}: dimension {index} is {name!r} ({known}) where the layout "
                                  f"has {wanted!r}; {layout}")

    def unfiltered(self) -> "Schema":
        """The same dimensions with every value allowed (``OTHER`` included): a filter that keeps all."""
        return Schema([Dimension(d.field_name, AnyValue()) for d in self.dimensions], self.version,
                      f"{self.source} (all values)")

    # -- writing side -----------------------------------------------------------

    @property
    def field_names(self) -> list[str]:
        return [d.field_name for d in self.dimensions]

    def values_from(self, info: Mapping[str, Any], submission_date: str) -> list[Any]:
        """Pick this schema's dimension values out of a ping's ``info`` section."""
        return [submission_date if d.field_name == "submission_date" else info.get(d.field_name)
                for d in self.dimensions]

    def apply(self, values: Sequence[Any]) -> list[str]:
        """Map raw values to path parts: safe names, ``OTHER`` for anything not allowed."""
        if len(values) != len(self.dimensions):
            raise ValueError(f"{self.source}: expected {len(self.dimensions)} dimension values "
                             f"({', '.join(self.field_names)}), got {len(values)}")
        file_levels = len(self.dimensions) - 2
        parts = []
        for level, (dimension, value) in enumerate(zip(self.dimensions, values)):
            part = path_part(value, in_file_name=level >= file_levels)
            parts.append(part if part in dimension.allowed else OTHER)
        return parts

    # -- reading side (the schema as a filter) -----------------------------------

    def allows(self, level: int, part: str) -> bool:
        """May a path part at this dimension level be read? Used to prune a walk."""
        return part in self.dimensions[level].allowed

    def matches(self, parts: Iterable[str]) -> bool:
        """Does a full list of path parts pass every dimension?"""
        return all(self.allows(level, part) for level, part in enumerate(parts))

    def covers(self, other: "Schema") -> bool:
        """Does this filter allow every path ``other`` allows? (Dimension by dimension, so it may say no
        to a filter it covers only through a combination of dimensions; never yes wrongly.)"""
        return (len(self.dimensions) == len(other.dimensions)
                and all(mine.allowed.includes(theirs.allowed)
                        for mine, theirs in zip(self.dimensions, other.dimensions)))

    def document(self) -> dict:
        """The filter as a JSON document that ``from_document`` reads back."""
        return {"version": self.version,
                "dimensions": [{"field_name": d.field_name, "allowed_values": json.loads(repr(d.allowed))}
                               for d in self.dimensions]}

    def __repr__(self) -> str:
        return f"Schema({self.source!r}, {self.field_names})"


def _parse_dimension(entry: Any, index: int, source: str) -> Dimension:
    where = f"{source}: dimension {index}"
    if not isinstance(entry, dict):
        raise SchemaError(f"{where}: must be an object with \"field_name\" and \"allowed_values\"")
    name = entry.get("field_name")
    if not isinstance(name, str) or not name:
        raise SchemaError(f"{where}: \"field_name\" must be a non-empty string, got {_shown(name)}")
    where = f"{source}: dimension {index} ({name!r})"
    if "allowed_values" not in entry:
        raise SchemaError(f"{where}: missing \"allowed_values\" (use \"*\" to allow anything)")
    return Dimension(name, _parse_allowed(entry["allowed_values"], where))


def _parse_allowed(spec: Any, where: str) -> AllowedValues:
    if spec == "*":
        return AnyValue()
    if isinstance(spec, str):
        return ValueSet(frozenset([safe_filename(spec)]))
    if isinstance(spec, list):
        if not all(isinstance(v, str) for v in spec):
            raise SchemaError(f"{where}: every entry of an \"allowed_values\" list must be a string")
        return ValueSet(frozenset(safe_filename(v) for v in spec))
    if isinstance(spec, dict):
        unknown = set(spec) - {"min", "max"}
        bounds = [spec.get("min"), spec.get("max")]
        if unknown or not all(b is None or isinstance(b, str) for b in bounds):
            raise SchemaError(f"{where}: a range is {{\"min\": \"...\", \"max\": \"...\"}} with string "
                              f"bounds, got {_shown(spec)}")
        low, high = (None if b is None else safe_filename(b) for b in bounds)
        if low is not None and high is not None and low > high:
            raise SchemaError(f"{where}: the range's min {low!r} is after its max {high!r}, so it allows "
                              "nothing; swap them")
        return ValueRange(low, high)
    raise SchemaError(f"{where}: \"allowed_values\" must be \"*\", a string, a list of strings "
                      f"or {{\"min\": ..., \"max\": ...}}, got {_shown(spec)}")


def _shown(value: Any, limit: int = 60) -> str:
    """``value`` as JSON in a message, cut short: a bad document may be huge or nested deep."""
    try:
        text = json.dumps(value)
    except (RecursionError, TypeError, ValueError):
        text = type(value).__name__
    return text if len(text) <= limit else f"{text[:limit]}..."
