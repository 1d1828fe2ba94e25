"""``python -m mapreduce``: the same as the ``mr`` command."""

import sys

from .cli import main

sys.exit(main())
