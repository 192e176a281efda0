"""``berg plugins [--json] [--check]``: installed plugins, their models, load failures, skipped items and duplicate ids.

``--check`` imports every ``"module:attr"`` string (factory, metadata, prepare) of every installed model, without
calling it (no weights are loaded), and prints one line per failure and per plugin that failed to load; exit 1 if any.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from berg_core.commands import print_json

if TYPE_CHECKING:
    from berg_core.registry import Registry


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plugins", help="show installed plugins, load failures and duplicate model ids",
                       description="Show the installed plugins, their models, load failures, skipped items and duplicate "
                                   "ids. --check also imports every model's factory, metadata and prepare code (no weights "
                                   "are loaded) and exits 1 if anything fails.")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--check", action="store_true",
                   help="import every model's module:attr strings (no weights loaded); one line per failure, exit 1 if any")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from berg_core.registry import get_registry

    registry = get_registry()
    if args.check:
        return check(registry, as_json=args.json)
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


def check(registry: Registry, as_json: bool = False) -> int:
    """``berg plugins --check``: plugins that failed to load, then every failing import; 1 if anything failed."""
    from berg_core.registry import check_imports

    failed = [p for p in registry.plugins if p.error]
    imports = check_imports(registry)
    n_models = len(registry.specs)
    if as_json:
        print_json({"ok": not (failed or imports), "models": n_models,
                    "failed_plugins": [p.to_dict() for p in failed], "import_failures": [f.to_dict() for f in imports]})
        return 1 if failed or imports else 0
    for p in failed:
        print(f"FAILED plugin {p.name} ({p.distribution} {p.version}, {p.module}): {' '.join(str(p.error).split())}")
    for failure in imports:
        print(f"FAILED {failure.line()}")
    problems = len(failed) + len(imports)
    summary = f"{problems} failure(s)" if problems else "every factory, metadata and prepare imports"
    print(f"checked {n_models} model(s) of {len(registry.plugins)} plugin(s): {summary}")
    return 1 if problems else 0
