"""Fixture files in BERG's exact formats, for offline tests (BERG's real files are not shipped).

``write_berg_files(root, subject, n_features=..., n_electrodes=3)`` writes, under ``root`` (a berg_dir or a bucket
folder for a loopback mirror), the subject's two files at BERG's paths, each ``np.save`` of a dict (a pickle inside
a 0-d object array) nested as BERG's training code writes them (``train_encoding.py``, ``prepare_zada2025.py``):
random scalers and ridge weights (float32 coef of shape (n_features, n_electrodes·n_lags), electrode-major
targets), numpy scalars where scikit-learn stores them, electrode names, coordinates and lag times.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from berg_ecog.plugin import METADATA_PATH, N_LAGS, WEIGHTS_PATH


@dataclass
class BergFiles:
    """What ``write_berg_files`` wrote: the two paths and the dicts saved in them."""

    weights_file: Path
    metadata_file: Path
    weights: dict[str, Any]
    metadata: dict[str, Any]


def _scaler(rng: np.random.Generator, n: int, n_seen: int, loc: float, spread: float) -> dict[str, Any]:
    var = rng.uniform(0.5, 2.0, n) * spread**2
    return {"scale_": np.sqrt(var), "mean_": loc + rng.standard_normal(n) * spread, "var_": var,
            "n_features_in_": n, "n_samples_seen_": np.int64(n_seen)}


def write_berg_files(root: Path | str, subject: str = "01", *, n_features: int, n_electrodes: int = 3, n_lags: int = N_LAGS,
                     seed: int = 0, feature_scale: float = 1.0) -> BergFiles:
    """Write ``weights_sub-SS.npy`` and ``metadata_sub-SS.npy`` under ``root``; ``feature_scale``: the X scaler's
    spread (match it to the test backbone's feature size so standardised features stay O(1))."""
    rng = np.random.default_rng(seed)
    n_targets = n_electrodes * n_lags
    weights = {
        "scaler_X_param": _scaler(rng, n_features, 5123, 0.0, feature_scale),
        "scaler_Y_param": _scaler(rng, n_targets, 5123, 1.5, 0.3),
        "ridge_param": {"coef_": (rng.standard_normal((n_features, n_targets)) / np.sqrt(n_features)).astype(np.float32),
                        "intercept_": (0.01 * rng.standard_normal(n_targets)).astype(np.float32),
                        "best_alphas_": np.logspace(1, 10, 10)[rng.integers(0, 10, n_targets)].astype(np.float32),
                        "n_features_in_": n_features},
        "shape": {"n_electrodes": n_electrodes, "n_lags": n_lags},
    }
    times = -2.0 + np.arange(n_lags) / 32.0
    metadata = {
        "ecog": {"subject_id": f"sub-{subject}", "n_electrodes": n_electrodes, "n_lags": n_lags, "sfreq": 32.0,
                 "tmin": -2.0, "tmax": float(times[-1]), "times": times,
                 "ch_names": [f"G{i + 1}" for i in range(n_electrodes)],
                 "ch_coords": rng.uniform(-0.07, 0.07, (n_electrodes, 3))},
        "encoding_model": {"correlation_results": rng.uniform(-0.1, 0.4, (n_electrodes, n_lags))},
    }
    root = Path(root)
    paths = []
    for rel, obj in ((WEIGHTS_PATH, weights), (METADATA_PATH, metadata)):
        path = root / rel.format(subject=subject)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, obj, allow_pickle=True)  # type: ignore[arg-type]  # a dict in a 0-d object array, as BERG saves it
        paths.append(path)
    return BergFiles(paths[0], paths[1], weights, metadata)
