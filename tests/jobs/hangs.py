"""Takes ten minutes over each ping: a run of it ends only by being stopped (or killed)."""

import time


def map(key, dims, value, context):
    time.sleep(600)
