"""How a run is carried out: the options the coordinator and its workers share."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass


@dataclass(frozen=True)
class RunOptions:
    num_mappers: int
    num_reducers: int = 1
    work_dir: str | None = None
    budget_bytes: int = 512 << 20
    max_errors: int = 0
    allow_partial: bool = False
    delete_under: str | None = None
    """-X: input files under this directory are deleted once mapped (the S3 cache, or the data dir)."""
    profile_dir: str | None = None
    mapper_cmd: str | None = None
    combiner_cmd: str | None = None
    reducer_cmd: str | None = None


def default_work_dir() -> str:
    """Where spills and the S3 cache go without -w: private to the user, kept between runs for the cache."""
    path = os.path.join(tempfile.gettempdir(), f"mr-{os.getuid()}")
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path
