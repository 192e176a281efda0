"""The ``berg`` command line: ``berg list | info | plugins | fetch | encode | ...``.

Each subcommand lives in ``berg_core/commands/<name>.py`` with ``add_parser(subparsers)`` (which sets
``func``). Importing this module loads no plugin: ``--help`` works even with a broken plugin installed.
Every ``BergError`` is printed as one line (``berg: error: ...``) and exits with status 1.

Global options (``--berg-dir``) are accepted before or after the subcommand: the top-level parser
holds their defaults and each subparser repeats them with ``default=argparse.SUPPRESS``, so a
subparser sets them only when they are given after the subcommand and never overwrites a value
given before it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from berg_core.console import notices_off, show_bars
from berg_core.errors import BergError

#: subcommand modules under berg_core.cli.common, in --help order
COMMANDS: tuple[str, ...] = ("list", "info", "plugins", "fetch", "encode", "search", "train", "plot", "report", "new-plugin")


def add_global_options(parser: argparse.ArgumentParser, *, in_subcommand: bool = False) -> None:
    """The options every command accepts; in a subcommand they default to ``SUPPRESS`` (see module doc)."""
    default = argparse.SUPPRESS if in_subcommand else None
    parser.add_argument("--berg-dir", default=default, metavar="DIR",
                        help="folder holding BERG's files (default $BERG_DIR or the user data dir)")


def build_parser() -> argparse.ArgumentParser:
    from berg_core import __version__

    parser = argparse.ArgumentParser(prog="berg", description="In-silico fMRI responses to language (BERG-compatible).")
    parser.add_argument("--version", action="version", version=f"berg {__version__}")
    add_global_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"berg_core.cli.{name.replace('-', '_')}").add_parser(sub)
    for subparser in sub.choices.values():
        add_global_options(subparser, in_subcommand=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    quiet = bool(getattr(args, "quiet", False))
    if "progress" in vars(args):  # a command with berg_core.cli.common.add_progress_options
        args.progress = show_bars(args.progress, quiet)
    try:
        with notices_off(quiet):
            return int(args.func(args) or 0)
    except BergError as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"berg: error: {message}", file=sys.stderr)
        if os.environ.get("BERG_DEBUG"):
            raise
        return 1
    except KeyboardInterrupt:
        print("berg: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `berg list | head`: the reader left; not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
