"""setup_map/finish_map keep per-worker state; counters are summed over workers."""

state = {}


def setup_map(context):
    state["pings"] = 0


def map(key, dims, value, context):
    state["pings"] += 1
    context.increment("pings seen")


def finish_map(context):
    context.write("pings", state["pings"])


def reduce(key, values, context):
    context.write(key, sum(values))
