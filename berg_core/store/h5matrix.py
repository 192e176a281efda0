"""Big matrices as HDF5 datasets chunked along columns: convert once, then read only the columns you need.

A weight matrix W (n_rows, n_cols) — e.g. ridge weights (8192 delayed features, ~95k voxels) — is stored
as one dataset ``"matrix"`` with chunks of shape (n_rows, chunk_columns): every chunk holds whole
columns, so reading a selection of columns reads only the chunks that contain them. Each chunk carries
an HDF5 Fletcher-32 checksum, so a corrupted chunk is detected when it is read.

File contract (all written by ``write_matrix`` / ``MatrixWriter``):

* dataset ``"matrix"``: (n_rows, n_cols), float32 by default, chunked along columns, fletcher32;
* attrs ``berg_shape`` (n_rows, n_cols), ``berg_dtype`` (numpy ``dtype.str``, e.g. ``"<f4"``) and
  ``berg_complete`` (True, written last, after every column);
* any caller attrs (e.g. ``source_sha256``) for cache validation with ``is_complete(path, expect=...)``.

API (small on purpose):

* ``write_matrix(dest, source, ...)``: convert an in-memory array, a ``np.memmap`` or any
  ``ColumnSource`` (e.g. ``RawColumns``: a raw matrix inside a file) block by block — peak memory is one
  block of ``block_bytes`` plus its float32 copy, never the whole matrix in float32;
* ``MatrixWriter``: the same, incrementally (``write_columns(start, block)``), for code that produces
  columns in pieces (training one voxel batch at a time);
* ``build_matrix(dest, make_source, attrs=...)``: ``write_matrix`` under ``berg_core.store.cache.build_once``
  (file lock + atomic rename; rebuilt when absent, incomplete or its attrs differ);
* ``read_columns(path, columns)``: (n_rows, len(columns)) in the order given; ``matrix_info(path)``;
  ``check_matrix(path, dtype, shape)``; ``is_complete(path, expect)``.

Every open verifies the file's own headers against its record: the dataset's shape against
``berg_shape``, its HDF5 datatype must be exactly the standard IEEE float type of ``berg_dtype`` (a
flipped byte-order bit, exponent bias or mantissa size in the datatype header would otherwise rescale
or scramble every value, unseen by the chunk checksums) and the chunks must carry Fletcher-32.
``check_matrix(path, dtype, shape)`` also compares them with what the caller recorded (a card, a
converter).

Errors: a missing/truncated/corrupt/incomplete file raises ``ModelLoadError`` naming the file (delete
it and let berg convert again, or re-fetch the source). h5py is imported inside the functions.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from berg_core.console import progress_bar
from berg_core.errors import InvalidParameterError, ModelLoadError

DATASET = "matrix"
#: target bytes of one HDF5 chunk (whole columns); ~1 MiB is HDF5's sweet spot
CHUNK_BYTES = 1 << 20
#: bytes of the source block converted at a time (its float32 copy comes on top)
BLOCK_BYTES = 256 << 20
#: read spans of adjacent chunks up to this many bytes at once in ``read_columns``
READ_SPAN_BYTES = 64 << 20

_RESERVED = ("berg_shape", "berg_dtype", "berg_complete")
_FIX = "delete it so berg converts it again, or re-fetch its source"


@runtime_checkable
class ColumnSource(Protocol):
    """Anything that can hand out blocks of whole columns of a 2-D matrix."""

    @property
    def shape(self) -> tuple[int, int]:
        """(n_rows, n_columns)."""
        ...

    @property
    def dtype(self) -> np.dtype:
        """The stored element type."""
        ...

    def read_columns(self, start: int, stop: int) -> np.ndarray:
        """Columns ``start:stop`` as an (n_rows, stop - start) array."""
        ...


@dataclass
class ArrayColumns:
    """A ``ColumnSource`` over an array (in memory or ``np.memmap``)."""

    array: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.array.shape[0]), int(self.array.shape[1]))

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype

    def read_columns(self, start: int, stop: int) -> np.ndarray:
        return np.asarray(self.array[:, start:stop])


@dataclass
class RawColumns:
    """A ``ColumnSource`` over a raw (uncompressed) matrix stored in a file from byte ``offset``.

    C order: the rows are contiguous, so a column block is read with one positioned read per row
    (``os.preadv`` into the block buffer: no mapping, the process never holds more than the block).
    Fortran order: a column block is one contiguous read. A short read means the file is truncated
    (``ModelLoadError``).
    """

    path: Path
    offset: int
    shape: tuple[int, int]
    dtype: np.dtype
    fortran: bool = False

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.dtype = np.dtype(self.dtype)
        self.shape = (int(self.shape[0]), int(self.shape[1]))
        need = self.offset + self.shape[0] * self.shape[1] * self.dtype.itemsize
        size = self.path.stat().st_size
        if size < need:
            raise ModelLoadError(f"{self.path} is truncated ({size} bytes, the matrix needs {need}); delete it and re-fetch it")

    def read_columns(self, start: int, stop: int) -> np.ndarray:
        n_rows, n_cols = self.shape
        item = self.dtype.itemsize
        width = stop - start
        with open(self.path, "rb", buffering=0) as fh:
            fd = fh.fileno()
            if self.fortran:
                out = np.empty((width, n_rows), dtype=self.dtype)  # column-major block, rows contiguous here
                _pread_exact(fd, out.data.cast("B"), self.offset + start * n_rows * item, self.path)
                return out.T
            out = np.empty((n_rows, width), dtype=self.dtype)
            buf = out.data.cast("B")
            row_bytes = width * item
            for r in range(n_rows):
                _pread_exact(fd, buf[r * row_bytes:(r + 1) * row_bytes], self.offset + (r * n_cols + start) * item, self.path)
            return out


def _pread_exact(fd: int, buf: memoryview, offset: int, path: Path) -> None:
    got = 0
    while got < len(buf):
        n = os.preadv(fd, [buf[got:]], offset + got) if hasattr(os, "preadv") else _pread_fallback(fd, buf[got:], offset + got)
        if n <= 0:
            raise ModelLoadError(f"{path} is truncated (read stopped at byte {offset + got}); delete it and re-fetch it")
        got += n


def _pread_fallback(fd: int, buf: memoryview, offset: int) -> int:
    data = os.pread(fd, len(buf), offset)
    buf[: len(data)] = data
    return len(data)


def _as_source(source: np.ndarray | ColumnSource) -> ColumnSource:
    if isinstance(source, np.ndarray):
        if source.ndim != 2:
            raise InvalidParameterError(f"write_matrix needs a 2-D matrix, got shape {source.shape}")
        return ArrayColumns(source)
    if isinstance(source, ColumnSource):
        return source
    raise InvalidParameterError(f"write_matrix needs an ndarray or a ColumnSource, got {type(source).__name__}")


def default_chunk_columns(n_rows: int, n_cols: int, dtype: np.dtype | str = "float32") -> int:
    """Columns per chunk so that one chunk is about ``CHUNK_BYTES`` (at least 1, at most n_cols)."""
    per_col = max(1, n_rows * np.dtype(dtype).itemsize)
    return int(max(1, min(n_cols, CHUNK_BYTES // per_col)))


def _h5py() -> Any:
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - h5py is a core dependency
        raise ModelLoadError(f"this needs h5py: pip install h5py ({exc})") from exc
    return h5py


def _attr_value(value: Any) -> np.bytes_:
    """Caller attrs are stored as JSON text (any JSON-able value round-trips exactly), as a fixed-length
    byte string: it lives in the checksummed object header, not in HDF5's unchecksummed global heap."""
    return np.bytes_(json.dumps(value, sort_keys=True).encode("utf-8"))


class MatrixWriter:
    """Write a column-chunked matrix piece by piece; ``close()`` marks it complete.

    Use as a context manager; ``write_columns(start, block)`` takes (n_rows, k) blocks in any order but
    every column must be written before closing (checked). An exception inside the ``with`` block
    leaves the file without its completion flag (``is_complete`` is then False).
    """

    def __init__(self, dest: Path | str, shape: tuple[int, int], *, dtype: str | np.dtype = "float32",
                 chunk_columns: int | None = None, attrs: Mapping[str, Any] | None = None) -> None:
        h5py = _h5py()
        n_rows, n_cols = (int(shape[0]), int(shape[1]))
        if n_rows < 1 or n_cols < 1:
            raise InvalidParameterError(f"matrix shape must be positive, got {shape}")
        self.shape = (n_rows, n_cols)
        self.dtype = np.dtype(dtype)
        self.chunk_columns = int(chunk_columns or default_chunk_columns(n_rows, n_cols, self.dtype))
        self.path = Path(dest)
        self._attrs = dict(attrs or {})
        bad = [k for k in self._attrs if k in _RESERVED]
        if bad:
            raise InvalidParameterError(f"attrs {bad} are reserved by h5matrix")
        # libver="latest": superblock v3, object headers v2, fixed-array chunk index, all with metadata checksums
        # (the earliest format has none: a flipped B-tree key silently swaps chunks, some flips hang or crash libhdf5)
        self._file = h5py.File(self.path, "w", libver="latest")
        self._ds = self._file.create_dataset(DATASET, shape=self.shape, dtype=self.dtype,
                                             chunks=(n_rows, min(self.chunk_columns, n_cols)), fletcher32=True)
        self._written = np.zeros(n_cols, dtype=bool)
        self._ok = False

    def write_columns(self, start: int, block: np.ndarray) -> None:
        """Write ``block`` (n_rows, k) into columns ``start:start + k`` (cast to the file's dtype)."""
        block = np.asarray(block)
        if block.ndim != 2 or block.shape[0] != self.shape[0] or not 0 <= start <= self.shape[1] - block.shape[1]:
            raise InvalidParameterError(f"block of shape {block.shape} at column {start} does not fit a {self.shape} matrix")
        self._ds[:, start:start + block.shape[1]] = block.astype(self.dtype, copy=False)
        self._written[start:start + block.shape[1]] = True

    def close(self) -> None:
        """Mark the matrix complete (all columns written) and close the file."""
        if self._file is None:
            return
        try:
            if self._ok:
                if not self._written.all():
                    raise InvalidParameterError(f"{int((~self._written).sum())} columns were never written")
                for key, value in self._attrs.items():
                    self._file.attrs[key] = _attr_value(value)
                self._file.attrs["berg_shape"] = np.asarray(self.shape, dtype=np.int64)
                self._file.attrs["berg_dtype"] = np.bytes_(self.dtype.str.encode("ascii"))
                self._file.flush()
                self._file.attrs["berg_complete"] = True
        finally:
            self._file.close()
            self._file = None

    def __enter__(self) -> MatrixWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._ok = exc_type is None
        self.close()


def write_matrix(dest: Path | str, source: np.ndarray | ColumnSource, *, dtype: str | np.dtype = "float32",
                 chunk_columns: int | None = None, block_bytes: int = BLOCK_BYTES, attrs: Mapping[str, Any] | None = None,
                 show_progress: bool = False, desc: str | None = None) -> Path:
    """Convert ``source`` (n_rows, n_cols) into a column-chunked HDF5 matrix at ``dest`` (overwritten).

    Columns are converted in blocks of about ``block_bytes`` source bytes (a whole number of chunks),
    each cast to ``dtype`` and written, so peak memory is ~1 block + its cast, whatever the matrix
    size. Writes ``dest`` directly: wrap with ``berg_core.store.cache.atomic_path``/``build_matrix`` for
    atomicity. Returns ``dest``.
    """
    src = _as_source(source)
    n_rows, n_cols = src.shape
    with MatrixWriter(dest, (n_rows, n_cols), dtype=dtype, chunk_columns=chunk_columns, attrs=attrs) as writer:
        step = writer.chunk_columns * max(1, int(block_bytes // max(1, n_rows * np.dtype(src.dtype).itemsize * writer.chunk_columns)))
        bar = progress_bar(show=show_progress, total=n_cols, desc=desc or f"converting {Path(dest).name}", unit="col", unit_scale=True)
        try:
            for start in range(0, n_cols, step):
                stop = min(n_cols, start + step)
                writer.write_columns(start, src.read_columns(start, stop))
                bar.update(stop - start)
        finally:
            bar.close()
    return Path(dest)


@contextmanager
def _open(path: Path | str) -> Iterator[Any]:
    h5py = _h5py()
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing; run again to rebuild it (or re-fetch its source)")
    try:
        fh = h5py.File(path, "r")
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelLoadError(f"{path} is truncated or corrupt ({exc}); {_FIX}") from exc
    try:
        yield fh
    finally:
        fh.close()


@dataclass(frozen=True)
class MatrixInfo:
    """What ``matrix_info`` reports: shape, dtype, chunk columns and the caller attrs (decoded).

    ``current_format``: written by this version (metadata checksums, ``berg_dtype`` recorded). Older
    files are still read, their datatype checked to be a standard float, and rebuilt by ``build_matrix``.
    """

    shape: tuple[int, int]
    dtype: np.dtype
    chunk_columns: int
    attrs: dict[str, Any]
    current_format: bool = True


def _info(fh: Any, path: Path | str) -> MatrixInfo:
    h5py = _h5py()
    try:
        if DATASET not in fh or not bool(fh.attrs.get("berg_complete", False)):
            raise ModelLoadError(f"{path} is incomplete (its conversion was interrupted); delete it so berg converts it again")
        ds = fh[DATASET]
        dtype, stored, chunks, fletcher = ds.dtype, ds.id.get_type(), ds.chunks, ds.fletcher32
        shape = tuple(int(x) for x in fh.attrs["berg_shape"])
        recorded = fh.attrs.get("berg_dtype")
        raw_attrs = {key: value for key, value in fh.attrs.items() if key not in _RESERVED}
        checksummed = fh.id.get_create_plist().get_version()[0] >= 2  # superblock v2+: metadata checksums
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - h5py raises KeyError/OSError/ValueError/TypeError for damaged headers
        raise ModelLoadError(f"{path} is corrupt (its headers cannot be read: {type(exc).__name__}: {exc}); {_FIX}") from exc
    if len(shape) != 2 or shape != tuple(ds.shape) or chunks is None or not fletcher:
        raise ModelLoadError(f"{path} is corrupt (dataset {tuple(ds.shape)}, chunks {chunks}, fletcher32 {fletcher} vs recorded "
                             f"{shape}); {_FIX}")
    if isinstance(recorded, bytes):
        recorded = recorded.decode("ascii", "replace")
    if recorded is not None and str(recorded) != dtype.str:
        raise ModelLoadError(f"{path} is corrupt (its datatype header says {dtype.str}, the file recorded {recorded}); {_FIX}")
    if dtype.kind != "f" or stored != h5py.h5t.py_create(dtype):
        raise ModelLoadError(f"{path} is corrupt (its datatype header is not a standard IEEE {dtype}); {_FIX}")
    attrs = {}
    for key, value in raw_attrs.items():
        try:
            attrs[key] = json.loads(value)
        except (TypeError, ValueError):
            attrs[key] = value
    return MatrixInfo(shape=(shape[0], shape[1]), dtype=dtype, chunk_columns=int(chunks[1]), attrs=attrs,
                      current_format=checksummed and recorded is not None)


def _check(info: MatrixInfo, path: Path | str, dtype: Any, shape: Sequence[int] | None, fix: str) -> None:
    want = None if dtype is None else np.dtype(dtype)
    if (want is not None and info.dtype != want) or (shape is not None and info.shape != tuple(int(n) for n in shape)):
        expected = f"{want or info.dtype} {tuple(shape) if shape is not None else info.shape}"
        raise ModelLoadError(f"{path} holds a {info.dtype} {info.shape} matrix but a {expected} one was recorded for it; {fix}")


def matrix_info(path: Path | str) -> MatrixInfo:
    """Shape, dtype, chunking and attrs of a complete matrix file (``ModelLoadError`` otherwise)."""
    with _open(path) as fh:
        return _info(fh, path)


def check_matrix(path: Path | str, dtype: str | np.dtype | None, shape: Sequence[int] | None = None, *,
                 fix: str = "delete it and rebuild it from its source, or re-fetch it") -> MatrixInfo:
    """The ``MatrixInfo`` of ``path`` after checking it holds a ``dtype`` matrix of ``shape`` (n_rows, n_cols),
    as recorded when it was written (a card, a converter); ``None`` skips that check.

    Raises ``ModelLoadError`` ending with ``fix`` (what the user should do) on a mismatch, and on every
    failure of ``matrix_info`` (missing, incomplete, damaged headers).
    """
    with _open(path) as fh:
        info = _info(fh, path)
    _check(info, path, dtype, shape, fix)
    return info


def is_complete(path: Path | str, expect: Mapping[str, Any] | None = None) -> bool:
    """True when ``path`` is a complete, verified matrix file in the current format whose attrs include
    ``expect`` (equal values)."""
    try:
        info = matrix_info(path)
    except ModelLoadError:
        return False
    return info.current_format and all(info.attrs.get(k) == json.loads(_attr_value(v)) for k, v in (expect or {}).items())


def read_columns(path: Path | str, columns: Sequence[int] | np.ndarray | None = None, *, expect_dtype: str | np.dtype | None = None,
                 expect_shape: Sequence[int] | None = None, fix: str = _FIX) -> np.ndarray:
    """Columns ``columns`` (in the given order; duplicates allowed) of the matrix at ``path``.

    Returns (n_rows, len(columns)) in the file's dtype; ``None`` = all columns. Only the chunks that
    hold a requested column are read, in spans of adjacent chunks (up to ``READ_SPAN_BYTES``), then
    sub-selected in memory. A checksum failure or unreadable chunk raises ``ModelLoadError``, and so
    does a matrix whose dtype/shape differ from ``expect_dtype``/``expect_shape`` (as ``check_matrix``).
    """
    with _open(path) as fh:
        info = _info(fh, path)
        _check(info, path, expect_dtype, expect_shape, fix)
        ds = fh[DATASET]
        n_rows, n_cols = info.shape
        cols = np.arange(n_cols) if columns is None else np.asarray(columns, dtype=np.int64).reshape(-1)
        if cols.size and (cols.min() < 0 or cols.max() >= n_cols):
            raise InvalidParameterError(f"column indices must be in 0..{n_cols - 1}")
        out = np.empty((n_rows, cols.size), dtype=ds.dtype)
        if cols.size == 0:
            return out
        width = info.chunk_columns
        chunk_ids = np.unique(cols // width)
        max_chunks = max(1, READ_SPAN_BYTES // max(1, n_rows * ds.dtype.itemsize * width))
        order = np.argsort(cols, kind="stable")
        sorted_cols = cols[order]
        try:
            for first, last in _spans(chunk_ids, max_chunks):
                c0, c1 = first * width, min(n_cols, (last + 1) * width)
                lo, hi = np.searchsorted(sorted_cols, [c0, c1])
                block = ds[:, c0:c1]
                out[:, order[lo:hi]] = block[:, sorted_cols[lo:hi] - c0]
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ModelLoadError(f"{path} is corrupt (a chunk failed its checksum or could not be read: {exc}); {_FIX}") from exc
        return out


def _spans(chunk_ids: np.ndarray, max_chunks: int) -> Iterator[tuple[int, int]]:
    """Runs of consecutive chunk ids, each at most ``max_chunks`` long, as (first, last) inclusive."""
    start = prev = int(chunk_ids[0])
    for c in chunk_ids[1:]:
        c = int(c)
        if c != prev + 1 or c - start + 1 > max_chunks:
            yield start, prev
            start = c
        prev = c
    yield start, prev


def build_matrix(dest: Path | str, make_source: Callable[[], np.ndarray | ColumnSource], *, attrs: Mapping[str, Any] | None = None,
                 dtype: str | np.dtype = "float32", chunk_columns: int | None = None, block_bytes: int = BLOCK_BYTES,
                 show_progress: bool = False, desc: str | None = None) -> Path:
    """``dest`` as a complete matrix with ``attrs``; converted once from ``make_source()`` if needed.

    Uses ``berg_core.store.cache.build_once``: a file lock (two processes convert once) and a temporary
    file renamed into place. An existing file that is incomplete, unreadable or has other ``attrs``
    (e.g. another source checksum) is rebuilt. ``make_source`` is only called when building.
    """
    from berg_core.store.cache import build_once

    def build(tmp: Path) -> None:
        write_matrix(tmp, make_source(), dtype=dtype, chunk_columns=chunk_columns, block_bytes=block_bytes, attrs=attrs,
                     show_progress=show_progress, desc=desc or f"converting to {Path(dest).name}")

    return build_once(dest, build, lambda p: is_complete(p, attrs))


__all__ = [
    "ArrayColumns",
    "ColumnSource",
    "MatrixInfo",
    "MatrixWriter",
    "RawColumns",
    "build_matrix",
    "check_matrix",
    "default_chunk_columns",
    "is_complete",
    "matrix_info",
    "read_columns",
    "write_matrix",
]
