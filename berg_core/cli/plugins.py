"""``berg plugins [--json] [--check]``: installed plugins, their models, load failures, skipped items and duplicate ids.

``--check`` imports every ``"module:attr"`` string (factory, metadata, prepare) of every installed model, without
calling it (no weights are loaded), and prints one line per failure and per plugin that failed to load; exit 1 if any.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from berg_core.cli.common import print_json
from berg_core.errors import BergError
from berg_core.registry import Registry
from berg_core.spec import import_object


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


#: the ``EncoderSpec`` fields that hold ``"module:attr"`` strings of plugin code
IMPORT_FIELDS: tuple[str, ...] = ("factory", "metadata", "prepare")


@dataclass(frozen=True)
class ImportFailure:
    """One ``"module:attr"`` string that does not import to a callable (``berg plugins --check``)."""

    plugin: str
    field: str
    target: str
    models: tuple[str, ...]
    error: str

    def line(self) -> str:
        """One line: the plugin, the field and target, the models using it (first three) and the error."""
        shown = ", ".join(self.models[:3]) + (f" and {len(self.models) - 3} more" if len(self.models) > 3 else "")
        return f"{self.plugin or 'unknown plugin'}: {self.field} {self.target!r} (of {shown}): {self.error}"

    def to_dict(self) -> dict[str, Any]:
        return {"plugin": self.plugin, "field": self.field, "target": self.target, "models": list(self.models),
                "error": self.error}


def _import_error(target: str) -> str | None:
    """Why ``target`` does not import to a callable (one line), or ``None`` when it does. Loads no weights."""
    try:
        obj = import_object(target)
    except BergError as exc:
        return str(exc)
    except (Exception, SystemExit) as exc:  # a module that raises at import time (a plugin bug)
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        return f"importing it raised {type(exc).__name__}" + (f": {first}" if first else "")
    return None if callable(obj) else f"it is a {type(obj).__name__}, not a callable"


def check_imports(registry: Registry) -> list[ImportFailure]:
    """Import every ``"module:attr"`` string (``IMPORT_FIELDS``) of every model in ``registry``, each once.

    Returns one ``ImportFailure`` per failing (plugin, field, target), naming the models that use it.
    """
    users: dict[tuple[str, str, str], list[str]] = {}
    for spec in registry.find():
        for name in IMPORT_FIELDS:
            target = getattr(spec, name)
            if target:
                users.setdefault((spec.plugin, name, target), []).append(spec.model_id)
    errors: dict[str, str | None] = {}
    failures = []
    for (plugin, name, target), models in users.items():
        if target not in errors:
            errors[target] = _import_error(target)
        if errors[target] is not None:
            failures.append(ImportFailure(plugin, name, target, tuple(models), " ".join(str(errors[target]).split())))
    return failures
