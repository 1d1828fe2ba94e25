"""Raw submissions into the compact storage format, validated against each revision's Histograms.json."""

from .convert import ConversionStats, Converter, Rejected, compact_histogram
from .histograms import DefinitionError, Definitions, Histogram, exponential_buckets, linear_buckets
from .pipeline import ConvertOptions, RunSummary, convert_inputs
from .recordlog import DamagedRecord, RawRecord, RecordLogReader, decode_payload, encode_record
from .revisions import DEFAULT_URL_TEMPLATE, RevisionCache, split_revision

__all__ = [
    "ConversionStats", "Converter", "Rejected", "compact_histogram",
    "DefinitionError", "Definitions", "Histogram", "exponential_buckets", "linear_buckets",
    "ConvertOptions", "RunSummary", "convert_inputs",
    "DamagedRecord", "RawRecord", "RecordLogReader", "decode_payload", "encode_record",
    "DEFAULT_URL_TEMPLATE", "RevisionCache", "split_revision",
]
