"""Raw submissions into the compact storage format, validated against each revision's Histograms.json.

Names are imported on first use (PEP 562), so that ``mr`` commands that never
convert do not pay for loading the converter.
"""

from importlib import import_module

_EXPORTS = {
    "convert": ("ConversionStats", "Converter", "Rejected", "compact_histogram"),
    "errors": ("DefinitionError",),
    "histograms": ("Definitions", "Histogram", "exponential_buckets", "linear_buckets"),
    "pipeline": ("ConvertOptions", "RunSummary", "convert_inputs"),
    "recordlog": ("DamagedRecord", "RawRecord", "RecordLogReader", "decode_payload", "encode_record"),
    "revisions": ("DEFAULT_URL_TEMPLATE", "RevisionCache", "split_revision"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'converter' has no attribute {name!r}")
    return getattr(import_module(f".{_MODULE_OF[name]}", __name__), name)
