"""Paths <-> dimensions, and the names a log goes through."""

from __future__ import annotations

import os

import pytest

from storage import LayoutError, Schema, dimensions_from_path, log_path
from storage.codecs import LZ4, LZMA
from storage.layout import compressed_path, is_pending, is_record_file, pending_path

from .conftest import REAL_DIMENSIONS, REAL_PING, REAL_STORE


def test_log_path_puts_the_last_two_dimensions_in_the_file_name():
    parts = ["saved_session", "Firefox", "nightly", "22.0a1", "20130226031002", "20131011"]
    assert log_path("/data", parts, 2) == "/data/saved_session/Firefox/nightly/22.0a1/20130226031002.20131011.v2.log"


def test_path_and_dimensions_round_trip(tmp_path):
    parts = Schema.default().apply(["saved-session", "Firefox", "nightly", "24.0a1", "20130601", "20130602"])
    path = log_path(str(tmp_path), parts, 2)
    assert dimensions_from_path(str(tmp_path), path, levels=6) == parts


def test_dimensions_survive_rotation_and_compression_names(tmp_path):
    active = log_path(str(tmp_path), ["a", "b", "c", "d", "20130601", "20130602"], 1)
    final = compressed_path(pending_path(active), LZMA)
    assert dimensions_from_path(str(tmp_path), final) == ["a", "b", "c", "d", "20130601", "20130602"]


def test_real_ping_path_gives_production_dimensions():
    assert dimensions_from_path(str(REAL_STORE), str(REAL_PING), levels=6) == REAL_DIMENSIONS


def test_paths_outside_the_base_are_rejected(tmp_path):
    base = tmp_path / "data"
    sibling = tmp_path / "data2" / "a" / "b.c.v1.log"  # shares the base's name as a prefix
    with pytest.raises(LayoutError, match="not inside the storage directory"):
        dimensions_from_path(str(base), str(sibling))


def test_relative_escape_is_rejected(tmp_path):
    with pytest.raises(LayoutError, match="not inside"):
        dimensions_from_path(str(tmp_path / "data"), str(tmp_path / "data" / ".." / "x.y.v1.log"))


def test_wrong_depth_is_reported_when_levels_are_given(tmp_path):
    with pytest.raises(LayoutError, match="3 dimensions in the path, the schema has 6"):
        dimensions_from_path(str(tmp_path), os.path.join(str(tmp_path), "a", "b.c.v1.log"), levels=6)


def test_file_name_must_have_build_id_and_date(tmp_path):
    with pytest.raises(LayoutError, match="file name is not"):
        dimensions_from_path(str(tmp_path), os.path.join(str(tmp_path), "a", "README"))


def test_life_stage_names():
    active = "/d/1.2.v1.log"
    pending = pending_path(active)
    assert is_pending(os.path.basename(pending)) and not is_record_file(os.path.basename(pending))
    assert pending_path(active) != pending  # unique every time
    assert compressed_path(pending, LZ4).endswith(".lz4")
    assert is_record_file("1.2.v1.log")
    assert not is_record_file(os.path.basename(compressed_path(pending, LZMA)) + ".partial")
