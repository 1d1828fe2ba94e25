"""The MapReduce engine and the ``mr`` command line."""

__version__ = "0.1.0"
