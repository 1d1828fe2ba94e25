"""Pings per operating system, in the original telemetry-server style (runs unchanged)."""

import json


def map(k, d, v, cx):
    cx.write(json.loads(v)["info"]["OS"], 1)


def reduce(k, v, cx):
    cx.write(k, sum(v))
