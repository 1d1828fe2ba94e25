"""External executables in place of map, combine and reduce, mixed with Python, and their failures."""

from __future__ import annotations

import pytest

from .conftest import JOBS, mr_run, run_mr, tsv

AWK_CHANNEL_MAPPER = "awk -F'\\t' '{split($2, d, \"/\"); print d[3] \"\\t1\"}'"
AWK_SUM = "awk -F'\\t' '{s[$1] += $2} END {for (k in s) print k \"\\t\" s[k]}'"


def expected(truth) -> dict[str, str]:
    return {channel: str(n) for channel, n in truth["channels"].items()}


def test_an_awk_mapper_with_a_python_reduce(data, truth, tmp_path):
    result, text = mr_run(JOBS / "sum_text.py", data, tmp_path, "--mapper-cmd", AWK_CHANNEL_MAPPER)
    assert result.returncode == 0, result.stderr
    assert tsv(text) == expected(truth)


def test_a_python_map_with_an_awk_reducer(data, truth, tmp_path):
    result, text = mr_run(JOBS / "no_combine.py", data, tmp_path, "--reducer-cmd", AWK_SUM, "-r", "2")
    assert result.returncode == 0, result.stderr
    assert tsv(text) == expected(truth)
    assert list(tsv(text)) == sorted(tsv(text))


def test_external_mapper_combiner_and_reducer_without_a_job_script(data, truth, tmp_path):
    out = tmp_path / "out.txt"
    result = run_mr("run", "-d", str(data), "-o", str(out), "--mapper-cmd", AWK_CHANNEL_MAPPER,
                    "--combiner-cmd", AWK_SUM, "--reducer-cmd", AWK_SUM)
    assert result.returncode == 0, result.stderr
    assert tsv(out.read_text()) == expected(truth)


def test_a_failing_mapper_names_the_input_and_shows_its_stderr(data, tmp_path):
    failing = "sh -c 'echo something broke >&2; exit 3'"
    result, text = mr_run(JOBS / "no_combine.py", data, tmp_path, "--mapper-cmd", failing)
    assert result.returncode == 1 and text is None
    assert "exited with status 3" in result.stderr and "something broke" in result.stderr
    assert "mapper command" in result.stderr and "at input " in result.stderr and str(data) in result.stderr


def test_a_malformed_line_from_an_executable_fails_the_job(data, tmp_path):
    result, _ = mr_run(JOBS / "no_combine.py", data, tmp_path, "--reducer-cmd", "echo no-tab-here")
    assert result.returncode == 1
    assert "wrote a line without a tab: 'no-tab-here'" in result.stderr


@pytest.mark.parametrize("option", ["--mapper-cmd", "--reducer-cmd", "--combiner-cmd"])
def test_a_missing_program_is_found_before_any_work(data, tmp_path, option):
    result, _ = mr_run(JOBS / "no_combine.py", data, tmp_path, option, "no-such-program --flag")
    assert result.returncode == 2 and "cannot find the program" in result.stderr
