"""Finding files: filters at every level, pruning the walk, and what counts as a record file."""

from __future__ import annotations

import os

import pytest

from storage import OTHER, Schema, StorageError, compress_pending, find_files
from storage import finder

from .conftest import REAL_DIMENSIONS, REAL_PING, REAL_STORE


def selection(**allowed) -> Schema:
    names = Schema.default().field_names
    return Schema.from_document({"dimensions": [
        {"field_name": n, "allowed_values": allowed.get(n, "*")} for n in names]})


def channels(files) -> list[str]:
    return [f.dimensions[2] for f in files]


def test_default_selection_is_every_file_including_other(store):
    files = find_files(str(store))
    assert len(files) == 6
    assert OTHER in channels(files)
    assert [f.path for f in files] == sorted(f.path for f in files)


def test_real_store_is_found_with_its_dimensions():
    [stored] = find_files(str(REAL_STORE))
    assert stored.path == str(REAL_PING)
    assert list(stored.dimensions) == REAL_DIMENSIONS
    assert stored.size == os.path.getsize(REAL_PING)


def test_list_filter_on_a_directory_level(store):
    files = find_files(str(store), selection(appUpdateChannel=["nightly", "beta"]))
    assert sorted(channels(files)) == ["beta", "nightly", "nightly"]


def test_filter_values_go_through_the_safe_rule(store):
    files = find_files(str(store), selection(reason="idle-daily"))
    assert [f.dimensions[0] for f in files] == ["idle_daily"]


def test_range_filter_on_the_submission_date_in_the_file_name(store):
    files = find_files(str(store), selection(submission_date={"min": "20130602", "max": "20130603"}))
    assert sorted(f.dimensions[5] for f in files) == ["20130602", "20130602", "20130602", "20130603"]


def test_range_filter_on_the_build_id(store):
    files = find_files(str(store), selection(appBuildID={"min": "20130601000000"}))
    assert sorted(f.dimensions[4] for f in files) == ["20130601030202", "20130603030202"]


def test_rejected_directories_are_never_listed(store, monkeypatch):
    listed = []
    real_scandir = os.scandir

    def recording_scandir(path):
        listed.append(os.path.relpath(path, store))
        return real_scandir(path)

    monkeypatch.setattr(finder.os, "scandir", recording_scandir)
    files = find_files(str(store), selection(reason="saved-session", appUpdateChannel="nightly"))
    assert len(files) == 2
    assert sorted(listed) == [".", "saved_session", "saved_session/Fennec", "saved_session/Firefox",
                              "saved_session/Firefox/nightly", "saved_session/Firefox/nightly/24.0a1"]


def test_pending_and_partial_files_are_not_selected(store):
    for f in find_files(str(store)):
        os.rename(f.path, f.path + ".0123.compressme")
    compress_pending(str(store))
    compressed = find_files(str(store))
    assert len(compressed) == 6 and all(f.path.endswith(".lzma") for f in compressed)
    os.rename(compressed[0].path, compressed[0].path + ".partial")
    assert len(find_files(str(store))) == 5


def test_stray_files_at_directory_levels_are_ignored(store):
    (store / "README.log").write_text("not a partition")
    (store / "saved_session" / "Firefox" / "nightly" / "24.0a1" / "notes.txt").write_text("x")
    assert len(find_files(str(store))) == 6


def test_missing_data_directory_is_a_clear_error(tmp_path):
    with pytest.raises(StorageError, match="nowhere: data directory does not exist"):
        find_files(str(tmp_path / "nowhere"))
