"""Every tenth ping is 'bad data': map raises ValueError, as json.loads would."""


def map(key, dims, value, context):
    if int(key.replace("-", ""), 16) % 10 == 0:
        raise ValueError("not the ping I wanted")
    context.write("good", 1)


def reduce(key, values, context):
    context.write(key, sum(values))
