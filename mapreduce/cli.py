"""The ``mr`` command group: parses arguments, sets up logging, turns expected errors into one line.

Each package registers its own subcommands (``storage.commands`` for cat/ls/compress);
this module only wires them together. Exit status: 0 success, 1 a failure while
working (e.g. damaged data), 2 bad usage or configuration found before any work.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Sequence

from converter import commands as converter_commands
from converter.errors import DefinitionError
from storage import commands as storage_commands
from storage.allocator import keep_freed_memory
from storage.errors import LayoutError, SchemaError, StorageError

from . import __version__
from . import commands as mapreduce_commands
from .errors import JobError
from .lifecycle import stop_on_terminate

log = logging.getLogger("mr")

CONFIGURATION_ERRORS = (SchemaError, LayoutError, DefinitionError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mr", description="Store, convert and analyse browser telemetry pings.",
        epilog="Run 'mr COMMAND --help' for a command's options.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more detail (repeat for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    storage_commands.add_commands(commands)
    converter_commands.add_commands(commands)
    mapreduce_commands.add_commands(commands)
    return parser


def set_up_logging(verbose: int, quiet: bool) -> None:
    level = logging.ERROR if quiet else logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("mr: %(levelname)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    if not quiet:  # progress lines (when stderr is not a terminal) and the hosts' relayed logs show without -v
        logging.getLogger("mapreduce.progress").setLevel(logging.INFO)
        logging.getLogger("mapreduce.cluster").setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    set_up_logging(args.verbose, args.quiet)
    keep_freed_memory()
    stop_on_terminate()
    try:
        return args.run(args)
    except BrokenPipeError:
        # The reader of our output went away (`| head`): stop quietly, and keep
        # the interpreter's final flush from complaining about the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except JobError as e:
        log.error("%s", e)
        return e.status
    except CONFIGURATION_ERRORS as e:
        log.error("%s", e)
        return 2
    except (StorageError, OSError) as e:
        log.error("%s", e)
        return 1
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
