"""The exceptions the engine raises; each renders as one line a user can act on."""

from __future__ import annotations


class JobError(Exception):
    """The job cannot run or failed; ``status`` is the exit status to give."""

    status = 1


class JobLoadError(JobError):
    """The job script, filter, paths or options are wrong: found before any work starts."""

    status = 2


class JobCodeError(JobError):
    """The job's own code raised: carries where (function, file, line or key) and its traceback."""

    def __init__(self, function: str, where: str, error: str, traceback: str):
        self.function = function
        self.where = where
        self.error = error
        self.traceback = traceback
        super().__init__(f"{function}() raised {error} at {where}\n{traceback}")


class OutputError(JobError):
    """The output could not be written (a full disk, a failing device): names where."""


class WorkDirFailed(JobError):
    """The work dir cannot take the run's scratch files (full, read-only, failing). Not worth a retry."""

    def __init__(self, work_dir: str, error: OSError):
        super().__init__(f"work dir {work_dir}: {(error.strerror or str(error)).lower()}; free some space there "
                         "or give another work dir with -w DIR")
