"""What job functions write to: the map side's combining buffer, and the output context.

``MapContext`` keeps key -> values in memory, calls the job's ``combine``
whenever a key has gathered ``COMBINE_THRESHOLD`` values (as the original
engine did), and asks for a spill when its estimated size passes the memory
budget. ``OutputContext`` formats what ``reduce`` writes.

The map side's ``write`` refuses a key or value that is not plain data by
its type alone (a set, an object), so the job's traceback points at the
write; what is nested deeper is checked when it is spilled.
"""

from __future__ import annotations

import csv
import io
import pickle
from collections import Counter
from typing import Any, Callable

from .keys import order_key
from .plain import PLAIN_TYPES, NotPlainData

COMBINE_THRESHOLD = 50
SIZE_SAMPLE_EVERY = 1024
PYTHON_OVERHEAD = 4
"""In-memory size of buffered Python objects relative to their pickled size (measured, roughly)."""


class Counters:
    """``context.increment(name, amount)``: named counters summed over every worker."""

    def __init__(self) -> None:
        self.counters: Counter = Counter()

    def increment(self, name: str, amount: int | float = 1) -> None:
        self.counters[name] += amount


class Frozen:
    """A hashable stand-in for an unhashable key (a list or dict) in the buffer."""

    __slots__ = ("ordered",)

    def __init__(self, ordered: tuple):
        self.ordered = ordered

    def __hash__(self) -> int:
        return hash(self.ordered)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Frozen) and other.ordered == self.ordered


_BUFFERED_KEY_TYPES = PLAIN_TYPES | {Frozen}


def _not_plain(key: Any, value: Any) -> NotPlainData:
    """The error for a write whose key or value is not of a plain type."""
    if type(key) not in PLAIN_TYPES:
        return NotPlainData(f"of type {type(key).__name__}", key, in_key=True)
    return NotPlainData(f"of type {type(value).__name__}", key)


class MapContext(Counters):
    """The buffer ``map``, ``setup_map`` and ``finish_map`` write to."""

    def __init__(self, combine: Callable | None, budget_bytes: int, on_full: Callable[[], None]):
        super().__init__()
        self.buffer: dict[Any, list] = {}
        self.originals: dict[Frozen, Any] = {}
        self.values = 0
        self.combine = combine
        self.budget_bytes = budget_bytes
        self.on_full = on_full
        self._pair_bytes = 64.0
        self._next_sample = 1

    def write(self, key: Any, value: Any) -> None:
        if type(value) not in PLAIN_TYPES:
            raise _not_plain(key, value)
        buffer = self.buffer
        try:
            values = buffer.get(key)
        except TypeError:  # unhashable: a list or dict key
            if type(key) not in PLAIN_TYPES:
                raise _not_plain(key, value) from None
            key = self._freeze(key)
            values = buffer.get(key)
        if values is None:
            if type(key) not in _BUFFERED_KEY_TYPES:
                raise _not_plain(key, value)
            buffer[key] = [value]
        else:
            values.append(value)
            if len(values) >= COMBINE_THRESHOLD and self.combine is not None:
                self.combine_key(key)
        self.values += 1
        if self.values >= self._next_sample:
            self._sample(key, value)

    def combine_key(self, key: Any) -> None:
        """Replace a key's values by what ``combine`` writes for them."""
        original = self.originals.get(key, key) if type(key) is Frozen else key
        values = self.buffer.pop(key)
        self.values -= len(values)
        capture = CombineContext()
        self.combine(original, values, capture)
        for written_key, written_value in capture.pairs:
            self.write(written_key, written_value)
        self.counters.update(capture.counters)

    def combine_all(self) -> None:
        if self.combine is not None:
            for key in [k for k, v in self.buffer.items() if len(v) > 1]:
                self.combine_key(key)

    def items(self):
        """(original key, values) for everything buffered."""
        originals = self.originals
        for key, values in self.buffer.items():
            yield (originals[key] if type(key) is Frozen else key), values

    def clear(self) -> None:
        self.buffer = {}
        self.originals = {}
        self.values = 0

    @property
    def estimated_bytes(self) -> float:
        return self.values * self._pair_bytes * PYTHON_OVERHEAD

    def _freeze(self, key: Any) -> Frozen:
        frozen = Frozen(order_key(key))
        self.originals.setdefault(frozen, key)
        return frozen

    def _sample(self, key: Any, value: Any) -> None:
        """Refresh the size estimate from one pair, and spill if the budget is passed."""
        size = len(pickle.dumps((self.originals.get(key, key) if type(key) is Frozen else key, value), 4))
        self._pair_bytes = 0.9 * self._pair_bytes + 0.1 * size
        self._next_sample = self.values + SIZE_SAMPLE_EVERY
        if self.estimated_bytes > self.budget_bytes:
            self.combine_all()
            if self.estimated_bytes > self.budget_bytes / 2:
                self.on_full()


class CombineContext(Counters):
    """The context ``combine`` writes to: its pairs replace the values it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.pairs: list[tuple[Any, Any]] = []

    def write(self, key: Any, value: Any) -> None:
        if type(key) not in PLAIN_TYPES or type(value) not in PLAIN_TYPES:
            raise _not_plain(key, value)
        self.pairs.append((key, value))


class OutputContext(Counters):
    """What ``reduce`` (and ``setup_reduce``) write to, formatted as the original engine did."""

    def __init__(self, emit: Callable[[str], None]):
        super().__init__()
        self.emit = emit
        self.field_separator = "\t"
        self.record_separator = "\n"

    def write(self, key: Any, value: Any) -> None:
        self.emit(f"{key}{self.field_separator}{value}{self.record_separator}")

    def writecsv(self, row: list) -> None:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator=self.record_separator).writerow(row)
        self.emit(buffer.getvalue())

    def writeline(self, line: str) -> None:
        self.emit(f"{line}{self.record_separator}")
