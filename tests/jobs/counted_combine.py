"""Counts by channel; increments a counter every time combine runs."""


def map(key, dims, value, context):
    context.write(dims[2], 1)


def combine(key, values, context):
    context.increment("combine calls")
    context.write(key, sum(values))


def reduce(key, values, context):
    context.write(key, sum(values))
