"""Slow, and says when mapping has begun: a marker file (MR_TEST_MARKER) appears at the first ping."""

import os
import time

MARKER = os.environ["MR_TEST_MARKER"]


def map(key, dims, value, context):
    if not os.path.exists(MARKER):
        open(MARKER, "a").close()
    time.sleep(0.05)
    context.write("x", 1)
