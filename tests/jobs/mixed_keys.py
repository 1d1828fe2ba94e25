"""Keys of every plain type, unhashable ones included."""


def map(key, dims, value, context):
    n = int(key[:2], 16)
    for k in (n % 5 + 2, str(n % 3), (dims[2], n % 2), None, True, [dims[2]], {"c": dims[2]}, n % 4 / 2 + 0.25):
        context.write(k, 1)


def reduce(key, values, context):
    context.write(key, sum(values))
