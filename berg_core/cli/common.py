"""One module per ``berg`` subcommand; each defines ``add_parser(subparsers)``.

Shared option vocabularies live here so every command spells them the same way:
``add_progress_options`` for commands that show progress (encode, search, fetch, train). The global
options (``--berg-dir``) are added to every subcommand by ``berg_core.cli``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from berg_core.errors import InvalidParameterError
from berg_core.options import CliText
from berg_core.spec import EncoderSpec


def add_progress_options(p: argparse.ArgumentParser) -> None:
    """``--progress/--no-progress`` and ``--quiet/-q``, the same for every command that shows progress.

    After parsing, ``berg_core.cli.main`` turns ``args.progress`` into a plain bool (``--progress`` /
    ``--no-progress`` when given, else bars when stderr is a terminal and not ``--quiet``; see
    ``berg_core.console.show_bars``) and runs the command with ``berg_core.console.notice`` silenced
    under ``--quiet``. Commands read ``args.progress`` and print their notices with ``notice``.
    """
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars on stderr (default: when stderr is a terminal, unless --quiet)")
    p.add_argument("--quiet", "-q", action="store_true", help="no notices on stderr (and no bars unless --progress); errors still print")


def print_json(obj: Any) -> None:
    """Write ``obj`` as indented JSON to stdout."""
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def parse_options(items: list[str], spec: EncoderSpec | None = None) -> dict[str, Any]:
    """``-O`` values: ``["layer=22", "backbone=gpt2-xl"]`` -> ``{"layer": 22, "backbone": "gpt2-xl"}`` with ``spec``.

    Each value is parsed by the model's declared ``Option`` type (``int`` "22" -> 22, ``bool``
    true/false/1/0/yes/no; undeclared types: JSON, else the text); a bad one is a one-line
    ``InvalidParameterError``. Without ``spec`` the values stay ``CliText`` and are parsed the same way
    when the model's options are checked (``BERG.get_encoding_model``/``fetch``).
    """
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidParameterError(f"--option needs KEY=VALUE, got {item!r}")
        options[key.strip()] = CliText(value)
    if spec is not None:
        checked = spec.options.check(options, spec.model_id)
        options = {key: checked[key] for key in options}
    return options
