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
from .errors import JobError, OutputError
from .lifecycle import Interrupted, stop_on_signals

log = logging.getLogger("mr")

CONFIGURATION_ERRORS = (SchemaError, LayoutError, DefinitionError)


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error in one line that says where the help is (not the whole usage)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
    # -v and -q may come before the command or (for mr run, as the original engine had them) after it
    args.verbose = max(args.verbose, getattr(args, "command_verbose", 0))
    args.quiet = args.quiet or getattr(args, "command_quiet", False)
    set_up_logging(args.verbose, args.quiet)
    keep_freed_memory()
    stop_on_signals()
    try:
        status = args.run(args)
        _flush_stdout()
        return status
    except BrokenPipeError:  # the reader of our output went away (`| head`): stop quietly
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
    except Interrupted as e:
        log.error("interrupted (%s)", e)
        return e.status
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    finally:
        _settle_stdout()


def _flush_stdout() -> None:
    """What is still buffered must reach standard output too, or the command has failed (``> /dev/full``)."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as e:
        raise OutputError(f"writing to standard output failed: {e.strerror or e}") from None


def _settle_stdout() -> None:
    """If standard output cannot take what is buffered (a closed pipe, a full disk), drop it, so the
    interpreter's own flush at exit does not print a second, raw error."""
    try:
        sys.stdout.flush()
    except OSError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
