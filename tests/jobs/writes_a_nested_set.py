def map(key, dims, value, context):
    context.write("channels", (dims[2], {dims[2]}))
