"""Progress: a live line on a terminal, plain log lines elsewhere, with rate and ETA."""

from __future__ import annotations

import io
import logging

from mapreduce.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_line_is_redrawn_in_place():
    screen = Terminal()
    progress = Progress("map", total_bytes=1000, stream=screen)
    progress.update(10, 250, force=True)
    progress.update(20, 500, force=True)
    progress.finish()
    frames = screen.getvalue().split("\r\033[K")
    assert frames[1].startswith("map: 10 records") and "250 bytes of 1.0 kB (25%)" in frames[1]
    assert "ETA" in frames[2] and frames[-1] == ""  # finish() clears the line


def test_elsewhere_it_logs_a_plain_line_at_intervals(caplog):
    progress = Progress("convert", total_bytes=None, stream=io.StringIO())
    with caplog.at_level(logging.INFO, logger="mapreduce.progress"):
        progress.update(5, 100, force=True)
        progress.update(6, 120)  # within the interval: not logged
    assert [r.getMessage().split(",")[0] for r in caplog.records] == ["convert: 5 records"]


def test_rate_and_eta_are_computed_from_elapsed_time_and_bytes():
    text = Progress("map", total_bytes=4000).describe(records=500, done_bytes=1000, elapsed=10.0)
    assert text == "map: 500 records, 50/s, 1.0 kB of 4.0 kB (25%), ETA 30s"
