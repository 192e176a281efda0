"""Training grids: ``berg train --grid grid.toml`` runs one ``berg train`` per cell of a grid, as tasks of an executor.

The grid file (TOML, or JSON with the same two tables)::

    [train]                 # berg train's flags, without the leading --; "{name}" takes the cell's value of name
    features = "feats/{subject}_gpt2_l{layer}.npy"
    responses = "bold/{subject}.npy"
    test = "800:1000"
    permutations = 0
    out = "runs/{subject}-l{layer}"

    [grid]                  # every combination is one cell
    subject = ["UTS01", "UTS02", "UTS03"]
    layer = [9, 12, 20]

A value is a string or number (one argument), a list (several, e.g. ``features``), ``true`` (a bare flag) or
``false`` (left out). Each cell writes its own encoder folder (``out`` must name every grid key with more than one
value, so no two cells share a folder); a cell whose folder already holds ``summary.json`` is finished and skipped.
Each task runs ``berg train`` in a fresh process (the training entry point, unchanged). Afterwards
``GRID-summary.csv`` (beside the grid file) has one row per cell: its values, its folder, model id, voxels, scores.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import itertools
import json
import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from berg_core.console import notice
from berg_core.errors import BergError, InvalidParameterError
from berg_core.scale.executor import add_executor_options, executor_config, run_tasks

#: ``berg train`` flags a grid file gives itself (argparse must not ask for them on the command line)
_IN_GRID = ("features", "responses", "out")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _GridParser(argparse.ArgumentParser):
    """With ``--grid``, the flags the grid file gives (``--features``, ``--responses``, ``--out``) are not required."""

    def parse_known_args(self, args: Iterable[str] | None = None, namespace: Any = None) -> tuple[Any, list[str]]:
        argv = list(sys.argv[1:] if args is None else args)
        grid = any(a == "--grid" or a.startswith("--grid=") for a in argv)
        for action in self._actions:
            if action.dest in _IN_GRID:
                action.required = not grid
        return super().parse_known_args(argv, namespace)


def add_grid_options(p: argparse.ArgumentParser) -> None:
    """``--grid FILE`` and the executor flags on ``berg train``'s parser."""
    p.__class__ = _GridParser  # argparse builds subparsers from the parent's class
    p.add_argument("--grid", default=None, metavar="FILE",
                   help="a TOML/JSON grid (subjects x feature files/layers x options): one berg train per cell, "
                        "finished cells skipped, GRID-summary.csv at the end (README: scale-out)")
    add_executor_options(p)
    p.set_defaults(grid_parser=p)


@dataclass(frozen=True)
class Cell:
    """One grid cell: its values, its ``berg train`` arguments and its output folder."""

    values: dict[str, Any]
    argv: list[str]
    out: str

    @property
    def label(self) -> str:
        return "cell " + ", ".join(f"{k}={v}" for k, v in self.values.items())


def read_grid(path: str | Path) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """The ``[train]`` and ``[grid]`` tables of a TOML or JSON grid file (one-line errors)."""
    import tomllib

    path = Path(path)
    if not path.is_file():
        raise InvalidParameterError(f"grid file {str(path)!r} not found")
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise InvalidParameterError(f"grid file {str(path)!r} is not valid {'JSON' if path.suffix.lower() == '.json' else 'TOML'}: "
                                    f"{str(exc).splitlines()[0]}") from exc
    except OSError as exc:  # permission denied, a folder, an I/O error
        raise InvalidParameterError(f"grid file {str(path)!r} cannot be read ({exc.strerror or type(exc).__name__}); "
                                    "give a readable TOML or JSON file") from exc
    if not isinstance(data, dict) or not isinstance(data.get("train"), dict) or not isinstance(data.get("grid"), dict):
        raise InvalidParameterError(f"grid file {str(path)!r} needs a [train] table (berg train's flags) and a [grid] table "
                                    "(name = [values]); see `berg train --help`")
    extra = sorted(set(data) - {"train", "grid"})
    if extra:
        raise InvalidParameterError(f"grid file {str(path)!r}: unknown table {extra[0]!r}; use [train] and [grid]")
    grid = data["grid"]
    for name, values in grid.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise InvalidParameterError(f"grid file: grid key {name!r} is not a name (letters, digits, _)")
        if not isinstance(values, list) or not values or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in values):
            raise InvalidParameterError(f"grid file: [grid] {name} must be a non-empty list of strings or numbers")
    if not grid:
        raise InvalidParameterError("grid file: [grid] is empty; give at least one name = [values]")
    if "out" not in data["train"]:
        raise InvalidParameterError("grid file: [train] needs out = \"runs/{name}...\" (one folder per cell)")
    return data["train"], grid


def _fill(value: Any, cell: dict[str, Any], key: str) -> str:
    text = str(value)
    for name in _PLACEHOLDER.findall(text):
        if name not in cell:
            raise InvalidParameterError(f"grid file: [train] {key} uses {{{name}}}, which is not a [grid] key ({', '.join(cell)})")
    return _PLACEHOLDER.sub(lambda m: str(cell[m.group(1)]), text)


def cells(train: dict[str, Any], grid: dict[str, list[Any]]) -> list[Cell]:
    """Every combination of the grid values, with ``berg train``'s arguments filled in."""
    out: list[Cell] = []
    names = list(grid)
    for combo in itertools.product(*(grid[n] for n in names)):
        values = dict(zip(names, combo))
        argv: list[str] = []
        for key, value in train.items():
            flag = "--" + key.replace("_", "-")
            if value is True:
                argv.append(flag)
            elif value is False or value is None:
                continue
            elif isinstance(value, list):
                argv += [flag, *(_fill(v, values, key) for v in value)]
            elif isinstance(value, (str, int, float)):
                argv += [flag, _fill(value, values, key)]
            else:
                raise InvalidParameterError(f"grid file: [train] {key} must be a string, number, list or true/false")
        out.append(Cell(values, argv, _fill(train["out"], values, "out")))
    if len({c.out for c in out}) < len(out):
        raise InvalidParameterError("grid file: two cells write the same folder; put every [grid] key with several values in "
                                    "[train] out, e.g. out = \"runs/{subject}-l{layer}\"")
    return out


def run_cell(cell: Cell) -> dict[str, Any]:
    """One task: ``berg train`` with the cell's arguments in a fresh process; its ``summary.json``."""
    proc = subprocess.run([sys.executable, "-m", "berg_core.cli", "train", *cell.argv, "--quiet"], capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        message = next((ln.split("error: ", 1)[1] for ln in reversed(lines) if "error: " in ln), lines[-1] if lines else "")
        if proc.stderr:
            sys.stderr.write(proc.stderr)  # into the task's log
        raise BergError(f"berg train failed: {message or f'exit status {proc.returncode}'}")
    summary = json.loads((Path(cell.out) / "summary.json").read_text(encoding="utf-8"))
    if not isinstance(summary, dict):
        raise BergError(f"berg train wrote no summary object to {Path(cell.out) / 'summary.json'}")
    return summary


def run_grid(args: argparse.Namespace) -> int:
    """``berg train --grid FILE``: check every cell's flags, run the unfinished cells, write the summary table."""
    if not args.grid:
        raise InvalidParameterError(f"--executor {args.executor} trains a grid: add --grid FILE (one berg train per cell)")
    executor_config(args, None, "berg-train")  # the executor flags, before anything runs
    train, grid = read_grid(args.grid)
    all_cells = cells(train, grid)
    parser: argparse.ArgumentParser = args.grid_parser
    for cell in all_cells:  # berg train's own parser, before anything runs: a bad flag is one line
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                parser.parse_args(cell.argv)
        except SystemExit as exc:
            message = err.getvalue().strip().splitlines()[-1:] or [""]
            raise InvalidParameterError(f"grid file, {cell.label}: {message[0].split('error: ', 1)[-1]}") from exc
    overwrite = bool(train.get("overwrite") or train.get("force"))
    todo = [c for c in all_cells if overwrite or not (Path(c.out) / "summary.json").is_file()]
    if len(todo) < len(all_cells):
        notice(f"{len(all_cells) - len(todo)} of {len(all_cells)} cells already trained (their folder has summary.json): skipped")
    grid_path = Path(args.grid)
    work = grid_path.with_name(grid_path.stem + ".runs")
    config = executor_config(args, work, "berg-train")
    error = None
    try:
        if todo:
            run_tasks(run_cell, todo, [c.label for c in todo], config)
    except BergError as exc:  # the table still collects the finished cells
        error = exc
    table = grid_path.with_name(grid_path.stem + "-summary.csv")
    n = write_summary(table, all_cells)
    notice(f"{n} of {len(all_cells)} cells trained; summary table in {table}")
    if error is not None:
        raise error
    return 0


def write_summary(path: Path, all_cells: list[Cell]) -> int:
    """One row per finished cell: grid values, folder, model id, voxels and the scalar scores; the number of rows."""
    rows = []
    for cell in all_cells:
        try:
            summary = json.loads((Path(cell.out) / "summary.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        scores = {k: v for k, v in (summary.get("scores") or {}).items() if isinstance(v, (int, float, str))}
        rows.append({**cell.values, "out": cell.out, "model_id": summary.get("model_id"), "n_voxels": summary.get("n_voxels"), **scores})
    header: list[str] = []
    for row in rows:
        header += [k for k in row if k not in header]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=header or ["out"])
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


__all__ = ["Cell", "add_grid_options", "cells", "read_grid", "run_cell", "run_grid", "write_summary"]
