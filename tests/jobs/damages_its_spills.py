"""Counts pings per channel, and at the end of each worker flips a byte in the middle of every run it spilled,
as a failing disk would: the reducers must refuse them. The work dir must be given with -w."""

import glob
import os
import sys


def map(key, dims, value, context):
    context.write(dims[2], 1)


def finish_map(context):
    work_dir = sys.argv[sys.argv.index("-w") + 1]
    runs = glob.glob(os.path.join(work_dir, "**", "*.run"), recursive=True)
    assert runs, "no spilled runs found"
    for run in runs:
        with open(run, "r+b") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(size // 2)
            byte = f.read(1)
            f.seek(size // 2)
            f.write(bytes([byte[0] ^ 0x10]))


def reduce(key, values, context):
    context.write(key, sum(values))
