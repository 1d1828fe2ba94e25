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
