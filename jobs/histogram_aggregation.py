"""The dashboard aggregation: for every (channel, major version, histogram), the element-wise
sum of the histogram arrays and the number of pings. One JSON object per line:

    {"channel": "nightly", "version": "27", "histogram": "GC_MS", "pings": 812, "values": [...]}

Histograms whose bucket layout changed between builds are refused and counted, not mixed.
"""

from mapreduce.telemetry import dumps, loads, merge_histograms


def map(key, dims, value, context):
    channel = dims[2]
    version = dims[3].split(".", 1)[0]
    for name, array in loads(value)["histograms"].items():
        context.write((channel, version, name), (1, array))


combine = merge_histograms


def reduce(key, values, context):
    merged = _Merged()
    merge_histograms(key, values, merged)
    context.counters.update(merged.counters)
    channel, version, name = key
    pings, sums = merged.value
    context.writeline(dumps({"channel": channel, "version": version, "histogram": name,
                             "pings": pings, "values": sums}).decode())


class _Merged:
    """Catches what merge_histograms writes, so reduce can format it."""

    def __init__(self):
        from collections import Counter
        self.counters = Counter()
        self.value = None

    def write(self, key, value):
        self.value = value

    def increment(self, name, amount=1):
        self.counters[name] += amount
