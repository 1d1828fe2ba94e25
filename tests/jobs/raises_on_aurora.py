def map(key, dims, value, context):
    if dims[2] == "aurora":
        raise RuntimeError("aurora pings are not welcome here")
    context.write(dims[2], 1)


def reduce(key, values, context):
    context.write(key, sum(values))
