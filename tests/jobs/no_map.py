def reduce(key, values, context):
    pass
