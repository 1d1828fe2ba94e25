"""Every `mr` command has help with an example and is documented in the README."""

from __future__ import annotations

import pytest

from mapreduce.cli import build_parser

from .conftest import ROOT, run_mr

COMMANDS = sorted(build_parser()._subparsers._group_actions[0].choices)


def test_there_are_commands():
    assert {"cat", "ls", "compress"} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_command_has_help_with_an_example(command):
    result = run_mr(command, "--help")
    assert result.returncode == 0
    assert "example: mr " + command in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_command_is_in_the_readme(command):
    assert f"mr {command} " in (ROOT / "README.md").read_text()
