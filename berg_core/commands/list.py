"""``berg list [PATTERN] [--json]``: the installed models."""

from __future__ import annotations

import argparse

from berg_core.commands import print_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list installed models")
    p.add_argument("pattern", nargs="?", help="substring or glob of model ids (case-insensitive), or a family name")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from berg_core.registry import get_registry

    registry = get_registry()
    specs = registry.find(args.pattern)
    if args.json:
        print_json([s.to_dict() for s in specs])
        return 0
    if not specs:
        print("no models match" if args.pattern else "no models installed: pip install a berg family (berg-tuckute, berg-lebel, ...)")
    width = max((len(s.model_id) for s in specs), default=0)
    for s in specs:
        status = s.info.get("status")
        extra = f"  [{status}]" if status and status != "usable" else ""
        print(f"{s.model_id:<{width}}  {s.family:<10}  {s.description.splitlines()[0] if s.description else ''}{extra}")
    broken = [p for p in registry.plugins if p.error]
    if broken or registry.duplicates:
        print(f"({len(broken)} plugin(s) failed to load, {len(registry.duplicates)} duplicate id(s): see `berg plugins`)")
    return 0
