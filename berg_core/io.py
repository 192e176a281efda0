"""Reading stimulus files and writing responses (atomically) by extension.

Inputs: ``.txt`` (one sentence a line), ``.json`` (``{"words": [...], "word_onsets": [...]}`` or a list
of sentences), ``.csv``/``.tsv`` (columns ``word`` and ``onset``, or ``words``/``word_onsets``).
Outputs: ``.npy``, ``.csv`` (header row of column names), ``.h5`` (dataset ``responses`` + ``columns``).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from berg_core.cache import atomic_path
from berg_core.errors import InvalidParameterError, ResourceError, StimulusError

WORD_COLUMNS = ("word", "words", "text", "token")
ONSET_COLUMNS = ("onset", "onsets", "word_onset", "word_onsets", "start", "time")


def read_sentences(path: Path) -> list[str]:
    """Non-blank lines of a text file (utf-8), line endings stripped."""
    return [line.rstrip("\r\n") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_stimulus(path: str | Path) -> Any:
    """Load a stimulus file: sentences (list of str) or timed words (dict), by extension."""
    path = Path(path)
    if not path.is_file():
        raise ResourceError(f"input file {str(path)!r} not found")
    ext = path.suffix.lower()
    if ext == ".txt":
        return read_sentences(path)
    if ext == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise StimulusError(f"{path}: not valid JSON ({exc})") from exc
        return data
    if ext in {".csv", ".tsv"}:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t" if ext == ".tsv" else ","))
        if not rows:
            raise StimulusError(f"{path}: no rows")
        cols = {c.strip().lower(): c for c in rows[0]}
        word_col = next((cols[c] for c in WORD_COLUMNS if c in cols), None)
        onset_col = next((cols[c] for c in ONSET_COLUMNS if c in cols), None)
        if word_col is None or onset_col is None:
            raise StimulusError(f"{path}: needs a 'word' and an 'onset' column (seconds); found {', '.join(rows[0])}")
        try:
            onsets = [float(r[onset_col]) for r in rows]
        except ValueError as exc:
            raise StimulusError(f"{path}: onset column has a non-number: {exc}") from exc
        return {"words": [r[word_col] for r in rows], "word_onsets": onsets}
    raise InvalidParameterError(f"unknown input type {ext!r}; use .txt (sentences), .json, .csv or .tsv (words + onsets)")


def read_voxel_index(path: str | Path) -> np.ndarray:
    """A 0/1 voxel mask from ``.npy`` or text (one value a line, or comma/space separated)."""
    path = Path(path)
    if not path.is_file():
        raise ResourceError(f"voxel file {str(path)!r} not found")
    if path.suffix.lower() == ".npy":
        return np.load(path, allow_pickle=False)
    return np.array(path.read_text().replace(",", " ").split(), dtype=float)


def write_responses(path: str | Path, responses: np.ndarray, columns: list[str], *, attrs: dict[str, Any] | None = None) -> Path:
    """Write (n_rows, n_columns) responses by extension (.npy, .csv, .h5/.hdf5), atomically."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in {".npy", ".csv", ".h5", ".hdf5"}:
        raise InvalidParameterError(f"unknown output type {ext!r}; use .npy, .csv or .h5")
    with atomic_path(path) as tmp:
        if ext == ".npy":
            with tmp.open("wb") as fh:
                np.save(fh, responses)
        elif ext == ".csv":
            with tmp.open("w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(columns)
                for row in responses:
                    writer.writerow([repr(float(v)) for v in row])
        else:
            import h5py

            with h5py.File(tmp, "w") as f:
                f.create_dataset("responses", data=responses)
                f.create_dataset("columns", data=np.array(columns, dtype=object), dtype=h5py.string_dtype())
                for key, value in (attrs or {}).items():
                    f.attrs[key] = value
    return path
