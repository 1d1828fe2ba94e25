"""A module beside a job script, imported by it."""

PREFIX = "from-helper:"
