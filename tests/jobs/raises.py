def lookup(ping):
    return ping["no such field"]


def map(key, dims, value, context):
    if int(key.replace("-", ""), 16) % 7 == 0:
        lookup({})
    context.write("ok", 1)


def reduce(key, values, context):
    context.write(key, sum(values))
