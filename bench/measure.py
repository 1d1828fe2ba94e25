"""What the engine benchmarks share: cached generated data, parallel `xz` floors, `mr` runs, best-of timing.

They reach the project only through the `mr` command (`bin/mr gen`, `bin/mr run`),
so they keep working however its packages are laid out inside. `mr` runs with
bytecode caching on, as on a user's machine: where PYTHONDONTWRITEBYTECODE is
set (as in some sandboxes), every start would otherwise compile the modules
that have no cached bytecode yet, about 0.1 s per process.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
MR = [sys.executable, os.path.join(ROOT, "bin", "mr")]
DATA = os.path.join(ROOT, "bench", "out", "engine-data")
"""Generated data is kept as DATA-<pings> between runs."""
SEED = 42


def generated_data(pings: int, cores: int, prefix: str = DATA) -> str:
    """The directory of ``pings`` synthetic pings (LZMA files), generated once with `mr gen`."""
    data = f"{prefix}-{pings}"
    if not os.path.isdir(data):
        print(f"generating {pings:,} pings into {data} (once) ...", flush=True)
        partial = data + ".partial"
        shutil.rmtree(partial, ignore_errors=True)
        subprocess.run(MR + ["gen", partial, "--pings", str(pings), "--seed", str(SEED), "--workers", str(cores)],
                       check=True, stdout=subprocess.DEVNULL)
        os.rename(partial, data)
    return data


def stored_files(data: str) -> list[str]:
    """Every compressed file of a storage layout."""
    return sorted(os.path.join(directory, name) for directory, _, names in os.walk(data)
                  for name in names if name.endswith((".lzma", ".xz")))


def split(files: list[str], parts: int) -> list[list[str]]:
    """Files spread over ``parts`` by size, largest first (as the engine's queue does)."""
    loads: list[list] = [[0, []] for _ in range(parts)]
    for path in sorted(files, key=os.path.getsize, reverse=True):
        smallest = min(loads, key=lambda load: load[0])
        smallest[0] += os.path.getsize(path)
        smallest[1].append(path)
    return [paths for _, paths in loads if paths]


def parallel_xz(files: list[str], cores: int) -> None:
    """The decompression floor: one `xz --format=lzma -dc` per core over its share of the files."""
    processes = [subprocess.Popen(["xz", "--format=lzma", "-dc", *part], stdout=subprocess.DEVNULL)
                 for part in split(files, cores)]
    if any(p.wait() for p in processes):
        raise SystemExit("xz failed on the benchmark data")


def mr_environment() -> dict[str, str]:
    """The environment `mr` runs in: this one, with bytecode caching on."""
    return {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


def warm_up(files: list[str]) -> None:
    """Read the files once (into the page cache) and start `mr` once (its bytecode cached), before any timing."""
    for path in files:
        with open(path, "rb") as f:
            while f.read(1 << 20):
                pass
    mr("--version")


def mr(*arguments: str) -> None:
    """Run `mr` quietly; its stderr is shown only if it fails."""
    done = subprocess.run(MR + list(arguments), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          env=mr_environment())
    if done.returncode:
        raise SystemExit(f"mr {' '.join(arguments)} failed:\n{done.stderr}")


@dataclass
class Timings:
    """Wall-clock and CPU seconds of repeated runs of one thing."""

    name: str
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    """User and system time of the child processes, which other load on the machine disturbs less."""

    def time(self, function: Callable[[], object]) -> None:
        cpu = _children_cpu()
        start = time.perf_counter()
        function()
        self.seconds.append(time.perf_counter() - start)
        self.cpu_seconds.append(_children_cpu() - cpu)

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def best_cpu(self) -> float:
        return min(self.cpu_seconds)

    @property
    def spread(self) -> float:
        """Slowest over fastest run: how noisy the machine was."""
        return max(self.seconds) / min(self.seconds)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def interleaved(rounds: int, contenders: list[tuple[Timings, Callable[[], object]]]) -> None:
    """Time each contender once per round, in turn, so that a busy spell on the machine slows all of them."""
    for _ in range(rounds):
        for timings, function in contenders:
            timings.time(function)
