"""Pings per (channel, OS): parses every ping, and counts the ones without an OS."""

from mapreduce.telemetry import loads, sum_values


def map(key, dims, value, context):
    os_name = loads(value)["info"].get("OS")
    if os_name is None:
        context.increment("pings without info.OS")
        return
    context.write((dims[2], os_name), 1)


combine = reduce = sum_values
