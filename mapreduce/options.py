"""How a run is carried out: the options the coordinator and its workers share."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RunOptions:
    num_mappers: int
    num_reducers: int = 1
    work_dir: str | None = None
    budget_bytes: int = 512 << 20
    max_errors: int = 0
    allow_partial: bool = False
    profile_dir: str | None = None
    mapper_cmd: str | None = None
    combiner_cmd: str | None = None
    reducer_cmd: str | None = None
