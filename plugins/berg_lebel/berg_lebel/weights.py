"""BERG's LeBel files -> safe, fast formats in the berg cache (converted once per source file).

* ``weights_{S}.npy`` (a pickled dict; ``ridge_weights`` is (8192, n_voxels), float64 at BERG) becomes a
  float32 HDF5 matrix chunked by voxel columns (``berg_core.store.h5matrix``). The conversion streams: the
  pickle is walked with the allow-list (``berg_core.store.pickled_arrays.load_npy_lazily``), the weight
  block is located in the file, not read, and copied over in column blocks (peak memory ~ one
  256 MB block, not the 6.3 GB array). If the pickle has an unusual layout it falls back to
  ``berg_core.store.safe_pickle.load_npy_object`` (1x the array in memory) and converts chunk by chunk.
* ``metadata_{S}.npy`` (a pickled dict of dicts and arrays) becomes one ``.npz`` (arrays) with its
  structure as JSON inside: loaded with ``allow_pickle=False``, no unpickling after the first time.

Converted files live under ``<cache root>/lebel/`` and are keyed by the source's identity: its
sha256 from the fetch manifest (``berg_dir/.berg-manifest.json``), else its size + mtime. When the
source was deleted after conversion but the manifest still names it, the converted file is used
without fetching it again.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from berg_core import ModelLoadError, build_once, cache_path, load_tree, save_tree
from berg_lebel.plugin import METADATA_FILE, SUBJECTS, WEIGHTS_FILE

if TYPE_CHECKING:
    from berg_core import ColumnSource

CACHE_NS = "lebel"
FORMAT = 1  # bump when the converted layout changes


# ------------------------------------------------------------------------------------------ sources


def _identity(rel: str, path: Path, berg_dir: Path) -> str:
    """sha256 of the source from the fetch manifest when it matches the file, else size + mtime."""
    from berg_core import read_manifest

    st = path.stat()
    rec = read_manifest(berg_dir).get(rel) or {}
    if rec.get("sha256") and rec.get("size") == st.st_size and rec.get("verified_mtime_ns") == st.st_mtime_ns:
        return f"sha256:{rec['sha256']}"
    return f"stat:{st.st_size}:{st.st_mtime_ns}"


def _recorded_identity(rel: str, berg_dir: Path) -> str | None:
    from berg_core import read_manifest

    rec = read_manifest(berg_dir).get(rel) or {}
    return f"sha256:{rec['sha256']}" if rec.get("sha256") else None


def _converted(rel: str, berg_dir: Path, name: str, suffix: str, is_valid: Callable[[Path, str], bool], show_progress: bool) -> tuple[Path, Path | None, str]:
    """(converted path, source path or None when not needed, identity). Fetches the source if needed."""
    from berg_core import ensure_file

    src = berg_dir / rel
    if not src.is_file():
        ident = _recorded_identity(rel, berg_dir)
        if ident is not None:
            dest = _dest(name, ident, suffix)
            if is_valid(dest, ident):
                return dest, None, ident
    src = ensure_file(rel, berg_dir, show_progress=show_progress)
    ident = _identity(rel, src, berg_dir)
    return _dest(name, ident, suffix), src, ident


def _dest(name: str, ident: str, suffix: str) -> Path:
    tag = ident.split(":", 1)[1].replace(":", "-")[:24]
    return cache_path(CACHE_NS, f"{name}.v{FORMAT}.{tag}{suffix}")


# ------------------------------------------------------------------------------------------ weights


def _weights_attrs(rel: str, ident: str) -> dict[str, Any]:
    return {"source": rel, "source_id": ident, "format": FORMAT}


def weights_source(path: Path) -> ColumnSource:
    """A column-block reader over the source's ``ridge_weights`` (streamed when possible)."""
    from berg_core import ArrayColumns, LazyLoadUnsupported, RawArray, load_npy_lazily, load_npy_object

    try:
        data = load_npy_lazily(path)
    except LazyLoadUnsupported:
        data = load_npy_object(path)
    if not isinstance(data, dict) or "ridge_weights" not in data:
        raise ModelLoadError(f"{path} has no 'ridge_weights' entry: it is not BERG's LeBel weights file; delete it and re-fetch it "
                             "with `berg fetch fmri-lebel2023-opt_1_3b`")
    weights = data["ridge_weights"]
    if isinstance(weights, RawArray):
        if weights.ndim != 2 or weights.dtype.kind not in "iuf":
            raise ModelLoadError(f"{path}: ridge_weights is {weights.dtype} {weights.shape}, expected a numeric (n_features, n_voxels) "
                                 "matrix; delete it and re-fetch it with `berg fetch fmri-lebel2023-opt_1_3b`")
        return weights.columns()
    if not isinstance(weights, np.ndarray) or weights.ndim != 2 or weights.dtype.kind not in "iuf":
        got = f"{weights.dtype} {weights.shape}" if isinstance(weights, np.ndarray) else f"a {type(weights).__name__}"
        raise ModelLoadError(f"{path}: ridge_weights is {got}, expected a numeric (n_features, n_voxels) matrix; delete it and "
                             "re-fetch it with `berg fetch fmri-lebel2023-opt_1_3b`")
    return ArrayColumns(weights)


def converted_weights(subject: str, berg_dir: Path, *, show_progress: bool = True) -> Path:
    """The subject's weights as a float32 column-chunked HDF5 (fetched and converted if needed)."""
    from berg_core import build_matrix, is_complete

    rel = WEIGHTS_FILE.format(subject=subject)
    dest, src, ident = _converted(rel, Path(berg_dir), f"weights_{subject}", ".h5",
                                  lambda p, i: is_complete(p, _weights_attrs(rel, i)), show_progress)
    if src is None:
        return dest
    return build_matrix(dest, lambda: weights_source(src), attrs=_weights_attrs(rel, ident), show_progress=show_progress,
                        desc=f"converting weights_{subject}.npy to HDF5")


def weights_shape(subject: str, berg_dir: Path, *, show_progress: bool = True) -> tuple[int, int]:
    """(n_features, n_voxels) of the converted weights."""
    from berg_core import matrix_info

    return matrix_info(converted_weights(subject, berg_dir, show_progress=show_progress)).shape


def load_weight_columns(subject: str, berg_dir: Path, columns: np.ndarray | None, *, show_progress: bool = True) -> np.ndarray:
    """W[:, columns] as float32 (n_features, len(columns)); a corrupt converted file is rebuilt once."""
    from berg_core import read_columns

    path = converted_weights(subject, berg_dir, show_progress=show_progress)
    try:
        return read_columns(path, columns)
    except ModelLoadError:
        _unlink(path)  # our own cache file: convert again from the (verified) source
        return read_columns(converted_weights(subject, berg_dir, show_progress=show_progress), columns)


# ----------------------------------------------------------------------------------------- metadata


def _write_metadata_npz(src: Path, tmp: Path) -> None:
    from berg_core import load_npy_object

    data = load_npy_object(src)
    if not isinstance(data, dict):
        raise ModelLoadError(f"{src} holds a {type(data).__name__}, not BERG's metadata dict; delete it and re-fetch it "
                             "with `berg fetch fmri-lebel2023-opt_1_3b`")
    save_tree(tmp, data)


def _read_metadata_npz(path: Path) -> dict[str, Any]:
    metadata: dict[str, Any] = load_tree(path)
    return metadata


def _npz_ok(path: Path, ident: str | None = None) -> bool:
    try:
        _read_metadata_npz(path)
    except (OSError, ValueError, KeyError, EOFError, ModelLoadError):
        return False
    return True


def load_metadata_dict(subject: str, berg_dir: Path, *, show_progress: bool = True) -> dict[str, Any]:
    """BERG's metadata dict for ``subject`` (``fmri``, ``roi``, ``encoding_model``), via the converted npz."""
    rel = METADATA_FILE.format(subject=subject)
    dest, src, _ = _converted(rel, Path(berg_dir), f"metadata_{subject}", ".npz", _npz_ok, show_progress)
    if src is not None:
        build_once(dest, lambda tmp: _write_metadata_npz(src, tmp), lambda p: p.is_file())
    try:
        return _read_metadata_npz(dest)
    except (OSError, ValueError, KeyError, EOFError, ModelLoadError):
        _unlink(dest)
        if src is None:
            return load_metadata_dict(subject, berg_dir, show_progress=show_progress)
        build_once(dest, lambda tmp: _write_metadata_npz(src, tmp), lambda p: p.is_file())
        return _read_metadata_npz(dest)


def load_metadata(spec: Any, subject: str | None, berg_dir: Path) -> dict[str, Any]:
    """The ``EncoderSpec.metadata`` loader: the subject's metadata dict, no backbone loaded."""
    return load_metadata_dict(str(subject), Path(berg_dir), show_progress=True)


def n_voxels(metadata: dict[str, Any]) -> int | None:
    """The subject's voxel count from its metadata (``fmri.n_voxels``), if present."""
    fmri = metadata.get("fmri") if isinstance(metadata, dict) else None
    value = fmri.get("n_voxels") if isinstance(fmri, dict) else None
    return int(value) if value is not None else None


def roi_masks(metadata: dict[str, Any], subject: str) -> dict[str, np.ndarray]:
    """The subject's ROIs from its metadata (``roi``: name -> 0/1 mask), each a boolean (n_voxels,) mask."""
    table = metadata.get("roi") or {}
    try:
        if not isinstance(table, dict):
            raise TypeError(f"'roi' is a {type(table).__name__}, not a dict of masks")
        return {str(name): np.asarray(mask).astype(bool).reshape(-1) for name, mask in table.items()}
    except (TypeError, ValueError) as exc:
        raise ModelLoadError(f"the ROI masks in {subject}'s metadata are damaged ({exc}); delete the metadata file and re-fetch it "
                             "with `berg fetch fmri-lebel2023-opt_1_3b`") from exc


def prepare(spec: Any, subject: str | None, berg_dir: Path, show_progress: bool = True) -> None:
    """``berg fetch`` hook: convert the fetched files now so the first load is fast."""
    for s in SUBJECTS if subject is None else (str(subject),):
        load_metadata_dict(s, Path(berg_dir), show_progress=show_progress)
        converted_weights(s, Path(berg_dir), show_progress=show_progress)
        space_files(s, show_progress=show_progress)


def space_files(subject: str, show_progress: bool = False) -> tuple[Path, Path]:
    """The subject's pycortex ``mask_thick.nii.gz`` and ``reference.nii.gz`` (OpenNeuro ds003020; fetched on first
    use into berg's cache, checked by size and MD5; ``$BERG_OPENNEURO_URL`` overrides the base URL)."""
    from berg_core import ExternalFile, ensure_external_file
    from berg_lebel.plugin import MASK_FILES, MODEL_ID, PYCORTEX_DIR, REFERENCE_FILES

    folder = PYCORTEX_DIR.format(subject=subject)
    paths = []
    for name, table in (("mask_thick.nii.gz", MASK_FILES), ("reference.nii.gz", REFERENCE_FILES)):
        size, md5 = table[subject]
        paths.append(ensure_external_file(ExternalFile(folder + name, size, md5), show_progress=show_progress, model_id=MODEL_ID))
    return paths[0], paths[1]


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
