"""``berg list [PATTERN] [--json] [--aliases]``: the installed models, one table row each (id, family, subjects,
stimulus; ``--aliases`` adds their older ids). A pattern also matches aliases; each model is listed once, by its id.

On a terminal each row is cut to the terminal's width (ending in ``…``); piped output and ``--json``
are never cut.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from collections.abc import Sequence

from berg_core.cli.common import print_json
from berg_core.spec import EncoderSpec

COLUMNS = ("id", "family", "subjects", "stimulus")
_NUMBERED = re.compile(r"(.*?)(\d+)")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("list", help="list installed models (a table: id, family, subjects, stimulus)",
                       description="List the installed models. On a terminal, rows are cut to its width (ending in …); "
                                   "piped output is never cut, and --json gives every field.")
    p.add_argument("pattern", nargs="?", help="substring or glob of model ids (case-insensitive), or a family name")
    p.add_argument("--json", action="store_true", help="print JSON (every field of every model)")
    p.add_argument("--aliases", action="store_true", help="add a column with each model's older ids (accepted with a notice)")
    p.set_defaults(func=run)


def symbols() -> dict[str, str]:
    """The dash, range dash and ellipsis, or ASCII stand-ins when stdout cannot encode them."""
    fancy = {"none": "—", "range": "–", "cut": "…"}
    try:
        "".join(fancy.values()).encode(getattr(sys.stdout, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        return {"none": "-", "range": "-", "cut": "..."}
    return fancy


def compact_subjects(subjects: Sequence[str] | None, sym: dict[str, str] | None = None) -> str:
    """``("UTS01", ..., "UTS08")`` -> ``"UTS01–UTS08 (8)"``; a non-consecutive set lists its ends.

    Consecutive means: the same prefix, the same number of digits and numbers rising by one. No subjects
    (``None`` or empty) gives ``"—"``; one to three non-consecutive ids are listed in full.
    """
    sym = sym or symbols()
    if not subjects:
        return sym["none"]
    n = len(subjects)
    if n == 1:
        return f"{subjects[0]} (1)"
    parts = [_NUMBERED.fullmatch(s) for s in subjects]
    if all(parts):
        prefixes = {m.group(1) for m in parts if m}
        widths = {len(m.group(2)) for m in parts if m}
        numbers = [int(m.group(2)) for m in parts if m]
        if len(prefixes) == 1 and len(widths) == 1 and numbers == list(range(numbers[0], numbers[0] + n)):
            return f"{subjects[0]}{sym['range']}{subjects[-1]} ({n})"
    if n <= 3:
        return f"{', '.join(subjects)} ({n})"
    return f"{subjects[0]}, {subjects[1]}, {sym['cut']}, {subjects[-1]} ({n})"


def table_rows(specs: Sequence[EncoderSpec], sym: dict[str, str] | None = None, *,
               aliases: dict[str, list[str]] | None = None) -> list[tuple[str, ...]]:
    """The header and one row per model: id, family, subjects, stimulus (plus ``[status]`` when not usable);
    with ``aliases`` ({model id: its accepted older ids}) a last column of them."""
    sym = sym or symbols()
    rows: list[tuple[str, ...]] = [COLUMNS + (("aliases",) if aliases is not None else ())]
    for s in specs:
        status = s.info.get("status")
        stimulus = f"{s.stimulus} [{status}]" if status and status != "usable" else s.stimulus
        row: tuple[str, ...] = (s.model_id, s.family, compact_subjects(s.subjects, sym), stimulus)
        if aliases is not None:
            row += (", ".join(aliases.get(s.model_id, ())) or sym["none"],)
        rows.append(row)
    return rows


def format_table(rows: Sequence[Sequence[str]], width: int | None = None, cut: str = "…") -> list[str]:
    """Left-aligned columns two spaces apart; lines longer than ``width`` characters end in ``cut``."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        line = "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
        if width is not None and len(line) > width:
            line = line[: max(width - len(cut), 0)] + cut
        lines.append(line)
    return lines


def terminal_width() -> int | None:
    """The terminal's width in characters when stdout is a terminal, else ``None`` (no cutting)."""
    isatty = getattr(sys.stdout, "isatty", None)
    if not (isatty and isatty()):
        return None
    return shutil.get_terminal_size().columns


def run(args: argparse.Namespace) -> int:
    from berg_core.registry import get_registry

    registry = get_registry()
    specs = registry.find(args.pattern)
    if args.json:
        print_json([s.to_dict() for s in specs])
        return 0
    if not specs:
        print("no models match" if args.pattern else "no models installed: pip install a berg family (berg-tuckute, berg-lebel, ...)")
    else:
        sym = symbols()
        accepted: dict[str, list[str]] | None = None
        if getattr(args, "aliases", False):
            accepted = {}
            for alias, model_id in sorted(registry.aliases.items()):
                accepted.setdefault(model_id, []).append(alias)
        print("\n".join(format_table(table_rows(specs, sym, aliases=accepted), terminal_width(), sym["cut"])))
    broken = [p for p in registry.plugins if p.error]
    skipped = sum(len(p.problems) for p in registry.plugins)
    if broken or registry.duplicates or skipped:
        counts = [f"{len(broken)} plugin(s) failed to load", f"{len(registry.duplicates)} duplicate id(s)"]
        if skipped:
            counts.append(f"{skipped} item(s) skipped")
        print(f"({', '.join(counts)}: see `berg plugins`)")
    return 0
