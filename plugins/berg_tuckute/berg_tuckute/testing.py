"""Fixture files in BERG's exact formats, for offline tests (BERG's real files are not shipped).

``write_berg_files(root, n_features=...)`` writes, under ``root`` (a berg_dir or a bucket folder for the
loopback mirror), both files the model needs, at BERG's paths:

* the mapping pickle: ``pickle.dump`` (protocol 4) of ``{"clf": RidgeCV, "neuroid_order": ndarray of
  ROI names (object dtype, like ``DataFrame.columns.values``), "X_scaler": None, "y_scaler": None}``;
  the ``RidgeCV`` is a real ``sklearn.linear_model.RidgeCV`` (``alpha_per_target=True``) fitted on random
  data, so the pickle names ``sklearn.linear_model._ridge.RidgeCV`` exactly as BERG's does;
* ``metadata.npy``: ``np.save`` of BERG's metadata dict (a pickled dict inside a 0-d object array).

scikit-learn is needed here (it is a test dependency), never by the plugin itself.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from berg_tuckute.plugin import METADATA_PATH, ROIS, WEIGHTS_PATH

NOISE_CEILING = (0.4577, 0.4525, 0.4522, 0.5154, 0.5789, 0.5592)  # spec/tuckute.md, in ROIS order


@dataclass
class BergFiles:
    """What ``write_berg_files`` wrote: paths, the fitted sklearn estimator, ROI order, metadata dict."""

    weights: Path
    metadata_file: Path
    clf: Any  # the fitted sklearn RidgeCV
    neuroid_order: list[str]
    metadata: dict[str, Any]


def write_berg_files(
    root: Path | str,
    *,
    n_features: int,
    neuroid_order: tuple[str, ...] = ROIS,
    n_train: int = 40,
    n_drive: int = 5,
    seed: int = 0,
    scale: float = 1.0,
) -> BergFiles:
    """Write the mapping pickle and metadata.npy under ``root`` at BERG's paths.

    ``n_features``: width of the backbone the readout is fitted for (1600 for GPT2-XL; a tiny test
    GPT-2's ``n_embd`` in tests). ``neuroid_order``: row order of ``coef_`` (BERG's is ``ROIS``).
    ``scale``: multiplies the random targets (bigger coefficients make wrong features show).
    """
    from sklearn.linear_model import RidgeCV

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_train, n_features))
    y = scale * (x @ rng.standard_normal((n_features, len(neuroid_order))) / np.sqrt(n_features)
                 + 0.3 * rng.standard_normal((n_train, len(neuroid_order))) + rng.standard_normal(len(neuroid_order)))
    clf = RidgeCV(alphas=np.logspace(-30, 29, 60), alpha_per_target=True).fit(x, y)
    root = Path(root)
    weights = root / WEIGHTS_PATH
    weights.parent.mkdir(parents=True, exist_ok=True)
    with open(weights, "wb") as fh:
        pickle.dump({"clf": clf, "neuroid_order": np.array(list(neuroid_order), dtype=object),
                     "X_scaler": None, "y_scaler": None}, fh, protocol=4)
    metadata = _metadata(rng, n_train, n_drive)
    metadata_file = root / METADATA_PATH
    metadata_file.parent.mkdir(parents=True, exist_ok=True)
    np.save(metadata_file, metadata, allow_pickle=True)
    return BergFiles(weights, metadata_file, clf, list(neuroid_order), metadata)


def _sentences(rng: np.random.Generator, n: int) -> np.ndarray:
    words = ["the", "quiet", "river", "sang", "about", "old", "stone", "bridges", "and", "lost", "maps", "today"]
    out = [" ".join(rng.choice(words, 6)).capitalize() + "." for _ in range(n)]
    return np.array(out, dtype=object)


def _metadata(rng: np.random.Generator, n_train: int, n_drive: int) -> dict[str, Any]:
    """BERG's metadata dict (same keys and kinds of values; sizes shrunk from 1000/250/250)."""
    return {
        "rois": list(ROIS),
        "noise_ceiling": np.array(NOISE_CEILING),
        "noise_ceiling_snr": rng.uniform(0.5, 2.0, len(ROIS)),
        "optimal_layer": 22,
        "train_stimulus_ids": np.array([f"beta-control-neural-T.{i + 1}" for i in range(n_train)], dtype=object),
        "train_sentences": _sentences(rng, n_train),
        "train_targets": rng.standard_normal(n_train),
        "drive_stimulus_ids": np.array([f"drive-{i + 1}" for i in range(n_drive)], dtype=object),
        "drive_sentences": _sentences(rng, n_drive),
        "suppress_stimulus_ids": np.array([f"suppress-{i + 1}" for i in range(n_drive)], dtype=object),
        "suppress_sentences": _sentences(rng, n_drive),
    }
