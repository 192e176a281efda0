"""``berg plugins [--json]``: installed plugins, their models, load failures, skipped items and duplicate ids."""

from __future__ import annotations

import argparse

from berg_core.commands import print_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plugins", help="show installed plugins, load failures and duplicate model ids")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from berg_core.registry import get_registry

    registry = get_registry()
    if args.json:
        print_json({"plugins": [p.to_dict() for p in registry.plugins], "duplicates": registry.duplicates,
                    "shadowed": registry.shadowed})
        return 0
    if not registry.plugins:
        print("no plugins installed")
    for p in registry.plugins:
        state = f"FAILED: {p.error}" if p.error else f"{len(p.models)} model(s)"
        print(f"{p.name:<12} {p.distribution} {p.version}  ({p.module})  {state}")
        for line in p.problems:
            print(f"{'':<12} {line}")
    for model_id, names in registry.duplicates.items():
        print(f"duplicate id {model_id!r} claimed by {' and '.join(names)}: kept out")
    return 0
