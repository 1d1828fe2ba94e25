"""What a run will read: the files a filter selects, an optional stable sample, and their schedule.

Files are packed, in path order, into bundles of about ``BUNDLE_BYTES``: a
bundle is what a worker maps, combines and spills in one go, and what is
retried if the worker dies. Bundles are numbered in path order (the number tags
their output) and their size does not depend on the number of workers, so
results do not depend on scheduling. They are queued largest first, so no
worker is left with one big bundle at the end while the others idle.
"""

from __future__ import annotations

import heapq
import math
import zlib
from collections import defaultdict
from dataclasses import dataclass

from storage import Schema, StoredFile
from storage.commands import format_bytes

from .mapper import MapTask

BUNDLE_BYTES = 4 << 20
"""Compressed bytes per bundle (about 30 MB of pings): few spills per key, many bundles per core."""

SAMPLE_GROUP_LEVELS = (2, 5)
"""Dimension levels a sample keeps the share of: channel and submission date."""


@dataclass(frozen=True)
class Sample:
    """What ``--sample`` took, and why it may be more than the fraction asked for."""

    fraction: float
    taken: int
    of: int
    groups: int
    rounded_up: int
    """Groups that kept more than their share: at least one file each, and a share rounded up."""

    def describe(self) -> str:
        text = f"sample {self.fraction:g}: {self.taken:,} of {self.of:,} files"
        if self.of:
            text += f" ({self.taken / self.of:.0%})"
        if self.rounded_up:
            text += (f"; each of the {self.groups:,} channel/date groups keeps at least one file and its share "
                     f"rounded up ({self.rounded_up:,} kept more than {self.fraction:.0%})")
        return text


@dataclass(frozen=True)
class Plan:
    tasks: list[MapTask]
    """In schedule order: largest first."""
    field_names: list[str]
    sample: Sample | None = None

    @property
    def total_bytes(self) -> int:
        return sum(t.size for t in self.tasks)

    @property
    def files(self) -> list[StoredFile]:
        return sorted((f for t in self.tasks for f in t.files), key=StoredFile.layout_order)


def make_plan(files: list[StoredFile], selection: Schema | None, sample: float | None = None,
              bundle_bytes: int = BUNDLE_BYTES) -> Plan:
    """Bundle ``files`` (in layout order) for the workers; ``selection`` names the dimensions.

    ``bundle_bytes=0`` makes every file its own bundle.
    """
    sampled = None
    if sample is not None:
        files, sampled = sample_files(files, sample)
    tasks = [MapTask(index, tuple(bundle)) for index, bundle in enumerate(bundles(files, bundle_bytes))]
    tasks.sort(key=lambda t: (-t.size, t.index))
    names = (selection or Schema.default()).field_names
    return Plan(tasks, names, sampled)


def bundles(files: list[StoredFile], size: int) -> list[list[StoredFile]]:
    """Consecutive files (path order) packed until a bundle reaches ``size`` bytes."""
    packed: list[list[StoredFile]] = []
    current: list[StoredFile] = []
    current_size = 0
    for f in files:
        current.append(f)
        current_size += f.size
        if current_size >= size:
            packed.append(current)
            current, current_size = [], 0
    if current:
        packed.append(current)
    return packed


def sample_files(files: list[StoredFile], fraction: float) -> tuple[list[StoredFile], Sample]:
    """A stable sample: in each channel/date group, the files whose name hashes lowest.

    The same fraction picks the same files every time, and every group keeps
    its share, rounded up (so at least one file): on few files per group the
    sample is more than the fraction, which ``Sample`` says.
    """
    groups: dict[tuple, list[StoredFile]] = defaultdict(list)
    for f in files:
        groups[tuple(f.dimensions[level] for level in SAMPLE_GROUP_LEVELS if level < len(f.dimensions))].append(f)
    chosen = []
    rounded_up = 0
    for members in groups.values():
        members.sort(key=lambda f: (zlib.crc32(f.path.rsplit("/", 1)[-1].encode()), f.path))
        share = max(1, math.ceil(fraction * len(members)))
        rounded_up += share > fraction * len(members)
        chosen.extend(members[:share])
    return (sorted(chosen, key=StoredFile.layout_order),
            Sample(fraction, len(chosen), len(files), len(groups), rounded_up))


def describe(plan: Plan, workers: int) -> str:
    """The ``--dry-run`` text: what is selected per dimension value, and how it is spread."""
    lines = [f"{len(plan.files)} files, {format_bytes(plan.total_bytes)} selected, "
             f"in {len(plan.tasks)} bundles of about {format_bytes(BUNDLE_BYTES)}"]
    if plan.sample:
        lines.append(plan.sample.describe())
    for level, name in enumerate(plan.field_names):
        totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for f in plan.files:
            totals[f.dimensions[level]][0] += 1
            totals[f.dimensions[level]][1] += f.size
        shown = sorted(totals.items())
        lines.append(f"  {name}: " + ", ".join(f"{value} ({count} files, {format_bytes(size)})"
                                               for value, (count, size) in shown[:12])
                     + (f", ... {len(shown) - 12} more" if len(shown) > 12 else ""))
    lines.append(f"{workers} map workers take bundles from one queue, largest first; expected spread:")
    for worker, (count, size) in enumerate(expected_spread(plan, workers)):
        lines.append(f"  worker {worker}: {count} bundles, {format_bytes(size)}")
    return "\n".join(lines)


def expected_spread(plan: Plan, workers: int) -> list[tuple[int, int]]:
    """Files and bytes per worker if each file takes time in proportion to its size."""
    loads = [(0, worker, 0) for worker in range(workers)]
    heapq.heapify(loads)
    for task in plan.tasks:
        size, worker, count = heapq.heappop(loads)
        heapq.heappush(loads, (size + task.size, worker, count + 1))
    return [(count, size) for size, _, count in sorted(loads, key=lambda load: load[1])]
