def map(key, dims, value, context):
    context.write(dims[2], 1)


def reduce(key, values, context):
    if key == "beta":
        raise RuntimeError("cannot reduce beta")
    context.write(key, sum(values))
