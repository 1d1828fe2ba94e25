"""map (or reduce) raises SystemExit or KeyboardInterrupt, as MR_TEST_RAISE says: "map:SystemExit", ..."""

import os
import sys

WHERE, KIND = os.environ["MR_TEST_RAISE"].split(":")


def _raise():
    if KIND == "SystemExit":
        sys.exit("job gave up")
    raise KeyboardInterrupt("job pressed its own Ctrl-C")


def map(key, dims, value, context):
    if WHERE == "map":
        _raise()
    context.write(dims[2], 1)


def reduce(key, values, context):
    if WHERE == "reduce":
        _raise()
    context.write(key, sum(values))
