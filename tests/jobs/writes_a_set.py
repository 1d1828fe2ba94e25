"""Writes a set, which is not plain data: refused at the write."""


def map(key, dims, value, context):
    context.write("channels", {dims[2]})
