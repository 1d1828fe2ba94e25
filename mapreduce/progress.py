"""Progress of long work: a live line on a terminal, a plain log line every few seconds elsewhere."""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

from storage.commands import format_bytes

log = logging.getLogger(__name__)

TERMINAL_INTERVAL = 0.2
LOG_INTERVAL = 10.0


class Progress:
    """Call ``update`` as often as you like; it redraws or logs at most every interval."""

    def __init__(self, label: str, total_bytes: int | None = None, stream: TextIO | None = None,
                 unit: str = "records"):
        self.label = label
        self.unit = unit
        self.total_bytes = total_bytes
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.interval = TERMINAL_INTERVAL if self.live else LOG_INTERVAL
        self.started = time.monotonic()
        self._last = self.started

    def update(self, records: int, done_bytes: int, note: str = "", force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        line = self.describe(records, done_bytes, now - self.started)
        if note:
            line += f"; {note}"
        if self.live:
            self.stream.write(f"\r\033[K{line}")
            self.stream.flush()
        else:
            log.info("%s", line)

    def describe(self, records: int, done_bytes: int, elapsed: float) -> str:
        rate = records / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.label}: {records:,} {self.unit}", f"{rate:,.0f}/s", format_bytes(done_bytes)]
        if self.total_bytes:
            fraction = min(done_bytes / self.total_bytes, 1.0)
            parts[-1] += f" of {format_bytes(self.total_bytes)} ({fraction:.0%})"
            if 0 < fraction < 1:
                parts.append(f"ETA {elapsed * (1 - fraction) / fraction:.0f}s")
        return ", ".join(parts)

    def finish(self) -> None:
        if self.live:
            self.stream.write("\r\033[K")
            self.stream.flush()
