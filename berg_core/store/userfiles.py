"""Reading stimulus files and writing responses (atomically) by extension.

Inputs: ``.txt`` (one sentence a line; for a ``tr_texts`` model one TR a line, a blank line = a silent TR; ``-``
reads the same from stdin), ``.json`` (``{"words": [...],
"word_onsets": [...]}`` or a list of sentences), ``.csv``/``.tsv`` (columns ``word`` and ``onset``, or
``words``/``word_onsets``). Text is UTF-8; a byte-order mark (Excel's "CSV UTF-8") is dropped.
Outputs: ``.npy`` (the bare array, as BERG returns it), ``.csv``/``.tsv`` (header row; with row labels a leading
``stimulus``/``tr_onset_s``/``word`` column, and a JSON sidecar ``<name>.json`` with the attributes), ``.h5``
(dataset ``responses`` + ``columns``, a row-label dataset named like the CSV's first column, attributes) and
``.nc`` (xarray + h5netcdf, the ``berg-core[nc]`` extra: a labelled ``presentation x neuroid`` array with
Brain-Score-style coordinates). Column groups (``Encoder.column_groups``: which ROI each output column is in) go in
every labelled format: ``.h5`` datasets ``column_groups`` (bool, n_groups x n_columns) + ``column_group_names``, a
``.nc`` ``column_groups`` (bool, ``group x neuroid``, coordinate ``group`` = names), the ``.csv``/``.tsv`` sidecar key
``"column_groups": {name: [column indices]}``.
N-D responses (n_rows, n_1, n_2, ...) with named axes: ``.npy`` and ``.h5`` keep the shape (``.h5`` adds attribute
``dims`` and one label dataset ``axis_<name>`` per axis; ``.nc`` one dimension per axis), ``.csv`` is flattened to
``<label_1>@<label_2>`` columns.

Every problem with a user's file is one ``BergError`` line naming the file (and the line where it
helps); ``check_output_path`` checks where a result will go before any heavy work.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from berg_core.errors import InvalidParameterError, ResourceError, StimulusError
from berg_core.store.cache import atomic_path

WORD_COLUMNS = ("word", "words", "text", "token")
ONSET_COLUMNS = ("onset", "onsets", "word_onset", "word_onsets", "start", "time")
INPUT_TYPES = (".txt", ".json", ".csv", ".tsv")
OUTPUT_TYPES = (".npy", ".csv", ".tsv", ".h5", ".hdf5", ".nc")
#: brain-volume outputs (models whose outputs are voxels of a known subject space; ``berg_core.store.volumes``)
VOLUME_TYPES = (".nii.gz", ".nii")
#: row-label names: one sentence per row, a TR onset time (s) per row, one word per row, a row number
ROW_NAMES = ("stimulus", "tr_onset_s", "word", "row")
STDIN = "-"
#: largest voxel mask accepted (elements): far above any BERG model's voxel count
MAX_VOXELS = 50_000_000


def _name(path: str | Path) -> str:
    return "<stdin>" if str(path) == STDIN else str(path)


def read_input_bytes(path: str | Path, what: str = "input file") -> bytes:
    """The bytes of a user's file (``-`` = stdin); a missing, unreadable or non-file path is one line."""
    if str(path) == STDIN:
        if sys.stdin is None:
            raise ResourceError(f"{what} '-' means stdin, but this process has no stdin; give a file")
        stream = getattr(sys.stdin, "buffer", None)
        return stream.read() if stream is not None else sys.stdin.read().encode("utf-8", "surrogateescape")
    path = check_input_path(path, what)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ResourceError(f"cannot read {what} {str(path)!r}: {exc.strerror or exc}") from exc


def check_input_path(path: str | Path, what: str = "input file") -> Path:
    """``path`` if it is a readable file; missing, a folder, unreadable or not a valid path is one line."""
    path = Path(path)
    with _path_errors(what, path, "read"):
        if not path.exists():
            raise ResourceError(f"{what} {str(path)!r} not found")
        if path.is_dir():
            raise ResourceError(f"{what} {str(path)!r} is a folder; give a file")
        if not os.access(path, os.R_OK):
            raise ResourceError(f"cannot read {what} {str(path)!r}: permission denied")
    return path


@contextmanager
def _path_errors(what: str, path: Path, verb: str) -> Iterator[None]:
    """Checks of a user's path: a NUL byte (``ValueError``) or an ``OSError`` becomes one line (``BergError`` passes)."""
    try:
        yield
    except ValueError as exc:  # a NUL byte in the path
        raise InvalidParameterError(f"{what} path {str(path)!r} is not a valid path ({exc})") from exc
    except OSError as exc:
        if isinstance(exc, ResourceError):
            raise
        raise ResourceError(f"cannot {verb} {what} {str(path)!r}: {exc.strerror or exc}") from exc


def decode_text(data: bytes, name: str) -> str:
    """UTF-8 text (a leading byte-order mark is dropped); a bad byte is one ``StimulusError`` with its line."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise StimulusError(f"{name}: line {line} is not valid UTF-8 ({exc.reason}); save the file as UTF-8 "
                            "(in Excel: 'CSV UTF-8')") from exc


def text_lines(text: str) -> list[str]:
    """Lines split on ``\\n`` only (``\\r\\n`` endings stripped); other Unicode separators stay inside a line."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def parse_sentences(text: str, name: str) -> list[str]:
    """One sentence per line. A blank line is refused (with its number) so row i of the output is line i;
    blank lines at the very end of the file are ignored."""
    lines = text_lines(text)
    while lines and not lines[-1].strip():
        lines.pop()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            raise StimulusError(f"{name}: line {number} is blank; every line is one sentence and row i of the output is "
                                "line i, so remove the blank line (or put text on it)")
    if not lines:
        raise StimulusError(f"{name} has no sentences; give one sentence per line")
    return lines


def parse_tr_texts(text: str, name: str) -> list[str]:
    """One TR a line (a ``tr_texts`` model): line i is TR i, kept as written; an empty line is a silent TR (``""``).

    Newline rule: lines end with ``\n`` (``\r\n`` too), so a file ending in a newline has no extra empty TR after its
    last line; every blank line before that, at the start, in the middle or at the end (``"a\n\n"`` = ``["a", ""]``),
    is one silent TR.
    """
    lines = text_lines(text)
    if not lines:
        raise StimulusError(f"{name} has no TRs; give one line per TR (an empty line for a silent TR)")
    return lines


def read_sentences(path: str | Path) -> list[str]:
    """The sentences of a text file (``-`` = stdin), one a line; see ``parse_sentences``."""
    return parse_sentences(decode_text(read_input_bytes(path), _name(path)), _name(path))


def _parse_json(text: str, name: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise StimulusError(f"{name}: not valid JSON ({exc})") from exc
    except RecursionError as exc:
        raise StimulusError(f"{name}: JSON nested too deeply; give a list of sentences or {{'words': [...], 'word_onsets': [...]}}") from exc


def _parse_table(text: str, name: str, delimiter: str) -> dict[str, list[Any]]:
    """``{"words": [...], "word_onsets": [...]}`` from CSV/TSV text with a header row."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        rows = [row for row in reader if any(cell.strip() for cell in row)]
    except csv.Error as exc:
        raise StimulusError(f"{name}: not a readable {'TSV' if delimiter == chr(9) else 'CSV'} file (line {reader.line_num}: {exc})") from exc
    if len(rows) < 2:
        raise StimulusError(f"{name}: no rows; give a header row with 'word' and 'onset' (seconds), then one row per word")
    header = [c.strip().lower() for c in rows[0]]
    word_col = next((header.index(c) for c in WORD_COLUMNS if c in header), None)
    onset_col = next((header.index(c) for c in ONSET_COLUMNS if c in header), None)
    if word_col is None or onset_col is None:
        found = ", ".join(repr(c) for c in rows[0]) or "nothing"
        raise StimulusError(f"{name}: needs a 'word' and an 'onset' column (seconds); found {found:.200}")
    words: list[str] = []
    onsets: list[float] = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise StimulusError(f"{name}: data row {number} has {len(row)} fields but the header has {len(header)}; "
                                "quote fields holding the delimiter")
        try:
            onsets.append(float(row[onset_col]))
        except ValueError as exc:
            raise StimulusError(f"{name}: data row {number}: onset {row[onset_col]!r:.40} is not a number (seconds)") from exc
        words.append(row[word_col])
    return {"words": words, "word_onsets": onsets}


def read_stimulus(path: str | Path, kind: str = "sentences") -> Any:
    """Load a stimulus file: sentences (list of str) or timed words (dict), by extension (``-``: sentences on stdin).

    ``kind``: the model's stimulus kind (``EncoderSpec.stimulus``); for ``"tr_texts"`` a ``.txt`` (or stdin) is one
    TR a line with blank lines as silent TRs (``parse_tr_texts``), for every other kind one sentence a line with no
    blank line (``parse_sentences``).
    """
    lines = parse_tr_texts if kind == "tr_texts" else parse_sentences
    if str(path) == STDIN:
        return lines(decode_text(read_input_bytes(STDIN), _name(STDIN)), _name(STDIN))
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in INPUT_TYPES:
        raise InvalidParameterError(f"unknown input type {ext or str(path)!r}; use .txt (sentences), .json, .csv or .tsv "
                                    "(words + onsets), or - for sentences on stdin")
    text = decode_text(read_input_bytes(path), str(path))
    if ext == ".txt":
        return lines(text, str(path))
    if ext == ".json":
        return _parse_json(text, str(path))
    return _parse_table(text, str(path), "\t" if ext == ".tsv" else ",")


def _read_npy_vector(path: Path, data: bytes, unit: str = "voxel") -> np.ndarray:
    """A numeric array from ``.npy`` bytes (no pickle; header and size checked before the data is read)."""
    from berg_core.store.safe_pickle import parse_npy_header

    fh = io.BytesIO(data)
    try:
        shape, fortran, dtype = parse_npy_header(fh)
    except Exception as exc:  # numpy raises ValueError, SyntaxError, EOFError, ... for a malformed header
        raise InvalidParameterError(f"{unit} file {str(path)!r} is not a valid .npy file ({type(exc).__name__}); "
                                    "save the mask with numpy.save") from exc
    if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
        raise InvalidParameterError(f"{unit} file {str(path)!r} holds {dtype} values; give a numeric 0/1 mask")
    count = int(np.prod(shape, dtype=object))
    if count > MAX_VOXELS or count * dtype.itemsize > len(data) - fh.tell():
        raise InvalidParameterError(f"{unit} file {str(path)!r} is truncated or declares an implausible shape {shape}; "
                                    "save the mask again with numpy.save")
    flat = np.frombuffer(data, dtype=dtype, count=count, offset=fh.tell())
    return flat.reshape(shape, order="F" if fortran else "C")


def read_voxel_index(path: str | Path, unit: str = "voxel") -> np.ndarray:
    """A 0/1 mask over voxels (or another output axis: ``unit`` = "electrode", "lag", named in messages) (float64,
    1-D) from ``.npy`` or text (one value a line, or comma/space separated)."""
    data = read_input_bytes(path, f"{unit} file")
    path = Path(path)
    if path.suffix.lower() == ".npy":
        mask = _read_npy_vector(path, data, unit)
    else:
        tokens = decode_text(data, str(path)).replace(",", " ").split()
        if len(tokens) > MAX_VOXELS:
            raise InvalidParameterError(f"{unit} file {str(path)!r} has {len(tokens)} values; that is more than any model's {unit}s")
        try:
            mask = np.array([float(t) for t in tokens], dtype=np.float64)
        except ValueError as exc:
            raise InvalidParameterError(f"{unit} file {str(path)!r}: {exc}; give 0s and 1s, one a line or separated by commas/spaces") from exc
    mask = np.asarray(mask, dtype=np.float64)
    if mask.ndim != 1:
        raise InvalidParameterError(f"{unit} file {str(path)!r} holds an array of shape {mask.shape}; give a 1-D 0/1 mask")
    if mask.size == 0:
        raise InvalidParameterError(f"{unit} file {str(path)!r} is empty; give a 0/1 mask with one value per {unit}")
    if not np.isin(mask, (0.0, 1.0)).all():
        raise InvalidParameterError(f"{unit} file {str(path)!r} must contain only 0 and 1 (one value per {unit})")
    return mask


def check_output_path(path: str | Path, types: tuple[str, ...] = OUTPUT_TYPES, what: str = "output") -> Path:
    """Check, before any heavy work, that a result can be written to ``path``.

    Its extension must be one of ``types``; it must not be a folder; the nearest existing parent must be a
    writable folder (missing folders are created when the file is written).
    """
    path = Path(path)
    if "\x00" in str(path):
        raise InvalidParameterError(f"{what} path {str(path)!r} is not a valid path (it contains a NUL character)")
    ext = output_ext(path)
    if ext not in types:
        raise InvalidParameterError(f"unknown {what} type {ext or path.name!r}; use {' or '.join(types)}")
    with _path_errors(what, path, "write"):
        if path.is_dir():
            raise ResourceError(f"{what} {str(path)!r} is a folder; give a file name ending in {ext}")
        parent = path.absolute().parent
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir():
            raise ResourceError(f"cannot write {what} {str(path)!r}: {str(parent)!r} is a file, not a folder")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ResourceError(f"cannot write {what} {str(path)!r}: folder {str(parent)!r} is not writable; choose another place")
    return path


def check_output_extras(path: str | Path) -> None:
    """Before any heavy work: the optional libraries an output type needs are installed (one line naming the extra)."""
    ext = output_ext(path)
    needs = {".nc": (("xarray", "h5netcdf"), "nc"), ".nii.gz": (("nibabel",), "maps"), ".nii": (("nibabel",), "maps")}
    if ext not in needs:
        return
    modules, extra = needs[ext]
    for module in modules:
        try:
            __import__(module)
        except ImportError as exc:
            raise InvalidParameterError(f"writing {ext} needs {' and '.join(modules)}: pip install 'berg-core[{extra}]' "
                                        "(or write .npy/.csv/.h5)") from exc


def output_ext(path: str | Path) -> str:
    """The lower-case extension of an output path; ``.nii.gz`` counts as one."""
    name = Path(path).name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


def sidecar_path(path: str | Path) -> Path:
    """The JSON sidecar of an output: ``pred.csv`` -> ``pred.json`` (BIDS style), ``pred.nii.gz`` -> ``pred.json``."""
    path = Path(path)
    ext = output_ext(path)
    return path.with_name(path.name[: len(path.name) - len(ext)] + ".json")


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def write_sidecar(path: str | Path, attrs: dict[str, Any]) -> Path:
    """Write ``attrs`` as the JSON sidecar of output ``path`` (atomically); return the sidecar's path."""
    side = sidecar_path(path)
    with atomic_path(side) as tmp:
        tmp.write_text(json.dumps({k: _jsonable(v) for k, v in attrs.items()}, indent=1, ensure_ascii=False) + "\n",
                       encoding="utf-8")
    return side


def _row_cell(value: Any) -> str:
    return repr(float(value)) if isinstance(value, (float, np.floating)) else str(value)


def group_matrix(groups: Mapping[str, Any], n_columns: int) -> tuple[list[str], np.ndarray]:
    """Column groups ``{name: ascending column indices}`` as (names, bool (n_groups, n_columns) membership matrix)."""
    names = [str(name) for name in groups]
    matrix = np.zeros((len(names), n_columns), dtype=bool)
    for row, index in zip(matrix, groups.values(), strict=True):
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        if index.size and (index.min() < 0 or index.max() >= n_columns):
            raise ValueError(f"column group indices must lie in 0..{n_columns - 1}")
        row[index] = True
    return names, matrix


def write_responses(path: str | Path, responses: np.ndarray, columns: list[str], *, attrs: dict[str, Any] | None = None,
                    axes: dict[str, list[str]] | None = None, rows: list[Any] | np.ndarray | None = None,
                    row_name: str = "stimulus", column_groups: Mapping[str, Any] | None = None) -> Path:
    """Write responses by extension (.npy, .csv, .tsv, .h5/.hdf5, .nc), atomically.

    ``responses``: (n_rows, n_columns) named by ``columns``; or N-D (n_rows, n_1, n_2, ...) with ``axes`` =
    ``{axis name: labels}`` for the axes after the first (``Encoder.output_axes``) and ``columns`` the flattened
    names (``Encoder.output_names``, last axis fastest). ``rows``: (n_rows,) labels of the rows, named ``row_name``
    (``"stimulus"``: the sentences; ``"tr_onset_s"``: TR onset times in s; ``"word"``); ``attrs``: model id,
    subject, berg version, backbone, revision, layer, units (str or numbers).
    ``.npy`` keeps the array as it is (no labels); ``.csv``/``.tsv`` write ``responses.reshape(n_rows, -1)`` under
    ``columns`` after a leading ``row_name`` column (when ``rows`` is given) and ``attrs`` in a JSON sidecar;
    ``.h5`` keeps the shape in dataset ``responses``, with ``columns``, dataset ``row_name``, attribute ``dims``
    (``["row", *axes]``) and a label dataset ``axis_<name>`` per axis; ``.nc``: see ``write_netcdf``.
    ``column_groups`` (2-D outputs): ``{ROI name: ascending indices into columns}`` (``OutputLabels.column_groups``),
    stored as the sidecar key ``"column_groups"`` (``{name: [indices]}``) or the ``.h5`` datasets ``column_groups``
    (bool, (n_groups, n_columns)) and ``column_group_names`` (UTF-8); ``.npy`` stores none.
    """
    path = check_output_path(path)
    ext = path.suffix.lower()
    responses = np.asarray(responses)
    attrs = dict(attrs or {})
    if axes is not None and responses.shape[1:] != tuple(len(v) for v in axes.values()):
        raise ValueError(f"responses of shape {responses.shape} do not match the axes {[(k, len(v)) for k, v in axes.items()]}")
    if rows is not None and len(rows) != len(responses):
        raise ValueError(f"{len(rows)} row labels for {len(responses)} rows")
    if row_name not in ROW_NAMES:
        raise ValueError(f"row_name must be one of {ROW_NAMES}, got {row_name!r}")
    if column_groups is not None and axes is not None:
        raise ValueError("column groups are for 2-D outputs (n_rows, n_columns), not N-D ones")
    names, membership = group_matrix(column_groups, len(columns)) if column_groups is not None else ([], None)
    try:
        if ext == ".nc":
            write_netcdf(path, responses, columns, attrs=attrs, axes=axes, rows=rows, row_name=row_name, column_groups=column_groups)
            return path
        with atomic_path(path) as tmp:
            if ext == ".npy":
                with tmp.open("wb") as fh:
                    np.save(fh, responses)
            elif ext in (".csv", ".tsv"):
                with tmp.open("w", newline="", encoding="utf-8") as fh:
                    writer = csv.writer(fh, delimiter="\t" if ext == ".tsv" else ",")
                    writer.writerow([row_name, *columns] if rows is not None else columns)
                    for i, row in enumerate(responses.reshape(len(responses), -1)):
                        cells = [repr(float(v)) for v in row]
                        writer.writerow([_row_cell(rows[i]), *cells] if rows is not None else cells)
                if attrs or rows is not None or membership is not None:
                    first = row_name if rows is not None else "row"
                    groups = {} if membership is None else {"column_groups": {
                        name: np.flatnonzero(member).tolist() for name, member in zip(names, membership, strict=True)}}
                    write_sidecar(path, {**attrs, "rows": first, "dims": [first, *(list(axes) if axes else ["column"])],
                                         "shape": list(responses.shape), **groups})
            else:
                import h5py

                with h5py.File(tmp, "w") as f:
                    f.create_dataset("responses", data=responses)
                    f.create_dataset("columns", data=np.array(columns, dtype=object), dtype=h5py.string_dtype())
                    if rows is not None:
                        if row_name == "tr_onset_s":
                            f.create_dataset(row_name, data=np.asarray(rows, dtype=np.float64))
                        else:
                            f.create_dataset(row_name, data=np.array([str(r) for r in rows], dtype=object),
                                             dtype=h5py.string_dtype())
                        f.attrs["rows"] = row_name
                    if axes is not None:
                        f.attrs["dims"] = np.array(["row", *axes], dtype=h5py.string_dtype())
                        for name, labels in axes.items():
                            f.create_dataset(f"axis_{name}", data=np.array(labels, dtype=object), dtype=h5py.string_dtype())
                    if membership is not None:
                        f.create_dataset("column_groups", data=membership)
                        f.create_dataset("column_group_names", data=np.array(names, dtype=object), dtype=h5py.string_dtype())
                    for key, value in attrs.items():
                        f.attrs[key] = "" if value is None else value
    except OSError as exc:
        if isinstance(exc, ResourceError):
            raise
        raise ResourceError(f"cannot write {str(path)!r}: {exc.strerror or exc}; nothing was written") from exc
    return path


def write_netcdf(path: str | Path, responses: np.ndarray, columns: list[str], *, attrs: dict[str, Any],
                 axes: dict[str, list[str]] | None = None, rows: list[Any] | np.ndarray | None = None,
                 row_name: str = "stimulus", column_groups: Mapping[str, Any] | None = None) -> Path:
    """A labelled array in netCDF-4 (xarray + h5netcdf; ``pip install 'berg-core[nc]'``), following Brain-Score's
    assembly conventions: dims ``presentation`` (rows) x ``neuroid`` (columns) for 2-D outputs, or ``presentation``
    x one dim per named axis for N-D outputs; coordinates ``stimulus_id`` (row number) and ``row_name`` (sentence /
    TR onset in s / word) on ``presentation``; ``neuroid_id`` (column name), ``roi`` (ROI outputs) or ``voxel_num``
    (``voxel_<i>`` outputs: i) and ``subject`` on ``neuroid``; ``attrs`` as attributes. ``column_groups`` (2-D
    outputs, ``{name: column indices}``): a bool variable ``column_groups`` of dims ``group x neuroid`` with coordinate
    ``group`` = the names, stored as a coordinate of the file's dataset (read it with ``xarray.open_dataset(path)
    ["column_groups"]``; ``open_dataarray`` still opens the responses alone).
    """
    try:
        import xarray as xr
    except ImportError as exc:
        raise InvalidParameterError("writing .nc needs xarray and h5netcdf: pip install 'berg-core[nc]' "
                                    "(or write .h5/.csv)") from exc
    n = len(responses)
    coords: dict[str, Any] = {"stimulus_id": ("presentation", np.arange(n))}
    if rows is not None:
        values = np.asarray(rows, dtype=np.float64) if row_name == "tr_onset_s" else np.array([str(r) for r in rows], dtype=object)
        coords[row_name] = ("presentation", values)
    if axes is None:
        dims = ["presentation", "neuroid"]
        coords["neuroid_id"] = ("neuroid", np.array(columns, dtype=object))
        numbers = [c.removeprefix("voxel_") for c in columns]
        if all(c.startswith("voxel_") and n.isdigit() for c, n in zip(columns, numbers, strict=True)):
            coords["voxel_num"] = ("neuroid", np.array([int(n) for n in numbers], dtype=np.int64))
        else:
            coords["roi"] = ("neuroid", np.array(columns, dtype=object))
        coords["subject"] = ("neuroid", np.array([str(attrs.get("subject") or "")] * len(columns), dtype=object))
    else:
        dims = ["presentation", *axes]
        coords.update({name: (name, np.array(labels, dtype=object)) for name, labels in axes.items()})
    clean = {k: ("" if v is None else v) for k, v in attrs.items()}
    array = xr.DataArray(responses, dims=dims, coords=coords, name="responses", attrs=clean)
    data: Any = array
    if column_groups is not None:
        if axes is not None:
            raise ValueError("column groups are for 2-D outputs (n_rows, n_columns), not N-D ones")
        names, membership = group_matrix(column_groups, len(columns))
        data = array.to_dataset().assign_coords(
            group=("group", np.array(names, dtype=object)), column_groups=(("group", "neuroid"), membership))
    path = Path(path)
    with atomic_path(path) as tmp:
        data.to_netcdf(tmp, engine="h5netcdf")
    return path
