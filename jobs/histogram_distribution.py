"""Distribution of a few boolean and enumerated histograms per channel, as CSV:
histogram,channel,bucket,count (bucket = the bucket's index, 0 for false / the first value).
"""

from mapreduce.telemetry import loads, sum_values

HISTOGRAMS = ("A11Y_INSTANTIATED_FLAG", "A11Y_CONSUMERS", "CANVAS_WEBGL_USED", "CYCLE_COLLECTOR_NEED_GC",
              "DNS_LOOKUP_METHOD2", "HTTP_PAGE_COMPLETE_LOAD", "SHUTDOWN_OK", "TELEMETRY_SUCCESS")


def map(key, dims, value, context):
    histograms = loads(value)["histograms"]
    for name in HISTOGRAMS:
        array = histograms.get(name)
        if array is None:
            continue
        for bucket, count in enumerate(array[:-5]):
            if count:
                context.write((name, dims[2], bucket), count)


combine = sum_values


def setup_reduce(context):
    context.field_separator = ","
    context.writecsv(["histogram", "channel", "bucket", "count"])


def reduce(key, values, context):
    name, channel, bucket = key
    context.writecsv([name, channel, bucket, sum(values)])
