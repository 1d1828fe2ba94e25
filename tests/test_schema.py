"""Schema rules: allowed values, OTHER, safe names, filters, and errors in schema documents."""

from __future__ import annotations

import json

import pytest

from storage import OTHER, UNKNOWN, Schema, SchemaError, path_part, safe_filename


def schema_of(*allowed) -> Schema:
    dims = [{"field_name": f"d{i}", "allowed_values": a} for i, a in enumerate(allowed)]
    return Schema.from_document({"version": 1, "dimensions": dims})


def test_default_schema_is_the_production_one():
    assert Schema.default().field_names == ["reason", "appName", "appUpdateChannel", "appVersion",
                                            "appBuildID", "submission_date"]


def test_safe_filename_replaces_everything_outside_the_safe_set():
    assert safe_filename("saved-session") == "saved_session"
    assert safe_filename("a b:c*d") == "a_b_c_d"
    assert safe_filename("Az09_/.") == "Az09_/."


def test_path_part_cannot_add_or_escape_directory_levels():
    assert path_part("a/b") == "a_b"
    assert path_part("..") == "__"
    assert path_part(".") == "_"
    assert path_part("22.0a1") == "22.0a1"


def test_path_part_keeps_file_name_dimensions_free_of_dots():
    assert path_part("2013.06.01", in_file_name=True) == "2013_06_01"


def test_missing_values_are_unknown():
    assert path_part(None) == UNKNOWN
    assert path_part("") == UNKNOWN


def test_star_allows_anything():
    assert schema_of("*", "*").allows(0, "whatever")


def test_list_allows_only_its_members():
    schema = schema_of(["a", "b"], "*")
    assert schema.allows(0, "b")
    assert not schema.allows(0, "c")


def test_single_string_is_a_list_of_one():
    schema = schema_of("nightly", "*")
    assert schema.allows(0, "nightly")
    assert not schema.allows(0, "nightly2")


def test_range_bounds_are_inclusive_string_comparisons():
    schema = schema_of({"min": "20130601", "max": "20130603"}, "*")
    assert [d for d in ("20130531", "20130601", "20130602", "20130603", "20130604")
            if schema.allows(0, d)] == ["20130601", "20130602", "20130603"]


def test_range_with_only_a_lower_bound():
    schema = schema_of({"min": "20130601"}, "*")
    assert schema.allows(0, "99999999")
    assert not schema.allows(0, "20130531")


def test_range_with_only_an_upper_bound():
    schema = schema_of({"max": "20130601"}, "*")
    assert schema.allows(0, "00000000")
    assert not schema.allows(0, "20130602")


def test_allowed_values_go_through_the_safe_rule():
    assert schema_of(["saved-session"], "*").allows(0, "saved_session")


def test_apply_replaces_disallowed_values_with_other():
    parts = Schema.default().apply(["saved-session", "Firefox", "esr", "17.0", "20130101", "20130102"])
    assert parts == ["saved_session", "Firefox", OTHER, "17.0", "20130101", "20130102"]


def test_apply_checks_the_number_of_values():
    with pytest.raises(ValueError, match="expected 6 dimension values"):
        Schema.default().apply(["saved-session"])


def test_values_from_info_takes_fields_in_schema_order():
    info = {"reason": "idle-daily", "appName": "Fennec", "appUpdateChannel": "beta",
            "appVersion": "22.0", "appBuildID": "20130520000000"}
    assert Schema.default().values_from(info, "20130601") == [
        "idle-daily", "Fennec", "beta", "22.0", "20130520000000", "20130601"]


def test_unfiltered_keeps_other():
    unfiltered = Schema.default().unfiltered()
    assert unfiltered.matches([OTHER] * 6)
    assert not Schema.default().matches([OTHER] * 6)


def test_matches_checks_every_level():
    schema = schema_of(["a"], {"min": "5"})
    assert schema.matches(["a", "7"])
    assert not schema.matches(["a", "3"])


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "a JSON object"),
    ('{"version": 1}', 'missing "dimensions"'),
    ('{"version": "1", "dimensions": []}', '"version" must be an integer'),
    ('{"dimensions": [{"field_name": 3, "allowed_values": "*"}, {"field_name": "x", "allowed_values": "*"}]}',
     "dimension 0: \"field_name\" must be a non-empty string"),
    ('{"dimensions": [{"field_name": "reason"}, {"field_name": "x", "allowed_values": "*"}]}',
     "dimension 0 ('reason'): missing \"allowed_values\""),
    ('{"dimensions": [{"field_name": "a", "allowed_values": "*"}, {"field_name": "b", "allowed_values": 5}]}',
     "dimension 1 ('b'): \"allowed_values\" must be"),
    ('{"dimensions": [{"field_name": "a", "allowed_values": ["x", 1]}, {"field_name": "b", "allowed_values": "*"}]}',
     "dimension 0 ('a'): every entry"),
    ('{"dimensions": [{"field_name": "a", "allowed_values": {"min": 2013}}, {"field_name": "b", "allowed_values": "*"}]}',
     "dimension 0 ('a'): a range is"),
    ('{"dimensions": [{"field_name": "a", "allowed_values": {"from": "1"}}, {"field_name": "b", "allowed_values": "*"}]}',
     "dimension 0 ('a'): a range is"),
    ('{"dimensions": [{"field_name": "a", "allowed_values": "*"}]}', "at least two dimensions"),
    ('{"dimensions": [{"field_name": "a", "allowed_values": {"min": "20131013", "max": "20131007"}}, '
     '{"field_name": "b", "allowed_values": "*"}]}',
     "dimension 0 ('a'): the range's min '20131013' is after its max '20131007', so it allows nothing; swap them"),
    ('{"dimensions": ' + "[" * 100_000 + "]" * 100_000 + "}", "JSON nested too deeply to read"),
    ('{"dimensions": [{"field_name": "a", "allowed_values": ' + "[" * 100_000 + "]" * 100_000 + '}]}',
     "JSON nested too deeply to read"),
], ids=lambda value: value if len(value) < 40 else value[:20] + "...")
def test_invalid_documents_name_the_file_and_the_problem(tmp_path, text, message):
    path = tmp_path / "filter.json"
    path.write_text(text)
    with pytest.raises(SchemaError) as error:
        Schema.load(str(path))
    assert str(error.value).startswith(str(path))
    assert message in str(error.value)


def deepest_json_here() -> int:
    """How deeply nested a list json.loads still reads at this depth of the stack."""
    low, high = 1, 100_000
    while low < high:
        middle = (low + high + 1) // 2
        try:
            json.loads("[" * middle + "]" * middle)
            low = middle
        except RecursionError:
            high = middle - 1
    return low


@pytest.mark.parametrize("template, message", [
    ('{"version": VALUE, "dimensions": []}', '"version" must be an integer, got [[[['),
    ('{"dimensions": [{"field_name": VALUE, "allowed_values": "*"}]}', '"field_name" must be a non-empty string'),
    ('{"dimensions": [{"field_name": "a", "allowed_values": {"min": VALUE}}]}', "a range is"),
])
def test_a_bad_value_nested_almost_too_deep_is_shown_short(tmp_path, template, message):
    depth = deepest_json_here() - 10
    path = tmp_path / "filter.json"
    path.write_text(template.replace("VALUE", "[" * depth + "]" * depth))
    with pytest.raises(SchemaError) as error:
        Schema.load(str(path))
    assert message in str(error.value) and len(str(error.value)) < len(str(path)) + 200


def test_unreadable_schema_file_names_the_file(tmp_path):
    with pytest.raises(SchemaError, match="missing.json: cannot read"):
        Schema.load(str(tmp_path / "missing.json"))


def test_a_schema_file_that_is_not_utf8_names_the_file_and_the_byte(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes('{"dimensions": ["é"]}'.encode("latin-1"))
    with pytest.raises(SchemaError, match=f"{path}:1: not UTF-8 text \\(byte 0xe9\\); save the file as UTF-8"):
        Schema.load(str(path))


def a_filter(*names: str) -> Schema:
    return Schema.from_document({"dimensions": [{"field_name": n, "allowed_values": "*"} for n in names]},
                                source="nightly.json")


LAYOUT = "a filter lists the storage layout's 6 dimensions in order: reason, appName, appUpdateChannel, " \
         "appVersion, appBuildID, submission_date"


@pytest.mark.parametrize("names, message", [
    (["reason", "appName", "appVersion", "appUpdateChannel", "appBuildID", "submission_date"],
     f"nightly.json: dimension 2 is 'appVersion' (it is dimension 3) where the layout has 'appUpdateChannel'; "
     f"{LAYOUT}"),
    (["reason", "appName", "channel", "appVersion", "appBuildID", "submission_date"],
     f"nightly.json: dimension 2 is 'channel' (no such dimension) where the layout has 'appUpdateChannel'; {LAYOUT}"),
    (["reason", "appName", "appUpdateChannel", "appVersion", "submission_date"],
     f"nightly.json: 5 dimensions (reason, appName, appUpdateChannel, appVersion, submission_date); {LAYOUT}"),
    (["reason", "appName", "appUpdateChannel", "appVersion", "appBuildID", "submission_date", "OS"],
     "nightly.json: 7 dimensions (reason, appName, appUpdateChannel, appVersion, appBuildID, submission_date, OS)"),
], ids=["out-of-order", "unknown-name", "one-missing", "one-extra"])
def test_a_filter_must_name_the_layouts_dimensions_in_order(names, message):
    with pytest.raises(SchemaError) as error:
        Schema.selecting(a_filter(*names))
    assert str(error.value).startswith(message)


def test_a_filter_naming_the_layouts_dimensions_is_used_as_it_is():
    nightly = a_filter(*Schema.default().field_names)
    assert Schema.selecting(nightly) is nightly
    assert Schema.selecting(None).matches([OTHER] * 6)


def test_a_loaded_filter_round_trips_through_json(tmp_path):
    path = tmp_path / "nightly.json"
    path.write_text(json.dumps({"version": 1, "dimensions": [
        {"field_name": "reason", "allowed_values": ["saved-session"]},
        {"field_name": "submission_date", "allowed_values": {"min": "20130601"}}]}))
    schema = Schema.load(str(path))
    assert schema.matches(["saved_session", "20130602"])
    assert not schema.matches(["idle_daily", "20130602"])
