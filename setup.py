from setuptools import Extension, find_packages, setup

setup(
    name="telemetry-mr",
    version="0.1.0",
    description="Store, convert and MapReduce browser telemetry pings on one machine or a few",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MPL-2.0",
    python_requires=">=3.11",
    packages=find_packages(include=["storage", "storage.*", "converter", "converter.*", "mapreduce", "mapreduce.*"]),
    package_data={"storage": ["telemetry_schema.json"], "converter": ["data/Histograms.json"]},
    install_requires=[
        "lz4>=4.0",
        "orjson>=3.8",
        "simplejson>=3.19",
        "boto3>=1.28",
        "multiprocessing-logging>=0.3.4",
        # Spill runs and partial results: a format that cannot run code when read (pickle can).
        "msgpack>=1.0",
    ],
    # moto in server mode is the S3-compatible server the tests start on 127.0.0.1.
    # Hypothesis compares the C histogram helpers with their Python twins on random and damaged input.
    extras_require={"test": ["pytest>=8", "moto[server]>=5", "hypothesis>=6"]},
    entry_points={"console_scripts": ["mr = mapreduce.cli:main"]},
    # The histogram aggregation's element-wise sums in C (4x the pure-Python speed). Optional: without a
    # compiler the install still succeeds and mapreduce.telemetry uses its Python twin, which gives the
    # same results.
    ext_modules=[Extension("mapreduce._histsum", ["mapreduce/_histsum.c"], optional=True)],
)
