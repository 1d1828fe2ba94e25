"""Shared fixtures: the real sample ping, a small store built through the writer, and running `mr`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from storage import LayoutWriter, Schema

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
REAL_STORE = DATA / "pings"
REAL_PING = (REAL_STORE / "saved_session" / "Firefox" / "nightly" / "22.0a1"
             / "20130226031002.20131011.v2.log.e28a4032eb744f089a1828ac7399e5d8.lzma")
REAL_DIMENSIONS = ["saved_session", "Firefox", "nightly", "22.0a1", "20130226031002", "20131011"]
REAL_UUID = "024b73d7-2e26-4545-8077-1cc930904eae"

# (reason, app, channel, version, build id, date) for the small store below.
STORE_DIMENSIONS = [
    ("saved-session", "Firefox", "nightly", "24.0a1", "20130601030202", "20130602"),
    ("saved-session", "Firefox", "nightly", "24.0a1", "20130603030202", "20130604"),
    ("saved-session", "Firefox", "release", "21.0", "20130511120000", "20130602"),
    ("idle-daily", "Firefox", "beta", "22.0", "20130520000000", "20130603"),
    ("saved-session", "Fennec", "aurora", "23.0a2", "20130530004003", "20130601"),
    ("saved-session", "Firefox", "esr", "17.0.6", "20130510000000", "20130602"),  # channel -> OTHER
]


def run_mr(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """Run the real `mr` command in a subprocess and capture its output."""
    return subprocess.run([sys.executable, str(ROOT / "bin" / "mr"), *args],
                          capture_output=True, text=True, timeout=120, **kwargs)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A store with three pings in each of STORE_DIMENSIONS' partitions, written as active logs."""
    base = tmp_path / "store"
    with LayoutWriter(str(base), Schema.default(), version=2) as writer:
        for n, dims in enumerate(STORE_DIMENSIONS):
            for i in range(3):
                writer.write(f"uuid-{n}-{i}", {"info": {"n": n, "i": i}}, list(dims))
    return base
