"""Read the result files berg writes, for figures and reports; every bad file is a one-line ``BergError``.

* an encode result: ``.npy`` (n_rows, n_columns ...), ``.csv`` (header of column names; non-numeric leading columns such
  as a stimulus or onset column are taken as row labels), ``.h5`` (dataset ``responses`` + ``columns``) or ``.nc``
  (``responses`` over ``presentation`` x ``neuroid``, or one dimension per axis of an N-D model, flattened like the CSV:
  ``electrode@lag``) — an N-D result also keeps its axes (names + labels: ``.h5`` attribute ``dims`` + datasets
  ``axis_<name>``, ``.nc`` dimensions, ``.csv`` sidecar ``dims``/``shape`` + the ``a@b`` column names; a ``.npy``
  or a foreign N-D file without them: index labels, ``EncodeResult.labelled`` False); with the ROI membership of its columns when the file carries it (``column_groups``: a bool
  (group, column) dataset + ``column_group_names`` in ``.h5``, a bool variable over (``group``, ``neuroid``) in
  ``.nc``, ``{"column_groups": {name: [column indices]}}`` in a CSV's JSON sidecar);
* a search result: ``berg search``'s CSV (``roi, direction, rank, sentence, <one column per ROI>, line``) and its
  response histogram (``roi, bin_start, bin_end, count``; ``berg_core.search.shard.Histogram.write_csv``);
* a training run: ``berg train``'s folder (``summary.json``, ``cc_{s}.npy``, ``alphas_{s}.npy``, ``berg_encoder.json``;
  when there: ``noise_ceiling.npy``, ``cc_norm_{s}.npy``, ``map_r_{s}.nii.gz`` + ``space_reference.nii.gz``).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from berg_core.errors import InvalidParameterError, ResourceError

SEARCH_HEADER = ["roi", "direction", "rank", "sentence"]
HIST_HEADER = ["roi", "bin_start", "bin_end", "count"]
#: leading CSV columns that label the rows (never responses), even when numeric; the time ones give the time axis
TIME_COLUMNS = {"onset", "onset_s", "time", "time_s", "tr", "tr_onset", "tr_onset_s", "t"}
LABEL_COLUMNS = {"stimulus", "sentence", "text", "word", "words", "row", *TIME_COLUMNS}
#: largest result file read into memory for a figure, bytes
MAX_BYTES = 2 << 30


class ResultFileError(InvalidParameterError):
    """A file given to ``berg plot`` / ``berg report`` is not a result berg wrote (or is damaged)."""


def _bad(path: str | Path, what: str, todo: str) -> ResultFileError:
    return ResultFileError(f"{str(path)!r}: {what}; {todo}")


def _read_text(path: Path, what: str) -> str:
    try:
        if path.stat().st_size > MAX_BYTES:
            raise _bad(path, f"is larger than {MAX_BYTES >> 30} GiB", f"give a smaller {what}")
        return path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError as exc:
        raise ResourceError(f"{str(path)!r} not found; give the {what} berg wrote") from exc
    except UnicodeDecodeError as exc:
        raise _bad(path, f"is not UTF-8 text ({exc.reason})", f"give the {what} berg wrote") from exc
    except OSError as exc:
        raise ResourceError(f"{str(path)!r} cannot be read ({exc.strerror or exc}); give a readable {what}") from exc


def _rows(path: Path, what: str, delimiter: str = ",") -> list[list[str]]:
    text = _read_text(path, what)
    try:
        rows = [row for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter) if row]
    except csv.Error as exc:
        raise _bad(path, f"is not valid CSV ({exc})", f"give the {what} berg wrote") from exc
    if not rows:
        raise _bad(path, "is empty", f"give the {what} berg wrote")
    return rows


def _float(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


# ------------------------------------------------------------------------------------- encode results


@dataclass
class EncodeResult:
    """Predicted responses ``values`` (n_rows, n_columns) float64, ``columns`` names, ``rows`` labels (sentence or time);
    ``times``: (n_rows,) seconds when the file has a time column (``onset``, ``time``, ``tr_onset_s`` ...), else None;
    ``groups``: ``{ROI name: column indices}`` when the file records which columns each ROI holds, else None;
    ``axes``: an N-D result's axes after the rows, ``{axis name: labels}`` in order (``values`` is its flattening, last
    axis fastest, ``columns`` = ``a@b`` names), else None; ``labelled``: False when the file kept no axis names/labels
    (a ``.npy``): then ``axes`` are ``axis_1``, ``axis_2`` ... with index labels ``"0"``, ``"1"`` ..."""

    path: Path
    values: np.ndarray
    columns: list[str]
    rows: list[str]
    times: np.ndarray | None = None
    groups: dict[str, np.ndarray] | None = None
    axes: dict[str, list[str]] | None = None
    labelled: bool = True

    def cube(self) -> np.ndarray:
        """The N-D values ``(n_rows, len(axis_1), len(axis_2), ...)`` of a result with ``axes`` (a view of ``values``)."""
        if self.axes is None:
            raise InvalidParameterError(f"{self.path.name} is a 2-D result (rows x columns), not an N-D one")
        return self.values.reshape(len(self.values), *(len(v) for v in self.axes.values()))

    def row_indices(self, picks: list[str]) -> list[int]:
        """Row numbers of ``picks``: each a row number (``"3"``, 0-based) or a row label (a word or sentence: every row
        with exactly that label), in the order given, each once; an unknown pick is one line naming the rows there are."""
        n = len(self.rows)
        out: list[int] = []
        for pick in picks:
            if pick.isdigit():
                if int(pick) >= n:
                    raise InvalidParameterError(f"--rows {pick}: {self.path.name} has rows 0..{n - 1}")
                out.append(int(pick))
                continue
            found = [i for i, label in enumerate(self.rows) if label == pick]
            if not found:
                raise InvalidParameterError(f"--rows {pick!r}: no row of {self.path.name} is labelled so (its rows start "
                                            f"{self.rows[:5]}); give row numbers (0-based) or exact labels")
            out.extend(found)
        return list(dict.fromkeys(out))

    def pick_rows(self, index: list[int]) -> EncodeResult:
        """The result restricted to the rows ``index`` (in that order)."""
        times = None if self.times is None else self.times[index]
        return EncodeResult(self.path, self.values[index], self.columns, [self.rows[i] for i in index], times, self.groups,
                            self.axes, self.labelled)

    def roi_means(self, rois: list[str]) -> EncodeResult:
        """A result whose columns are the mean over each ROI's columns (NaN ignored), per row."""
        if not self.groups:
            raise InvalidParameterError(f"{self.path.name} carries no ROI groups (column_groups); choose columns with --columns")
        missing = [r for r in rois if r not in self.groups]
        if missing:
            raise InvalidParameterError(f"{self.path.name} has no ROI group(s) {missing[:3]}; its groups are {list(self.groups)[:10]}")
        empty = [r for r in rois if not len(self.groups[r])]
        if empty:
            raise InvalidParameterError(f"the ROI group(s) {empty[:3]} of {self.path.name} hold no columns; choose other ROIs")
        values = np.stack([self.values[:, self.groups[r]].mean(axis=1) for r in rois], axis=1)
        return EncodeResult(self.path, values, list(rois), self.rows, self.times)


def read_encode_result(path: str | Path) -> EncodeResult:
    """A ``berg encode`` output (.npy, .csv/.tsv, .h5/.hdf5, .nc); N-D outputs are flattened to one column per name
    and keep their axes (``EncodeResult.axes``)."""
    path = Path(path)
    ext = path.suffix.lower()
    what = "berg encode output (.npy, .csv, .tsv, .h5 or .nc)"
    groups: Any = None
    axes: dict[str, list[str]] | None = None
    if not path.is_file():
        raise ResourceError(f"{str(path)!r} not found; give the {what}")
    if ext == ".npy":
        try:
            values = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise _bad(path, f"is not a plain numeric .npy ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})",
                       f"give the {what}") from exc
        columns: list[str] | None = None
        rows: list[str] | None = None
        times = None
    elif ext in (".csv", ".tsv"):
        table = _rows(path, what, "\t" if ext == ".tsv" else ",")
        header, body = table[0], table[1:]
        if not body or any(len(r) != len(header) for r in body):
            raise _bad(path, "has no data rows or rows of unequal length", f"give the {what}")
        numeric = [all(_float(r[j]) is not None for r in body) and header[j].strip().lower() not in LABEL_COLUMNS
                   for j in range(len(header))]
        label_cols = [j for j, ok in enumerate(numeric) if not ok]
        if label_cols != list(range(len(label_cols))) or not any(numeric):
            raise _bad(path, "has non-numeric values outside the leading label columns", f"give the {what}")
        values = np.array([[float(r[j]) for j in range(len(label_cols), len(header))] for r in body])
        columns = header[len(label_cols):]
        rows = [" | ".join(r[j] for j in label_cols) for r in body] if label_cols else None
        times = next((np.array([float(r[j]) for r in body]) for j in label_cols
                      if header[j].strip().lower() in TIME_COLUMNS and all(_float(r[j]) is not None for r in body)), None)
        side = read_sidecar(path)
        groups = side.get("column_groups")
        axes = _csv_axes(columns, side.get("dims"), side.get("shape"), len(body))
    elif ext in (".h5", ".hdf5"):
        values, columns, rows, times, groups, axes = _read_h5(path, what)
    elif ext == ".nc":
        values, columns, rows, times, groups, axes = _read_nc(path, what)
    else:
        raise _bad(path, f"has extension {ext or '(none)'}", f"give the {what}")
    values = np.asarray(values)
    if values.dtype.kind not in "fiu" or values.ndim < 1 or values.size == 0:
        raise _bad(path, f"holds a {values.dtype} array of shape {values.shape}, not responses", f"give the {what}")
    labelled = True
    if axes is not None and values.ndim > 2 and tuple(len(v) for v in axes.values()) != values.shape[1:]:
        axes = None
    if axes is None and values.ndim > 2:  # no labels kept (.npy, a foreign file): the axes by index
        axes = {f"axis_{k}": [str(i) for i in range(size)] for k, size in enumerate(values.shape[1:], start=1)}
        labelled = False
    values = values.reshape(len(values), -1).astype(np.float64) if values.ndim > 1 else values.astype(np.float64)[:, None]
    n, c = values.shape
    if axes is not None and (len(axes) < 2 or math.prod(len(v) for v in axes.values()) != c):
        axes = None
    if columns is None or len(columns) != c:
        columns = [f"col_{j}" for j in range(c)]
    if rows is None or len(rows) != n:
        rows = [f"row {i}" for i in range(n)]
    return EncodeResult(path, values, [str(x) for x in columns], [str(x) for x in rows], times, _groups(path, groups, c),
                        axes, labelled)


def _csv_axes(columns: list[str], dims: Any, shape: Any, n_rows: int) -> dict[str, list[str]] | None:
    """The axes of a flattened N-D CSV from its sidecar's ``dims`` (``[row name, axis names...]``) and ``shape`` and the
    ``a@b`` column names (last axis fastest); None when they do not fit together (then the CSV is read as 2-D)."""
    from berg_core.encoder import flat_output_names

    if not (isinstance(dims, list) and isinstance(shape, list) and len(dims) == len(shape) >= 3
            and all(isinstance(d, str) for d in dims) and all(isinstance(k, int) and k > 0 for k in shape)):
        return None
    sizes = shape[1:]
    if shape[0] != n_rows or math.prod(sizes) != len(columns):
        return None
    parts = [c.split("@") for c in columns]
    if any(len(p) != len(sizes) for p in parts):
        return None
    grid = np.array(parts, dtype=object).reshape(*sizes, len(sizes))
    axes: dict[str, list[str]] = {}
    for k, name in enumerate(dims[1:]):
        index = [0] * len(sizes)
        labels = []
        for i in range(sizes[k]):
            index[k] = i
            labels.append(str(grid[(*index, k)]))
        axes[name] = labels
    return axes if flat_output_names(axes) == columns and len(axes) == len(sizes) else None


def _groups(path: Path, groups: Any, n_columns: int) -> dict[str, np.ndarray] | None:
    """``{name: column indices}`` from a ``{name: [indices]}`` mapping or a ``(names, bool (n_groups, n_columns))`` pair."""
    if groups is None:
        return None
    bad = _bad(path, "has a malformed column_groups record (ROI name -> columns)", "write the result again with berg encode")
    if isinstance(groups, tuple):
        names, member = groups
        member = np.asarray(member)
        if member.ndim != 2 or member.shape != (len(names), n_columns) or member.dtype.kind not in "biu":
            raise bad
        return {str(name): np.flatnonzero(row) for name, row in zip(names, member, strict=True)}
    if not isinstance(groups, dict) or not all(
            isinstance(v, list) and all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n_columns for i in v)
            for v in groups.values()):
        raise bad
    return {str(k): np.asarray(v, dtype=np.int64) for k, v in groups.items()}


def _strings(data: Any) -> list[str]:
    return [c.decode() if isinstance(c, bytes) else str(c) for c in np.asarray(data).reshape(-1)]


#: values, columns, row labels, row times (s), column groups, N-D axes
H5Read = tuple[np.ndarray, list[str] | None, list[str] | None, np.ndarray | None, Any, dict[str, list[str]] | None]


def _read_h5(path: Path, what: str) -> H5Read:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "responses" not in f:
                raise _bad(path, "has no dataset 'responses'", f"give the {what}")
            values = np.asarray(f["responses"][()])
            columns = [c.decode() if isinstance(c, bytes) else str(c) for c in f["columns"][()]] if "columns" in f else None
            rows, times = None, None
            for key in sorted(LABEL_COLUMNS):
                if key in f and getattr(f[key], "shape", None) == (len(values),):
                    data = f[key][()]
                    rows = [c.decode() if isinstance(c, bytes) else str(c) for c in data]
                    if key in TIME_COLUMNS and np.asarray(data).dtype.kind in "fiu":
                        times = np.asarray(data, dtype=np.float64)
                    break
            groups = None
            if "column_groups" in f:
                names = _strings(f["column_group_names"][()]) if "column_group_names" in f else []
                groups = (names, np.asarray(f["column_groups"][()]))
            axes = None
            if "dims" in f.attrs:  # N-D: ["row", axis names...] + one label dataset axis_<name> per axis
                names = _strings(f.attrs["dims"])[1:]
                if names and all(f"axis_{d}" in f for d in names):
                    axes = {d: _strings(f[f"axis_{d}"][()]) for d in names}
    except ResultFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - h5py raises OSError/KeyError/ValueError/TypeError for damaged files
        raise _bad(path, f"is not a readable HDF5 result ({type(exc).__name__})", f"give the {what}") from exc
    return values, columns, rows, times, groups, axes


def _read_nc(path: Path, what: str) -> H5Read:
    """berg's netCDF-4 (``userfiles.write_netcdf``): ``responses`` over (presentation, neuroid) or (presentation, axis...);
    columns from ``neuroid_id`` (else the dimension's labels), N-D flattened ``a@b`` (last axis fastest)."""
    try:
        import xarray as xr
    except ImportError as exc:
        raise InvalidParameterError("reading .nc needs xarray and h5netcdf: pip install 'berg-core[nc]'") from exc
    from berg_core.encoder import flat_output_names

    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            if "responses" not in ds.data_vars:
                raise _bad(path, f"has no variable 'responses' (it has {sorted(map(str, ds.data_vars))[:5]})", f"give the {what}")
            da = ds["responses"]
            dims = [str(d) for d in da.dims]
            if len(dims) < 2:
                raise _bad(path, f"holds 'responses' over {dims}, not rows x columns", f"give the {what}")
            values = np.asarray(da.values)

            def labels(dim: str) -> list[str]:
                return _strings(ds[dim].values) if dim in ds.coords else [str(i) for i in range(ds.sizes[dim])]

            axes = None
            if len(dims) == 2:
                ids = da.coords.get("neuroid_id")
                columns = _strings(ids.values) if ids is not None and ids.dims == (dims[1],) else labels(dims[1])
            else:
                axes = {d: labels(d) for d in dims[1:]}
                columns = flat_output_names(axes)
            rows, times = None, None
            for key in sorted(LABEL_COLUMNS):
                if key in da.coords and da.coords[key].dims == (dims[0],):
                    data = np.asarray(da.coords[key].values)
                    rows = _strings(data)
                    if key in TIME_COLUMNS and data.dtype.kind in "fiu":
                        times = data.astype(np.float64)
                    break
            groups = None
            if "column_groups" in ds.variables:  # a data variable, or (as berg encode writes it) a coordinate
                member = ds["column_groups"]
                names = labels(str(member.dims[0])) if member.ndim == 2 else []
                groups = (names, np.asarray(member.values).reshape(len(names), -1) if member.ndim == 2 else np.asarray(member.values))
    except ResultFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - xarray/h5netcdf raise OSError/ValueError/KeyError... for foreign files
        raise _bad(path, f"is not a readable netCDF-4 result ({type(exc).__name__})", f"give the {what}") from exc
    return values, columns, rows, times, groups, axes


# ------------------------------------------------------------------------------------- search results


@dataclass
class SearchTable:
    """``berg search``'s CSV: ``rois`` (ranked ROIs), ``columns`` (every output), and per row its fields.

    ``hits``: ``(roi, direction, rank, sentence, responses (n_columns,), line)``.
    """

    path: Path
    columns: list[str]
    hits: list[tuple[str, str, int, str, np.ndarray, int]]

    @property
    def rois(self) -> list[str]:
        return list(dict.fromkeys(h[0] for h in self.hits))

    @property
    def k(self) -> int:
        return max(h[2] for h in self.hits)

    def values(self, roi: str, direction: str) -> np.ndarray:
        """The responses in column ``roi`` of that ROI's kept sentences of ``direction``, in rank order."""
        j = self.columns.index(roi)
        return np.array([h[4][j] for h in sorted(self.hits, key=lambda h: h[2]) if h[0] == roi and h[1] == direction])


def read_search_result(path: str | Path) -> SearchTable:
    path = Path(path)
    what = "berg search output CSV"
    table = _rows(path, what)
    header = table[0]
    if header[:4] != SEARCH_HEADER or header[-1] != "line" or len(header) < 6:
        raise _bad(path, "is not a berg search result (its header is not roi,direction,rank,sentence,<ROIs>,line)",
                   "give the CSV berg search wrote with --output")
    columns = header[4:-1]
    hits = []
    for number, row in enumerate(table[1:], start=2):
        try:
            if len(row) != len(header) or row[1] not in ("drive", "suppress") or row[0] not in columns:
                raise ValueError
            resp = np.array([float(v) for v in row[4:-1]])
            hits.append((row[0], row[1], int(row[2]), row[3], resp, int(row[-1])))
        except ValueError:
            raise _bad(path, f"row {number} is malformed", "give the CSV berg search wrote, unedited") from None
    if not hits:
        raise _bad(path, "has no rows", "run berg search on a corpus with sentences")
    return SearchTable(path, columns, hits)


@dataclass
class HistogramTable:
    """A fixed-bin response histogram: per ROI the non-empty bins ``(starts, ends, counts)``, ascending."""

    path: Path | None
    bins: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)


def read_histogram(path: str | Path) -> HistogramTable:
    path = Path(path)
    what = "response histogram CSV (berg search writes it beside its output)"
    table = _rows(path, what)
    if table[0] != HIST_HEADER:
        raise _bad(path, "is not a berg response histogram (header roi,bin_start,bin_end,count)", f"give the {what}")
    per: dict[str, list[tuple[float, float, int]]] = {}
    for number, row in enumerate(table[1:], start=2):
        try:
            start, end, count = float(row[1]), float(row[2]), int(row[3])
            if len(row) != 4 or not (math.isfinite(start) and math.isfinite(end) and end > start and count >= 0):
                raise ValueError
        except (ValueError, IndexError):
            raise _bad(path, f"row {number} is malformed", f"give the {what}, unedited") from None
        per.setdefault(row[0], []).append((start, end, count))
    hist = HistogramTable(path)
    for roi, items in per.items():
        items.sort()
        arr = np.array(items, dtype=np.float64)
        hist.bins[roi] = (arr[:, 0], arr[:, 1], arr[:, 2].astype(np.int64))
    return hist


def read_sidecar(result: Path) -> dict[str, Any]:
    """The attributes in a result's JSON sidecar (``hits.csv`` -> ``hits.json``, ``pred.nii.gz`` -> ``pred.json``), or {}
    when there is none."""
    from berg_core.store.userfiles import sidecar_path

    side = sidecar_path(result)
    if not side.is_file() or side == result:
        return {}
    try:
        data = json.loads(_read_text(side, "JSON sidecar"))
    except (ValueError, RecursionError) as exc:
        raise _bad(side, "is not valid JSON", f"delete it or write {result.name} again") from exc
    if not isinstance(data, dict):
        raise _bad(side, "is not a JSON object of attributes", f"delete it or write {result.name} again")
    return {str(k): v for k, v in data.items()}


def histogram_path_for(result: Path) -> Path | None:
    """The histogram of a search result: ``<stem>_histogram.csv`` beside it, else ``<name>.shards/histogram.csv``."""
    for candidate in (result.with_name(result.stem + "_histogram.csv"), result.with_name(result.name + ".shards") / "histogram.csv"):
        if candidate.is_file():
            return candidate
    return None


# ------------------------------------------------------------------------------------- training runs


@dataclass
class TrainRun:
    """A ``berg train`` folder: test ``cc`` (n_vox,), chosen ``alphas`` (n_vox,), the ``grid``, ROIs, ``summary``;
    ``noise_ceiling`` (n_vox,) CCmax (r units; ``--noise-ceiling`` or the folder's ``noise_ceiling.npy``), ``cc_norm``
    (n_vox,) r / CCmax, ``r_map`` the 3-D NIfTI of test r in the subject's space and ``reference`` its background."""

    path: Path
    summary: dict[str, Any]
    cc: np.ndarray | None
    alphas: np.ndarray
    grid: np.ndarray
    rois: dict[str, list[int]] | None
    noise_ceiling: np.ndarray | None
    cc_norm: np.ndarray | None = None
    r_map: Path | None = None
    reference: Path | None = None


def _npy(path: Path, n: int | None, what: str) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise _bad(path, "is not a readable numeric .npy", f"run berg train again ({what})") from exc
    if arr.dtype.kind not in "fiu" or arr.ndim != 1 or (n is not None and arr.shape[0] != n):
        raise _bad(path, f"holds shape {arr.shape}, not one value per voxel", f"run berg train again ({what})")
    return np.asarray(arr, dtype=np.float64)


def read_train_run(folder: str | Path, noise_ceiling: str | Path | None = None) -> TrainRun:
    """Read ``berg train``'s folder; ``noise_ceiling``: an optional .npy of per-voxel ceilings (r units)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ResourceError(f"{str(folder)!r} is not a folder; give the --out folder of berg train")
    spath = folder / "summary.json"
    if not spath.is_file():
        raise _bad(folder, "has no summary.json", "give the --out folder of berg train")
    try:
        summary = json.loads(_read_text(spath, "summary.json"))
        suffix = str(summary["suffix"])
        n = int(summary["n_voxels"])
        grid = np.asarray(summary["training"]["alphas"], dtype=np.float64)
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise _bad(spath, f"is not berg train's summary ({type(exc).__name__})", "run berg train again") from exc
    if "/" in suffix or "\\" in suffix or suffix.startswith("."):
        raise _bad(spath, f"names an unsafe suffix {suffix!r}", "run berg train again")
    cc = _npy(folder / f"cc_{suffix}.npy", n, "test correlations") if (folder / f"cc_{suffix}.npy").is_file() else None
    apath = folder / f"alphas_{suffix}.npy"
    if not apath.is_file():
        raise _bad(folder, f"has no alphas_{suffix}.npy", "give a complete berg train folder")
    alphas = _npy(apath, n, "chosen alphas")
    rois = None
    card = folder / "berg_encoder.json"
    if card.is_file():
        try:
            raw = json.loads(_read_text(card, "berg_encoder.json")).get("rois")
        except (ValueError, AttributeError, RecursionError) as exc:
            raise _bad(card, "is not valid JSON", "run berg train again") from exc
        if isinstance(raw, dict) and all(isinstance(v, list) and all(isinstance(i, int) and 0 <= i < n for i in v) for v in raw.values()):
            rois = {str(k): list(v) for k, v in raw.items()} or None
    ceiling = _npy(Path(noise_ceiling), n, "noise ceiling") if noise_ceiling is not None else None
    if ceiling is None and (folder / "noise_ceiling.npy").is_file():
        ceiling = _npy(folder / "noise_ceiling.npy", n, "noise ceiling")
    norm = _npy(folder / f"cc_norm_{suffix}.npy", n, "normalised correlations") if (folder / f"cc_norm_{suffix}.npy").is_file() else None
    r_map = folder / f"map_r_{suffix}.nii.gz"
    reference = folder / "space_reference.nii.gz"
    return TrainRun(folder, summary, cc, alphas, grid, rois, ceiling, norm, r_map if r_map.is_file() else None,
                    reference if reference.is_file() else None)


def result_kind(path: str | Path) -> str:
    """``train`` (a folder), ``search`` (a search CSV), ``volume`` (.nii.gz / .nii), else ``encode``."""
    path = Path(path)
    if path.is_dir():
        return "train"
    if path.name.lower().endswith((".nii", ".nii.gz")) and path.exists():
        return "volume"
    if path.suffix.lower() == ".csv" and path.is_file():
        try:
            with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
                first = next(csv.reader([fh.readline()]), [])
        except OSError as exc:
            raise ResourceError(f"{str(path)!r} cannot be read ({exc.strerror or exc})") from exc
        if first[:4] == SEARCH_HEADER:
            return "search"
    if not path.exists():
        raise ResourceError(f"{str(path)!r} not found; give a file or folder berg wrote")
    return "encode"


__all__ = ["EncodeResult", "HistogramTable", "ResultFileError", "SearchTable", "TrainRun", "histogram_path_for",
           "read_encode_result", "read_histogram", "read_search_result", "read_sidecar", "read_train_run", "result_kind"]
