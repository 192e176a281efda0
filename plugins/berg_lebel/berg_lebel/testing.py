"""Fixture files in BERG's exact LeBel formats, for tests and benchmarks (no network).

* ``write_weights_npy`` / ``write_metadata_npy``: ``np.save(path, dict)`` as BERG writes them.
* ``write_streamed_weights_npy``: the same file format for a matrix too big to hold in memory (the
  benchmark's 8192 x 95,556 float64 file): the pickle is written by a pure-Python pickler whose array
  payload comes from a generator of row blocks. For the same matrix it writes the same bytes as
  ``np.save`` (a test checks it).
* ``make_berg_tree``: weights + metadata for several subjects in BERG's folder layout.
"""

from __future__ import annotations

import io
import pickle
import struct
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from berg_lebel.plugin import METADATA_FILE, WEIGHTS_FILE


def provenance(hidden: int, layer: int = 18, model_name: str = "facebook/opt-1.3b") -> dict[str, Any]:
    """The non-array fields BERG stores next to ``ridge_weights``."""
    return {"model_name": model_name, "layer": layer, "hidden_dim": hidden, "ndelays": 4, "trim_start": 10, "trim_end": 5,
            "context_min_words": 256, "context_max_words": 512}


def write_weights_npy(path: Path | str, weights: np.ndarray, alphas: np.ndarray | None = None, **extra: Any) -> Path:
    """``np.save(path, {"ridge_weights": W, "ridge_alphas": a, <provenance>})`` (BERG's weights file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n_cols = weights.shape[1]
    alphas = np.full(n_cols, 100.0) if alphas is None else alphas
    np.save(path, {"ridge_weights": weights, "ridge_alphas": alphas, **provenance(weights.shape[0] // 4), **extra})
    return path


def make_metadata(subject: str, n_voxels: int, rois: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, Any]:
    """A metadata dict shaped like BERG's (fmri / roi / encoding_model)."""
    nc = np.maximum(rng.random(n_voxels), 0.25)
    corr = rng.uniform(-0.1, 0.5, n_voxels)
    return {
        "fmri": {"subject_id": subject, "n_voxels": n_voxels, "tr": 2.0, "voxel_size_mm": 2.6},
        "roi": {name: np.asarray(mask, dtype=bool) for name, mask in rois.items()},
        "encoding_model": {
            "train_stories": [f"story{i:02d}" for i in range(5)],
            "test_stories": ["wheretheressmoke"],
            "noise_ceiling": nc,
            "correlation": corr,
            "ridge_alphas": np.full(n_voxels, 100.0),
            "cc_norm": corr / nc,
        },
    }


def write_metadata_npy(path: Path | str, metadata: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, metadata)
    return path


def make_berg_tree(root: Path | str, subjects: Sequence[str], *, hidden: int, n_voxels: int | dict[str, int],
                   seed: int = 0, scale: float | None = None) -> dict[str, tuple[np.ndarray, dict[str, Any]]]:
    """Write weights (4·hidden, n_voxels) float64 and metadata for ``subjects`` under ``root`` in BERG's layout.

    ROIs: ``AC`` (voxels 0..n/4), ``Broca`` (every 3rd voxel), ``V1`` (the last 5). Returns
    {subject: (weights, metadata)}. Weights ~ N(0, scale²), scale default 1/sqrt(4·hidden).
    """
    rng = np.random.default_rng(seed)
    out = {}
    for subject in subjects:
        n = n_voxels[subject] if isinstance(n_voxels, dict) else n_voxels
        w = rng.normal(0.0, scale or 1.0 / np.sqrt(4 * hidden), size=(4 * hidden, n))
        rois = {"AC": np.arange(n) < max(1, n // 4), "Broca": np.arange(n) % 3 == 1, "V1": np.arange(n) >= n - 5}
        meta = make_metadata(subject, n, rois, rng)
        write_weights_npy(Path(root) / WEIGHTS_FILE.format(subject=subject), w)
        write_metadata_npy(Path(root) / METADATA_FILE.format(subject=subject), meta)
        out[subject] = (w, meta)
    return out


# ------------------------------------------------------------------ streamed writer (big synthetic files)


class _StreamedBytes:
    """A bytes payload of ``nbytes`` produced block by block (never held whole)."""

    def __init__(self, nbytes: int, blocks: Callable[[], Iterator[bytes | memoryview]]) -> None:
        self.nbytes = nbytes
        self.blocks = blocks


class _StreamedArray:
    """Pickles exactly like ``ndarray.__reduce__`` of a C-order array, with a streamed payload."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, payload: _StreamedBytes) -> None:
        self.shape, self.dtype, self.payload = shape, dtype, payload

    def __reduce__(self) -> tuple[Any, ...]:
        fn, args, _state = np.zeros(1).__reduce__()
        return fn, args, (1, self.shape, self.dtype, False, self.payload)


class _Pickler(pickle._Pickler):  # type: ignore[name-defined]  # noqa: SLF001 - pure-Python pickler to stream bytes
    dispatch = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]

    def save_streamed(self, obj: _StreamedBytes) -> None:
        n = obj.nbytes
        header = (pickle.BINBYTES8 + struct.pack("<Q", n)) if n > 0xFFFFFFFF else (pickle.BINBYTES + struct.pack("<I", n))
        if self.framer.current_frame:
            self.framer.commit_frame(force=True)
        write = self.framer.file_write
        write(header)
        written = 0
        for block in obj.blocks():
            write(block)
            written += len(memoryview(block).cast("B"))
        if written != n:
            raise ValueError(f"payload generator gave {written} bytes, expected {n}")
        self.memoize(obj)

    dispatch[_StreamedBytes] = save_streamed


def write_streamed_weights_npy(path: Path | str, shape: tuple[int, int], row_block: Callable[[int, int], np.ndarray], *,
                               dtype: str = "float64", rows_per_block: int = 256, **extra: Any) -> Path:
    """Write BERG's weights file for a (n_rows, n_cols) matrix given by ``row_block(r0, r1)`` (C order).

    Peak memory: one row block. ``ridge_alphas`` is ones; provenance fields as ``provenance()``.
    """
    path = Path(path)
    dt = np.dtype(dtype)
    n_rows, n_cols = shape

    def blocks() -> Iterator[memoryview]:
        for r0 in range(0, n_rows, rows_per_block):
            r1 = min(n_rows, r0 + rows_per_block)
            block = np.ascontiguousarray(row_block(r0, r1), dtype=dt)
            if block.shape != (r1 - r0, n_cols):
                raise ValueError(f"row_block({r0}, {r1}) gave shape {block.shape}")
            yield memoryview(block).cast("B")

    big = _StreamedArray((n_rows, n_cols), dt, _StreamedBytes(n_rows * n_cols * dt.itemsize, blocks))
    data = {"ridge_weights": big, "ridge_alphas": np.ones(n_cols), **provenance(n_rows // 4), **extra}
    holder = np.empty((), dtype=object)
    holder[()] = data
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|O", "fortran_order": False, "shape": ()})
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(header.getvalue())
        _Pickler(fh, protocol=4).dump(holder)
    return path
