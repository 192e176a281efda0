"""The ``berg`` command line: ``berg list | info | plugins | fetch | encode | ...``.

Each subcommand lives in ``berg_core/commands/<name>.py`` with ``add_parser(subparsers)`` (which sets
``func``). Importing this module loads no plugin: ``--help`` works even with a broken plugin installed.
Every ``BergError`` is printed as one line (``berg: error: ...``) and exits with status 1.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from berg_core.errors import BergError

#: subcommand modules under berg_core.commands, in --help order
COMMANDS: tuple[str, ...] = ("list", "info", "plugins", "fetch", "encode", "search", "train", "new-plugin")


def build_parser() -> argparse.ArgumentParser:
    from berg_core import __version__

    parser = argparse.ArgumentParser(prog="berg", description="In-silico fMRI responses to language (BERG-compatible).")
    parser.add_argument("--version", action="version", version=f"berg {__version__}")
    parser.add_argument("--berg-dir", default=None, help="folder holding BERG's files (default $BERG_DIR or the user data dir)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"berg_core.commands.{name.replace('-', '_')}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
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


if __name__ == "__main__":
    sys.exit(main())
