"""The dashboard aggregation: for every (channel, major version, histogram), the element-wise
sum of the histogram arrays and the number of pings that had it. One JSON object per line:

    {"channel": "nightly", "version": "27", "histogram": "GC_MS", "pings": 812, "values": [...]}

Each ping is written once, keyed by (channel, major version), with all its histograms;
combine merges them name by name. Histograms whose bucket layout changed between builds
are refused and counted ("histogram layout changed: NAME"), not mixed.
"""

from mapreduce.telemetry import dumps, histograms_of, merge_histogram_sets, merged_histogram_sets


def map(key, dims, value, context):
    # histograms_of reads the histograms straight from the JSON text into a compact packed form;
    # the whole text is still validated, so bad JSON is a bad record, as with json.loads.
    context.write((dims[2], dims[3].split(".", 1)[0]), histograms_of(value))


combine = merge_histogram_sets


def reduce(key, values, context):
    channel, version = key
    for name, (pings, sums) in sorted(merged_histogram_sets(values, context).items()):
        context.writeline(dumps({"channel": channel, "version": version, "histogram": name,
                                 "pings": pings, "values": sums}).decode())
