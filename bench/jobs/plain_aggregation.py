"""The histogram aggregation in plain Python, for bench/plain_python_bench.py: no C helpers.

Every ping is parsed with orjson and written once, under (channel, major
version), as ``{name: [1, array]}``; combine and reduce merge such sets name
by name into ``[pings, sums]``, with one ``zip`` list comprehension per
histogram merged. The output is one JSON object per line, sorted, as
jobs/histogram_aggregation.py writes it:

    {"channel": "nightly", "version": "27", "histogram": "GC_MS", "pings": 812, "values": [...]}
"""

import orjson


def map(key, dims, value, context):
    histograms = orjson.loads(value)["histograms"]
    context.write((dims[2], dims[3].split(".", 1)[0]), {name: [1, array] for name, array in histograms.items()})


def merged(values):
    """One ``{name: [pings, sums]}`` set from a list of them (the values themselves are left as they are)."""
    totals = dict(values[0])
    for histograms in values[1:]:
        for name, (pings, array) in histograms.items():
            entry = totals.get(name)
            if entry is None:
                totals[name] = [pings, array]
            else:
                totals[name] = [entry[0] + pings, [a + b for a, b in zip(entry[1], array)]]
    return totals


def combine(key, values, context):
    context.write(key, merged(values))


def reduce(key, values, context):
    channel, version = key
    for name, (pings, sums) in sorted(merged(values).items()):
        context.writeline(orjson.dumps({"channel": channel, "version": version, "histogram": name,
                                        "pings": pings, "values": sums}).decode())
