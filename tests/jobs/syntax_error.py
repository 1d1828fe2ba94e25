def map(key, dims, value, context)
    pass
