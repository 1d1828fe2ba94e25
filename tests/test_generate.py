"""`mr gen`: realistic synthetic pings, the same for the same seed."""

from __future__ import annotations

import json

from converter.synthetic import synthetic_pings
from storage import find_files

from .conftest import run_mr


def test_the_same_seed_gives_the_same_pings_and_another_seed_does_not():
    first = [(u, json.dumps(p), d) for u, p, d in synthetic_pings(20, seed=3)]
    assert first == [(u, json.dumps(p), d) for u, p, d in synthetic_pings(20, seed=3)]
    assert first != [(u, json.dumps(p), d) for u, p, d in synthetic_pings(20, seed=4)]


def test_pings_have_the_shape_of_the_real_sample():
    pings = [p for _, p, _ in synthetic_pings(100)]
    histograms = sum(len(p["histograms"]) for p in pings) / 100
    numbers = sum(len(a) for p in pings for a in p["histograms"].values()) / 100
    assert 280 <= histograms <= 345  # the real sample has 312 histograms
    assert 9_000 <= numbers <= 15_000  # and 11,577 numbers in its arrays
    assert {p["info"]["appUpdateChannel"] for p in pings} == {"release", "beta", "aurora", "nightly"}


def test_mr_gen_writes_a_compressed_store(tmp_path):
    result = run_mr("gen", str(tmp_path / "store"), "--pings", "50", "--codec", "lz4")
    assert result.returncode == 0 and result.stdout.startswith("wrote 50 pings")
    files = find_files(str(tmp_path / "store"))
    assert files and all(f.path.endswith(".lz4") for f in files)
    assert sum(1 for f in files for _ in f.open()) == 50
