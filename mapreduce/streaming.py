"""External executables in place of map, combine or reduce (the streaming protocol).

    mapper:            stdin  uuid<TAB>dims joined by /<TAB>json      stdout  key<TAB>value
    combiner, reducer: stdin  key<TAB>value, grouped by key, in key order   stdout  key<TAB>value

A mapper process runs per bundle of files on each worker, a combiner per spill,
a reducer per partition. A process that exits non-zero, or writes a line
without a tab, fails the job with its stderr tail and the input it was given.
"""

from __future__ import annotations

import collections
import shlex
import subprocess
import threading
from typing import Callable, Iterable, Iterator

STDERR_TAIL = 20


class StreamingFailure(Exception):
    """(where, error, stderr tail) of an external command that failed."""


class Pipe:
    """Run ``command`` with ``lines`` on its stdin, yielding (key, value) from its stdout."""

    def __init__(self, command: str, lines: Iterable[bytes], describe_input: Callable[[], str]):
        self.command = command
        self.describe_input = describe_input
        self.process = subprocess.Popen(shlex.split(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE)
        self.stderr: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL)
        self.writer_error: BaseException | None = None
        self._threads = [threading.Thread(target=self._write, args=(lines,), daemon=True),
                         threading.Thread(target=self._collect_stderr, daemon=True)]
        for thread in self._threads:
            thread.start()

    def pairs(self) -> Iterator[tuple[str, str]]:
        try:
            for raw in self.process.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                key, tab, value = line.partition("\t")
                if not tab:
                    raise self._failure(f"wrote a line without a tab: {line[:200]!r}")
                yield key, value
        except BaseException:
            self.process.kill()
            raise
        finally:
            self.process.stdout.close()
            status = self.process.wait()
            for thread in self._threads:
                thread.join()
        if self.writer_error is not None and not isinstance(self.writer_error, BrokenPipeError):
            raise self.writer_error
        if status != 0:
            raise self._failure(f"exited with status {status}")

    def _write(self, lines: Iterable[bytes]) -> None:
        try:
            for line in lines:
                self.process.stdin.write(line)
        except BaseException as e:  # handed to the reading side, which reports it
            self.writer_error = e
        finally:
            try:
                self.process.stdin.close()
            except BrokenPipeError:
                pass

    def _collect_stderr(self) -> None:
        for raw in self.process.stderr:
            self.stderr.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def _failure(self, problem: str) -> StreamingFailure:
        tail = "\n".join(self.stderr) or "(nothing on stderr)"
        return StreamingFailure(self.describe_input(), f"{self.command!r} {problem}", tail)


def key_value_lines(pairs: Iterable[tuple[object, object]]) -> Iterator[bytes]:
    """The combiner/reducer input format; keys and values become text as ``str()`` writes them."""
    for key, value in pairs:
        yield f"{key}\t{value}\n".encode("utf-8")
