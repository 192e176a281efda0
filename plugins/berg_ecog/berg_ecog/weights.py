"""BERG's ECoG files -> safe cached trees (each source file unpickled once, through berg's allow-list).

Sources (relative to berg_dir, fetched on first use by ``ensure_file``), both ``np.save`` of a pickled dict:

* ``weights_sub-SS.npy``: ``scaler_X_param`` {``mean_``, ``scale_``, ``var_`` (1600,), ...}, ``scaler_Y_param``
  {the same, (n_e·129,)}, ``ridge_param`` {``coef_`` (1600, n_e·129) (features x targets, himalaya's layout),
  ``intercept_`` (n_e·129,), ``best_alphas_``}, ``shape`` {``n_electrodes``, ``n_lags``}; target column
  ``e·n_lags + k`` is electrode e at lag k (electrode-major);
* ``metadata_sub-SS.npy``: ``ecog`` {``subject_id``, ``n_electrodes``, ``n_lags``, ``sfreq``, ``tmin``, ``tmax``,
  ``times`` (n_lags,), ``ch_names`` (n_e,), ``ch_coords`` (n_e, 3)}, ``encoding_model`` {``correlation_results``
  (n_e, n_lags)}.

Each is converted to ``<cache>/ecog/<kind>-<key>.npz`` (``save_tree``; read back with ``allow_pickle=False``),
``<key>`` hashing the source's sha256 and size and ``FORMAT_VERSION``; the sha256 is also checked against the
fetch record. A file that is not BERG's layout is one ``ModelLoadError`` line naming ``berg fetch``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from berg_core import (
    EncoderSpec,
    ModelLoadError,
    build_once,
    cache_key,
    cache_path,
    ensure_file,
    is_valid_tree,
    load_npy_object,
    load_tree,
    save_tree,
    sha256_file,
    verify_recorded,
)
from berg_ecog.plugin import METADATA_PATH, MODEL_ID, WEIGHTS_PATH

CACHE_NAMESPACE = "ecog"
FORMAT_VERSION = 1  # bump when the converted layout changes
F64 = NDArray[np.float64]
ROWS_PER_BLOCK = 256  # words per block of the readout (256 x 30,315 targets x 8 B = 62 MB for the largest subject)


def _refetch(subject: str | None) -> str:
    return f"delete it and run `berg fetch {MODEL_ID}{f' --subject {subject}' if subject else ''}` to download it again"


@dataclass(frozen=True)
class Readout:
    """BERG's ECoG readout for the selected targets (float64 scalers, float32 ridge weights as trained).

    ``mean_x``/``scale_x``: (n_features,); ``coef``: (n_features, n_targets) float32; ``intercept``, ``mean_y``,
    ``scale_y``: (n_targets,); targets = the selected (electrode, lag) pairs, electrode-major.
    """

    mean_x: F64
    scale_x: F64
    coef: NDArray[np.float32]
    intercept: F64
    mean_y: F64
    scale_y: F64

    @property
    def n_features(self) -> int:
        return int(self.coef.shape[0])

    def predict(self, features: NDArray[Any]) -> NDArray[np.float32]:
        """(n, n_features) word features -> (n, n_targets) float32 responses in the data's high-gamma units.

        ``X = (x − mean_X)/scale_X`` (float64, cast to float32 as BERG does); ``Ŷ = X @ coef + intercept``;
        ``Y = Ŷ·scale_Y + mean_Y`` (StandardScaler.inverse_transform).
        """
        features = np.asarray(features)
        out = np.empty((len(features), self.coef.shape[1]), dtype=np.float32)
        for start in range(0, len(features), ROWS_PER_BLOCK):  # bounded float64 temporaries for long transcripts
            x = ((np.asarray(features[start:start + ROWS_PER_BLOCK], dtype=np.float64) - self.mean_x) / self.scale_x).astype(np.float32)
            y = (x @ self.coef).astype(np.float64) + self.intercept
            out[start:start + len(x)] = y * self.scale_y + self.mean_y
        return out


def target_columns(electrodes: NDArray[np.int64], lags: NDArray[np.int64], n_lags: int) -> NDArray[np.int64]:
    """Columns of the flat targets for every selected electrode x every selected lag: ``e·n_lags + k``,
    electrode-major (each electrode's lags together), shape (len(electrodes)·len(lags),)."""
    return (np.asarray(electrodes, dtype=np.int64)[:, None] * int(n_lags) + np.asarray(lags, dtype=np.int64)[None, :]).ravel()


# ------------------------------------------------------------------------------------- reading


def _get(tree: Any, path: tuple[str, ...], src: Path, subject: str | None) -> Any:
    node = tree
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            raise ModelLoadError(f"{src} is not BERG's ECoG file: it lacks {'/'.join(path)}; {_refetch(subject)}")
        node = node[key]
    return node


def _floats(value: Any, name: str, shape: tuple[int, ...], src: Path, subject: str | None) -> NDArray[Any]:
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu" or arr.shape != shape:
        raise ModelLoadError(f"{src}: {name} is a {arr.dtype} array of shape {arr.shape}, expected {shape} numbers; {_refetch(subject)}")
    if not np.all(np.isfinite(arr)):
        raise ModelLoadError(f"{src}: {name} holds NaN/inf; {_refetch(subject)}")
    return arr


def read_berg_weights(src: Path, subject: str | None = None) -> dict[str, Any]:
    """BERG's ``weights_sub-SS.npy`` (safe unpickler) -> checked arrays: ``mean_x``, ``scale_x`` (d,) float64,
    ``coef`` (d, n_e·n_l) float32, ``intercept``, ``mean_y``, ``scale_y`` (n_e·n_l,) float64, ``best_alphas``,
    ``n_electrodes``, ``n_lags``."""
    obj = load_npy_object(src)
    n_e = int(_get(obj, ("shape", "n_electrodes"), src, subject))
    n_l = int(_get(obj, ("shape", "n_lags"), src, subject))
    coef = np.asarray(_get(obj, ("ridge_param", "coef_"), src, subject))
    if coef.ndim != 2 or n_e < 1 or n_l < 1 or coef.shape[1] != n_e * n_l:
        raise ModelLoadError(f"{src}: ridge coef_ has shape {coef.shape}, expected (n_features, {n_e} electrodes x {n_l} lags); "
                             f"{_refetch(subject)}")
    d, t = coef.shape
    out: dict[str, Any] = {"n_electrodes": n_e, "n_lags": n_l,
                           "coef": _floats(coef, "ridge coef_", (d, t), src, subject).astype(np.float32)}
    for name, path, size in (("mean_x", ("scaler_X_param", "mean_"), d), ("scale_x", ("scaler_X_param", "scale_"), d),
                             ("mean_y", ("scaler_Y_param", "mean_"), t), ("scale_y", ("scaler_Y_param", "scale_"), t),
                             ("intercept", ("ridge_param", "intercept_"), t)):
        out[name] = _floats(_get(obj, path, src, subject), "/".join(path), (size,), src, subject).astype(np.float64)
    for name in ("scale_x", "scale_y"):
        if np.any(out[name] == 0):
            raise ModelLoadError(f"{src}: a StandardScaler scale_ is 0 (scikit-learn stores 1 there); {_refetch(subject)}")
    alphas = obj["ridge_param"].get("best_alphas_")
    out["best_alphas"] = np.asarray(alphas, dtype=np.float64).reshape(-1) if alphas is not None else np.full(t, np.nan)
    return out


def read_berg_metadata(src: Path, subject: str | None = None) -> dict[str, Any]:
    """BERG's ``metadata_sub-SS.npy`` (safe unpickler) -> ``{"ecog": {...}, "encoding_model": {...}}`` with
    ``ch_names`` (n_e,) str, ``ch_coords`` (n_e, 3) float64, ``times`` (n_lags,) float64 seconds,
    ``correlation_results`` (n_e, n_lags) float64 (absent: NaN)."""
    obj = load_npy_object(src)
    ecog = _get(obj, ("ecog",), src, subject)
    n_e = int(_get(obj, ("ecog", "n_electrodes"), src, subject))
    n_l = int(_get(obj, ("ecog", "n_lags"), src, subject))
    names = np.asarray(_get(obj, ("ecog", "ch_names"), src, subject))
    if names.shape != (n_e,):
        raise ModelLoadError(f"{src}: ch_names has shape {names.shape}, expected ({n_e},); {_refetch(subject)}")
    out_ecog = {key: (value.item() if isinstance(value, np.generic) else value) for key, value in ecog.items()
                if isinstance(value, (str, int, float, np.generic))}
    out_ecog.update(n_electrodes=n_e, n_lags=n_l, ch_names=np.array([str(n) for n in names.tolist()], dtype=str),
                    times=_floats(_get(obj, ("ecog", "times"), src, subject), "ecog/times", (n_l,), src, subject).astype(np.float64),
                    ch_coords=np.asarray(ecog.get("ch_coords", np.full((n_e, 3), np.nan)), dtype=np.float64).reshape(n_e, -1))
    model = obj.get("encoding_model") if isinstance(obj.get("encoding_model"), Mapping) else {}
    corr = np.asarray(model.get("correlation_results", np.full((n_e, n_l), np.nan)), dtype=np.float64)
    if corr.shape != (n_e, n_l):
        raise ModelLoadError(f"{src}: correlation_results has shape {corr.shape}, expected ({n_e}, {n_l}); {_refetch(subject)}")
    return {"ecog": out_ecog, "encoding_model": {"correlation_results": corr}}


# ------------------------------------------------------------------------------------- caching


def _converted(kind: str, rel: str, berg_dir: Path, subject: str, show_progress: bool) -> Any:
    """The converted tree of BERG file ``rel`` (fetched if missing; converted once per source sha256)."""
    src = ensure_file(rel, berg_dir, show_progress=show_progress, model_id=MODEL_ID)
    digest = sha256_file(src)
    verify_recorded(src, berg_dir, digest, MODEL_ID)
    key = cache_key(kind=kind, sha256=digest, size=src.stat().st_size, version=FORMAT_VERSION)
    reader = read_berg_weights if kind == "weights" else read_berg_metadata

    def build(tmp: Path) -> None:
        try:
            tree = reader(src, subject)
        except (TypeError, ValueError, AttributeError, KeyError) as exc:  # a layout the checks did not foresee
            raise ModelLoadError(f"{src} is not BERG's ECoG {kind} file ({type(exc).__name__}: {exc}); {_refetch(subject)}") from exc
        save_tree(tmp, tree)

    return load_tree(build_once(cache_path(CACHE_NAMESPACE, f"{kind}-{key}.npz"), build, is_valid_tree))


def load_weights(berg_dir: Path, subject: str, *, show_progress: bool = True) -> dict[str, Any]:
    """The subject's converted weights (see ``read_berg_weights``)."""
    return dict(_converted("weights", WEIGHTS_PATH.format(subject=subject), Path(berg_dir), subject, show_progress))


def load_subject_metadata(berg_dir: Path, subject: str, *, show_progress: bool = True) -> dict[str, Any]:
    """The subject's converted metadata (see ``read_berg_metadata``)."""
    return dict(_converted("metadata", METADATA_PATH.format(subject=subject), Path(berg_dir), subject, show_progress))


def load_metadata(spec: EncoderSpec, subject: str | None, berg_dir: Path) -> dict[str, Any]:
    """BERG's metadata of ``subject`` (``get_model_metadata``): ``ecog`` (electrode names, coordinates, lag times),
    ``encoding_model`` (``correlation_results``), plus ``model_id`` and the spec's display facts."""
    if subject is None:
        return {"model_id": spec.model_id, **spec.info}
    meta = load_subject_metadata(Path(berg_dir), subject)
    return {"model_id": spec.model_id, "subject": subject, **meta}


def prepare(spec: EncoderSpec, subject: str | None, berg_dir: Path, show_progress: bool) -> None:
    """``berg fetch``: convert the subject's two files now, so the first load does not."""
    if subject is not None:
        load_subject_metadata(Path(berg_dir), subject, show_progress=show_progress)
        load_weights(Path(berg_dir), subject, show_progress=show_progress)
