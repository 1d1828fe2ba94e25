"""Load a job script: a Python file defining ``map`` and optionally ``reduce``, ``combine``,
``setup_map``, ``finish_map`` and ``setup_reduce`` (the original telemetry-server job API).

``python -m mapreduce.job JOB.py [options]`` is the same as ``mr run JOB.py [options]``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import traceback
from dataclasses import dataclass
from types import ModuleType
from typing import Callable

from .errors import JobLoadError
from .lifecycle import Interrupted

FUNCTIONS = ("map", "reduce", "combine", "setup_map", "finish_map", "setup_reduce")


@dataclass(frozen=True)
class Job:
    path: str
    source_hash: str
    module: ModuleType | None
    map: Callable | None = None
    reduce: Callable | None = None
    combine: Callable | None = None
    setup_map: Callable | None = None
    finish_map: Callable | None = None
    setup_reduce: Callable | None = None

    @property
    def name(self) -> str:
        return os.path.basename(self.path)


def load_job(path: str, require_map: bool = True) -> Job:
    """Import a job script; JobLoadError (one line, exit 2) if it cannot run."""
    if not os.path.isfile(path):
        raise JobLoadError(f"{path}: no such job script")
    with open(path, "rb") as f:
        source_hash = hashlib.sha256(f.read()).hexdigest()
    directory = os.path.dirname(os.path.abspath(path))
    if directory not in sys.path:
        sys.path.insert(0, directory)  # job scripts may import the modules beside them
    module_name = f"mr_job_{source_hash[:12]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # so pickle can find the job's own classes
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise JobLoadError(f"{path}:{e.lineno}: syntax error: {e.msg}") from None
    except Interrupted:
        raise
    except BaseException as e:  # the job's own import-time code (sys.exit too): report it, not our loader
        frames = traceback.extract_tb(e.__traceback__)
        mine = [f for f in frames if f.filename == os.path.abspath(path) or f.filename == path] or frames[-1:]
        where = f"{mine[-1].filename}:{mine[-1].lineno}"
        raise JobLoadError(f"{path}: failed to load: {type(e).__name__}: {e} (at {where})") from None
    functions = {}
    for name in FUNCTIONS:
        function = getattr(module, name, None)
        if function is not None and not callable(function):
            raise JobLoadError(f"{path}: '{name}' must be a function, not {type(function).__name__}")
        functions[name] = function
    if require_map and functions["map"] is None:
        raise JobLoadError(f"{path}: defines no map(key, dims, value, context) function")
    return Job(path=path, source_hash=source_hash, module=module, **functions)


if __name__ == "__main__":
    from .cli import main

    sys.exit(main(["run", *sys.argv[1:]]))
