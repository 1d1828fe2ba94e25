"""Pings per submission day, from the storage path alone (no JSON parsing)."""

from mapreduce.telemetry import sum_values


def map(key, dims, value, context):
    context.write(dims[-1], 1)


combine = reduce = sum_values
