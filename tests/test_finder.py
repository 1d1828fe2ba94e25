"""Finding files: filters at every level, pruning the walk, and what counts as a record file."""

from __future__ import annotations

import json
import os

import pytest

from storage import OTHER, Schema, SchemaError, StorageError, compress_pending, find_files
from storage import finder

from .conftest import REAL_DIMENSIONS, REAL_PING, REAL_STORE, SHIPPED, run_mr


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


def test_find_files_refuses_a_filter_whose_dimensions_are_not_the_layouts(store):
    names = Schema.default().field_names
    swapped = Schema.from_document({"dimensions": [
        {"field_name": n, "allowed_values": "*"} for n in names[:2] + [names[3], names[2]] + names[4:]]},
        source="swapped.json")
    with pytest.raises(SchemaError, match="swapped.json: dimension 2 is 'appVersion' \\(it is dimension 3\\)"):
        find_files(str(store), swapped)


BAD_FILTERS = {
    "nested-100000-deep": ('{"dimensions": ' + "[" * 100_000 + "]" * 100_000 + "}",
                           "JSON nested too deeply to read"),
    "channel-and-version-swapped": (json.dumps({"dimensions": [
        {"field_name": n, "allowed_values": "*"} for n in
        ("reason", "appName", "appVersion", "appUpdateChannel", "appBuildID", "submission_date")]}),
        "dimension 2 is 'appVersion' (it is dimension 3) where the layout has 'appUpdateChannel'"),
    "no-build-id": (json.dumps({"dimensions": [
        {"field_name": n, "allowed_values": "*"} for n in
        ("reason", "appName", "appUpdateChannel", "appVersion", "submission_date")]}),
        "5 dimensions (reason, appName, appUpdateChannel, appVersion, submission_date); a filter lists the "
        "storage layout's 6 dimensions in order"),
    "min-after-max": (json.dumps({"dimensions": [
        {"field_name": n, "allowed_values": {"min": "20131013", "max": "20131007"} if n == "submission_date" else "*"}
        for n in Schema.default().field_names]}),
        "dimension 5 ('submission_date'): the range's min '20131013' is after its max '20131007'"),
}


@pytest.mark.parametrize("command", ["ls", "run"])
@pytest.mark.parametrize("kind", sorted(BAD_FILTERS))
def test_a_bad_filter_is_one_error_and_exit_2_before_any_work(store, tmp_path, command, kind):
    text, message = BAD_FILTERS[kind]
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    job = [str(SHIPPED / "count.py"), "-o", str(tmp_path / "out.txt")] if command == "run" else []
    result = run_mr(command, *job, "-d", str(store), "-f", str(bad))
    assert result.returncode == 2, result.stderr
    assert f"{bad}: {message}" in result.stderr
    assert "Traceback" not in result.stderr and "selects no files" not in result.stderr
    assert not (tmp_path / "out.txt").exists()
