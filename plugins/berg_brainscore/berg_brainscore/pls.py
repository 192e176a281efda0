"""The PLS map from model activations to one subject's voxels, stored without pickle.

``fit_map(X, Y)`` fits sklearn ``PLSRegression(n_components=25, scale=False)`` and keeps what its
``predict`` uses: ``y = (x - x_mean) @ coef.T + intercept`` (sklearn >= 1.3: ``coef_`` is
(n_targets, n_features) and already divided by ``x_std``; ``intercept_`` = ``y_mean``). The map is written
as an ``.npz`` (float64 arrays, unicode neuroid ids, a JSON string of facts) and read back with
``allow_pickle=False``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from berg_core import InvalidParameterError

N_COMPONENTS = 25
FORMAT_VERSION = 1
_ARRAYS = ("x_mean", "x_std", "y_mean", "y_std", "coef", "intercept")


@dataclass(frozen=True)
class PLSMap:
    """A fitted map: x_mean/x_std (n_features,), y_mean/y_std/intercept (n_targets,), coef (n_targets, n_features)."""

    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: np.ndarray
    y_std: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    neuroid_ids: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return int(self.coef.shape[1])

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(n, n_features) activations -> (n, n_targets) predicted responses (float64), sklearn's formula."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise InvalidParameterError(f"activations of shape {x.shape} do not fit a PLS map trained on {self.n_features} features "
                                        "(the model's layer changed?); delete the cached map and load again")
        out: np.ndarray = (x - self.x_mean) @ self.coef.T + self.intercept
        return out


def fit_map(x: np.ndarray, y: np.ndarray, neuroid_ids: np.ndarray, info: dict[str, Any] | None = None,
            n_components: int = N_COMPONENTS) -> PLSMap:
    """Fit ``PLSRegression(n_components, scale=False)`` on x (n, n_features) -> y (n, n_targets)."""
    from sklearn.cross_decomposition import PLSRegression

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    limit = min(x.shape[0], x.shape[1])
    if n_components > limit:
        raise InvalidParameterError(f"PLS with {n_components} components needs at least that many features and samples; "
                                    f"got {x.shape[0]} samples x {x.shape[1]} features")
    est = PLSRegression(n_components=n_components, scale=False).fit(x, y)
    coef = np.asarray(est.coef_, dtype=np.float64)
    if coef.shape != (y.shape[1], x.shape[1]):
        raise RuntimeError(f"unexpected PLSRegression.coef_ shape {coef.shape}; berg needs scikit-learn >= 1.3")
    import sklearn

    return PLSMap(x_mean=np.asarray(est._x_mean, dtype=np.float64), x_std=np.asarray(est._x_std, dtype=np.float64),
                  y_mean=np.asarray(est._y_mean, dtype=np.float64), y_std=np.asarray(est._y_std, dtype=np.float64),
                  coef=coef, intercept=np.asarray(est.intercept_, dtype=np.float64).reshape(-1),
                  neuroid_ids=np.asarray(neuroid_ids).astype(str),
                  info={**(info or {}), "n_components": n_components, "scale": False, "sklearn": sklearn.__version__,
                        "n_samples": int(x.shape[0]), "format": FORMAT_VERSION})


def save_map(pls: PLSMap, path: Path) -> None:
    """Write ``pls`` to ``path`` as an uncompressed .npz (through a file object: no suffix is added)."""
    with open(path, "wb") as f:
        np.savez(f, **{name: getattr(pls, name) for name in _ARRAYS}, neuroid_ids=pls.neuroid_ids.astype(str),
                 info=np.array(json.dumps(pls.info, sort_keys=True)))


def load_map(path: Path) -> PLSMap:
    """Read a map written by ``save_map`` (no pickle)."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {name: np.array(z[name]) for name in _ARRAYS}
        return PLSMap(**arrays, neuroid_ids=np.array(z["neuroid_ids"]).astype(str), info=json.loads(str(z["info"])))


def is_valid_map(path: Path) -> bool:
    """True when ``path`` holds a complete, consistent map of this format."""
    try:
        pls = load_map(path)
    except Exception:  # missing, truncated, not an npz, a key missing
        return False
    n_targets, n_features = pls.coef.shape
    return (pls.info.get("format") == FORMAT_VERSION and pls.x_mean.shape == (n_features,) and pls.intercept.shape == (n_targets,)
            and pls.neuroid_ids.shape == (n_targets,) and bool(np.isfinite(pls.coef).all()))
