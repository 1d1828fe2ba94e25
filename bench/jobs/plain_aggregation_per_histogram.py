"""bench/jobs/plain_aggregation.py with one write per histogram instead of one per ping.

Each histogram is written under (channel, major version, histogram name) as
``[1, array]``, about 300 writes per ping, so the engine's cost per
``context.write`` and per buffered value shows. Same output.
"""

import orjson


def map(key, dims, value, context):
    channel, version = dims[2], dims[3].split(".", 1)[0]
    for name, array in orjson.loads(value)["histograms"].items():
        context.write((channel, version, name), [1, array])


def merged(values):
    """``[pings, sums]`` of a list of ``[pings, array]`` values."""
    pings, sums = values[0]
    for count, array in values[1:]:
        pings += count
        sums = [a + b for a, b in zip(sums, array)]
    return [pings, sums]


def combine(key, values, context):
    context.write(key, merged(values))


def reduce(key, values, context):
    channel, version, name = key
    pings, sums = merged(values)
    context.writeline(orjson.dumps({"channel": channel, "version": version, "histogram": name,
                                    "pings": pings, "values": sums}).decode())
