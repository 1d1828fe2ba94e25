"""Where a run's output goes: a local file, stdout, a device or FIFO, or an S3 object staged locally.

Everything that could go wrong with the destination is checked before any
work: a directory, a missing or read-only directory, a path that is one of
the run's inputs or inside its data dir or cache, a bucket that is not there.
A local output is written under a temporary name and renamed when the job
succeeds; a device or FIFO (``/dev/null``, a named pipe) is written through,
never replaced, and gets no sidecar. An S3 output is staged under
``<work-dir>/outputs/``, uploaded with its sidecar and verified, and only then
are the local copies removed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import sys
from dataclasses import dataclass
from typing import IO, Any, Callable, Sequence, TextIO, TypeVar

from storage.fastjson import dumps_indented

from .atomic import atomic_file
from .errors import JobError, JobLoadError, OutputError
from .workdir import trusted_dir

log = logging.getLogger(__name__)

META_SUFFIX = ".meta.json"
STDOUT = "-"

Result = TypeVar("Result")


@dataclass(frozen=True)
class Protected:
    """A file or directory the output must never replace or land in: an input, the data dir, the cache."""

    what: str
    path: str


@dataclass(frozen=True)
class Destination:
    local: str
    """Where the job writes: the output file, a staging file for S3, or ``-`` for stdout."""
    bucket: str | None = None
    key: str | None = None
    client: Any = None
    through: bool = False
    """The output is a device or FIFO: written through, never renamed over, no sidecar beside it."""

    @classmethod
    def parse(cls, output: str, work_dir: str, settings: Callable[[], Any],
              protected: Sequence[Protected] = (), input_prefix: tuple[str, str] | None = None) -> "Destination":
        """Check the destination before any work; JobLoadError (exit 2) if it cannot or must not be written.

        ``input_prefix`` is the (bucket, prefix) a run reads from S3: an S3 output is refused inside it.
        """
        if output == STDOUT:
            return cls(output)
        if not output.startswith("s3://"):
            return cls(output, through=_check_local(output, protected))
        from storage.s3 import S3Error, check_bucket, make_client, parse_s3_url  # boto3: only when used
        try:
            bucket, key = parse_s3_url(output)
            if input_prefix and bucket == input_prefix[0] and key.startswith(input_prefix[1]):
                raise JobLoadError(f"--output {output} is inside the layout this run reads "
                                   f"(s3://{bucket}/{input_prefix[1]}); write the output elsewhere")
            client = make_client(settings())
            check_bucket(client, bucket)
        except S3Error as e:
            raise JobLoadError(f"--output: {e}") from None
        staging = trusted_dir(os.path.join(work_dir, "outputs"), "the staging dir for S3 outputs")
        # Named by the URL's hash: a key is not a safe path (``..``, empty parts, names too long).
        local = os.path.join(staging, hashlib.sha256(output.encode()).hexdigest()[:24])
        return cls(local, bucket, key, client)

    @property
    def sidecar(self) -> str | None:
        """Where the provenance record goes, if anywhere."""
        return None if self.local == STDOUT or self.through else self.local + META_SUFFIX

    @property
    def name(self) -> str:
        return "standard output" if self.local == STDOUT else self.local

    def write(self, produce: Callable[[TextIO], Result]) -> Result:
        """Run ``produce`` on the output's text stream; the output is in place when this returns.

        A failed ``produce`` leaves no output (and a previous one untouched);
        a write that fails (disk full, a closed device) is an OutputError naming it.
        """
        if self.local == STDOUT:
            return self._produce(sys.stdout, produce)
        if not self.through:
            with atomic_file(self.local) as f:
                return self._produce(f, produce)
        try:
            device = open(self.local, "w", encoding="utf-8", newline="")
        except OSError as e:
            raise OutputError(f"cannot open the output {self.local}: {e.strerror or e}") from None
        try:
            return self._produce(device, produce)
        finally:
            try:
                device.close()
            except OSError:
                pass  # only after a failure, already reported: a success has flushed everything

    def write_sidecar(self, document: dict) -> None:
        if self.sidecar is not None:
            with atomic_file(self.sidecar) as f:
                _Guarded(f, self.sidecar).write(dumps_indented(document) + "\n")

    def _produce(self, stream: IO, produce: Callable[[TextIO], Result]) -> Result:
        guarded = _Guarded(stream, self.name)
        result = produce(guarded)
        guarded.flush()
        return result

    def publish(self) -> None:
        """Upload the staged output and its sidecar, verified, then remove them; JobError if that fails."""
        if self.bucket is None:
            return
        from storage.s3 import S3Error, upload_verified
        for path, key in ((self.local, self.key), (self.local + META_SUFFIX, self.key + META_SUFFIX)):
            try:
                upload_verified(self.client, path, self.bucket, key)
            except (S3Error, OSError) as e:
                raise JobError(f"uploading the output to s3://{self.bucket}/{key} failed: {e}; the output is "
                               f"kept at {self.local}") from None
        for path in (self.local, self.local + META_SUFFIX):
            os.remove(path)
        log.info("uploaded the output to s3://%s/%s (and %s)", self.bucket, self.key, META_SUFFIX)


class _Guarded:
    """A text stream whose write errors name the output (the engine writes to it, not knowing where it goes)."""

    def __init__(self, stream: IO, name: str):
        self.stream = stream
        self.name = name

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            raise  # the reader went away (`| head`): the command line stops quietly
        except OSError as e:
            raise self._failed(e) from None

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError:
            raise
        except OSError as e:
            raise self._failed(e) from None

    def _failed(self, error: OSError) -> OutputError:
        return OutputError(f"writing the output to {self.name} failed: {error.strerror or error}")


def _check_local(output: str, protected: Sequence[Protected]) -> bool:
    """JobLoadError if ``output`` cannot or must not be written; True if it is a device or FIFO."""
    if os.path.isdir(output):
        raise JobLoadError(f"--output {output} is a directory; name a file, e.g. {os.path.join(output, 'out.tsv')}")
    through = os.path.exists(output) and not stat.S_ISREG(os.stat(output).st_mode)
    for target in [output] if through else [output, output + META_SUFFIX]:
        _check_not_protected(output, target, protected)
    if through:
        if not os.access(output, os.W_OK):
            raise JobLoadError(f"--output {output}: cannot write there")
        return True
    directory = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(directory):
        raise JobLoadError(f"--output {output}: the output's directory does not exist")
    if os.path.isdir(output + META_SUFFIX):
        raise JobLoadError(f"--output {output}: its sidecar {output + META_SUFFIX} is a directory")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise JobLoadError(f"--output {output}: cannot write in {directory}")
    return False


def _check_not_protected(output: str, target: str, protected: Sequence[Protected]) -> None:
    real = os.path.realpath(target)
    which = "" if target == output else f" (its sidecar {target})"
    for item in protected:
        guarded = os.path.realpath(item.path)
        if real == guarded:
            raise JobLoadError(f"--output {output}{which} is {item.what}; writing it would destroy an input. "
                               "Write the output elsewhere")
        if real.startswith(guarded.rstrip(os.sep) + os.sep) and os.path.isdir(guarded):
            raise JobLoadError(f"--output {output}{which} is inside {item.what} {item.path}; writing there could "
                               "destroy or add to the inputs. Write the output elsewhere")
