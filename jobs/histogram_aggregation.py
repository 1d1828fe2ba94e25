"""The dashboard aggregation: for every (channel, major version, histogram), the element-wise
sum of the histogram arrays and the number of pings that had it. One JSON object per line:

    {"channel": "nightly", "version": "27", "histogram": "GC_MS", "pings": 812, "values": [...]}

Each ping is written once, keyed by (channel, major version), with all its histograms;
combine merges them name by name. Histograms whose bucket layout changed between builds
are refused and counted ("histogram layout changed: NAME"), not mixed.
"""

from mapreduce.telemetry import dumps, loads, merge_histogram_sets


def map(key, dims, value, context):
    context.write((dims[2], dims[3].split(".", 1)[0]), loads(value)["histograms"])


combine = merge_histogram_sets


def reduce(key, values, context):
    merged = _Capture(context)
    merge_histogram_sets(key, values, merged)
    channel, version = key
    for name, (pings, sums) in sorted(merged.value.items()):
        context.writeline(dumps({"channel": channel, "version": version, "histogram": name,
                                 "pings": pings, "values": sums}).decode())


class _Capture:
    """Keeps what merge_histogram_sets writes; counters go to the real context."""

    def __init__(self, context):
        self.increment = context.increment
        self.value = None

    def write(self, key, value):
        self.value = value
