"""The exceptions the storage package raises: each names what was wrong and where."""

from __future__ import annotations


class StorageError(Exception):
    """Base class: anything wrong with stored data, a schema or a path."""


class SchemaError(StorageError):
    """A schema or filter document is not valid."""


class LayoutError(StorageError):
    """A path does not belong to the storage layout (e.g. outside the base directory)."""


class CodecError(StorageError):
    """A file's name and its content disagree about how it is compressed."""


class CorruptFileError(StorageError):
    """A compressed file is truncated or damaged part-way through.

    The records before the damage have already been delivered; ``records_read``
    says how many, so a caller can report exactly what was lost.
    """

    def __init__(self, path: str, records_read: int, reason: str):
        self.path = path
        self.records_read = records_read
        self.reason = reason
        super().__init__(
            f"{path}: damaged after {records_read} records ({reason}); "
            "the records before the damage were read, the rest of the file is lost"
        )
