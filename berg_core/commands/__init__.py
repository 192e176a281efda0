"""One module per ``berg`` subcommand; each defines ``add_parser(subparsers)``."""

from __future__ import annotations

import json
import sys
from typing import Any

from berg_core.errors import InvalidParameterError


def print_json(obj: Any) -> None:
    """Write ``obj`` as indented JSON to stdout."""
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def parse_options(items: list[str]) -> dict[str, Any]:
    """``["layer=22", "backbone=gpt2-xl"]`` -> ``{"layer": 22, "backbone": "gpt2-xl"}`` (JSON values, else str)."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidParameterError(f"--option needs KEY=VALUE, got {item!r}")
        try:
            options[key.strip()] = json.loads(value)
        except ValueError:
            options[key.strip()] = value
    return options
