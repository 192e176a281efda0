"""BERG's Tuckute files -> safe cached arrays (each source file unpickled once, never again).

Sources (paths relative to berg_dir, fetched on first use by ``berg_core.store.fetch.ensure_file``):

* the RidgeCV pickle: a dict ``{"clf": RidgeCV, "neuroid_order": ROI names, "X_scaler": None,
  "y_scaler": None}``; read through berg's allow-list unpickler (sklearn is never imported; the
  estimator comes back as a plain attribute holder) and converted to
  ``<cache>/tuckute/readout-<key>.npz``: ``coef`` (n_roi, n_features) float64, ``intercept`` (n_roi,)
  float64, ``neuroid_order`` (n_roi,) unicode, ``alpha`` (n_roi,) float64;
* ``metadata.npy``: a pickled dict in a ``.npy``; converted to ``<cache>/tuckute/metadata-<key>.npz``
  (see ``berg_core.store.safe_store``).

``<key>`` hashes the source file's sha256 and size and the converter version, so a re-fetched or
changed file is converted again; ``build_once`` makes two processes convert it once. Given ``berg_dir``,
that sha256 is also compared with the one recorded when the file was fetched
(``berg_core.store.fetch.verify_recorded``): a source damaged on disk is refused, not converted or used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from berg_core import (
    EncoderSpec,
    LinearReadout,
    ModelLoadError,
    build_once,
    cache_key,
    cache_path,
    ensure_file,
    is_valid_tree,
    load_tree,
    save_tree,
    sha256_file,
    verify_recorded,
)
from berg_tuckute.plugin import METADATA_PATH, MODEL_ID, WEIGHTS_PATH

CACHE_NAMESPACE = "tuckute"
FORMAT_VERSION = 1  # bump when the converted layout changes
_READOUT_KEYS = ("coef", "intercept", "neuroid_order", "alpha")
_REFETCH = f"delete it and run `berg fetch {MODEL_ID}` to download it again"


@dataclass(frozen=True)
class Readout(LinearReadout):
    """BERG's Tuckute readout as stored: ``prediction = features @ coef.T + intercept``, in float64.

    ``coef``: (n_roi, n_features) float64; ``intercept``: (n_roi,) float64 (z units); ``output_names``
    (also ``rois``): ROI name of each row; ``alpha``: (n_roi,) ridge penalty per ROI (information only).
    ``predict`` returns float64, as BERG's scikit-learn ``RidgeCV.predict`` does; ``select`` keeps ``alpha``.
    """

    alpha: np.ndarray

    out_dtype: ClassVar[type[np.floating[Any]]] = np.float64
    per_output: ClassVar[tuple[str, ...]] = ("coef", "intercept", "alpha")

    @property
    def rois(self) -> tuple[str, ...]:
        return self.output_names


# -------------------------------------------------------------------------------------- readout


def read_berg_readout(path: Path | str) -> Readout:
    """Read BERG's RidgeCV pickle (allow-list unpickler, no sklearn) into a ``Readout``."""
    from berg_core import load_pickle

    obj = load_pickle(path)
    if not isinstance(obj, dict) or "clf" not in obj or "neuroid_order" not in obj:
        got = sorted(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__
        raise ModelLoadError(f"{path} is not BERG's Tuckute mapping (expected a dict with 'clf' and 'neuroid_order', got {got}); {_REFETCH}")
    for scaler in ("X_scaler", "y_scaler"):
        if obj.get(scaler) is not None:
            raise ModelLoadError(f"{path} has a {scaler}, which BERG's Tuckute model does not use; this is not BERG's file: {_REFETCH}")
    clf = obj["clf"]
    try:
        coef, intercept = clf.coef_, clf.intercept_
    except AttributeError as exc:
        raise ModelLoadError(f"the estimator in {path} has no coef_/intercept_ ({exc}); {_REFETCH}") from exc
    for name, value in (("coef_", coef), ("intercept_", intercept)):
        if not isinstance(value, (np.ndarray, np.floating, float)) or (isinstance(value, np.ndarray) and value.dtype.kind != "f"):
            raise ModelLoadError(f"{path}: the estimator's {name} is a {type(value).__name__}, not a float array; {_REFETCH}")
    coef, intercept = np.array(coef, dtype=np.float64), np.array(intercept, dtype=np.float64)
    try:
        rois = tuple(str(r) for r in np.asarray(obj["neuroid_order"]).ravel().tolist())
    except (TypeError, ValueError) as exc:
        raise ModelLoadError(f"{path}: neuroid_order is not a list of ROI names ({exc}); {_REFETCH}") from exc
    if coef.ndim == 1:  # a single-target fit
        coef = coef[None, :]
    if intercept.size == 1 and coef.shape[0] == 1:  # a single-target fit stores a scalar intercept_
        intercept = intercept.reshape(1)
    if coef.ndim != 2 or intercept.shape != (coef.shape[0],) or len(rois) != coef.shape[0]:
        raise ModelLoadError(f"{path}: coef_ {coef.shape}, intercept_ {intercept.shape} and {len(rois)} ROI names do not match; {_REFETCH}")
    if not (np.all(np.isfinite(coef)) and np.all(np.isfinite(intercept))):
        raise ModelLoadError(f"{path} holds NaN/inf weights; {_REFETCH}")
    alpha = np.asarray(getattr(clf, "alpha_", np.nan), dtype=np.float64).ravel()
    alpha = np.full(coef.shape[0], alpha[0]) if alpha.size == 1 else alpha if alpha.size == coef.shape[0] else np.full(coef.shape[0], np.nan)
    return Readout(coef, intercept, rois, alpha)


def _key(src: Path, berg_dir: Path | None) -> str:
    """The cache key of source ``src``; its sha256 checked against the fetch record when ``berg_dir`` is given."""
    digest = sha256_file(src)
    if berg_dir is not None:
        verify_recorded(src, berg_dir, digest, MODEL_ID)
    return cache_key(kind="readout" if src.suffix == ".pkl" else "metadata", sha256=digest,
                     size=src.stat().st_size, version=FORMAT_VERSION)


def readout_cache_file(src: Path, berg_dir: Path | None = None) -> Path:
    """The converted readout of BERG pickle ``src`` (in ``berg_dir``, whose fetch record it must match), converted
    now if not cached."""
    dest = cache_path(CACHE_NAMESPACE, f"readout-{_key(src, berg_dir)}.npz")

    def build(tmp: Path) -> None:
        r = read_berg_readout(src)
        with open(tmp, "wb") as fh:
            np.savez(fh, coef=r.coef, intercept=r.intercept, neuroid_order=np.array(r.rois, dtype=str), alpha=r.alpha)

    return build_once(dest, build, _readout_valid)


def _readout_valid(path: Path) -> bool:
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            return all(f"{k}.npy" in zf.namelist() for k in _READOUT_KEYS)
    except (OSError, zipfile.BadZipFile):
        return False


def load_readout(berg_dir: Path, *, show_progress: bool = True) -> Readout:
    """The readout of all six ROIs (the weight file fetched and converted on first use)."""
    src = ensure_file(WEIGHTS_PATH, Path(berg_dir), show_progress=show_progress, model_id=MODEL_ID)
    with np.load(readout_cache_file(src, Path(berg_dir)), allow_pickle=False) as npz:
        return Readout(npz["coef"], npz["intercept"], tuple(str(r) for r in npz["neuroid_order"]), npz["alpha"])


# ------------------------------------------------------------------------------------- metadata


def metadata_cache_file(src: Path, berg_dir: Path | None = None) -> Path:
    """The converted metadata of BERG's ``metadata.npy`` ``src`` (in ``berg_dir``, whose fetch record it must
    match), converted now if not cached."""
    from berg_core import load_npy_object

    dest = cache_path(CACHE_NAMESPACE, f"metadata-{_key(src, berg_dir)}.npz")

    def build(tmp: Path) -> None:
        data = load_npy_object(src)
        if not isinstance(data, dict):
            raise ModelLoadError(f"{src} holds a {type(data).__name__}, not BERG's metadata dict; {_REFETCH}")
        save_tree(tmp, data)

    return build_once(dest, build, is_valid_tree)


def load_metadata(spec: EncoderSpec, subject: str | None, berg_dir: Path) -> dict[str, Any]:
    """BERG's metadata dict (``rois``, ``noise_ceiling``, ``optimal_layer``, train/drive/suppress sentences, ...).

    No backbone is loaded; the file is fetched and converted on first use, later calls read the cache.
    """
    src = ensure_file(METADATA_PATH, Path(berg_dir), show_progress=True, model_id=MODEL_ID)
    metadata: dict[str, Any] = load_tree(metadata_cache_file(src, Path(berg_dir)))
    return metadata


def prepare(spec: EncoderSpec, subject: str | None, berg_dir: Path, show_progress: bool) -> None:
    """Run by ``berg fetch``: convert both files now so the first load unpickles nothing."""
    berg_dir = Path(berg_dir)
    readout_cache_file(ensure_file(WEIGHTS_PATH, berg_dir, show_progress=show_progress, model_id=MODEL_ID), berg_dir)
    metadata_cache_file(ensure_file(METADATA_PATH, berg_dir, show_progress=show_progress, model_id=MODEL_ID), berg_dir)
