"""Only a reduce: sums values that arrive as text from an external mapper."""


def reduce(key, values, context):
    context.write(key, sum(int(v) for v in values))
