def map(key, dims, value, context):
    context.write(dims[2], key)
