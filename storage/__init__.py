"""Pings on disk: the schema-partitioned layout, its writer, compressor, reader and finder.

    reason/appName/channel/version/<buildid>.<submission_date>.v<N>.log[.<unique>.lzma]

See StorageLayout.md for the layout in prose.
"""

from .codecs import CODECS, COMPRESSORS, Codec
from .compressor import CompressionStats, compress_file, compress_pending, find_pending
from .errors import CodecError, CorruptFileError, LayoutError, SchemaError, StorageError
from .finder import StoredFile, find_files
from .layout import dimensions_from_path, log_path
from .reader import Record, RecordReader, read_records
from .schema import OTHER, UNKNOWN, Schema, path_part, safe_filename
from .writer import DEFAULT_MAX_LOG_SIZE, LayoutWriter, WriterStats, rotate_log

__all__ = [
    "CODECS", "COMPRESSORS", "Codec",
    "CompressionStats", "compress_file", "compress_pending", "find_pending",
    "CodecError", "CorruptFileError", "LayoutError", "SchemaError", "StorageError",
    "StoredFile", "find_files",
    "dimensions_from_path", "log_path",
    "Record", "RecordReader", "read_records",
    "OTHER", "UNKNOWN", "Schema", "path_part", "safe_filename",
    "DEFAULT_MAX_LOG_SIZE", "LayoutWriter", "WriterStats", "rotate_log",
]
