from helper_module import PREFIX


def map(key, dims, value, context):
    context.write(PREFIX + dims[2], 1)


def reduce(key, values, context):
    context.write(key, sum(values))
