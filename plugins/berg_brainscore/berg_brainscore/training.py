"""The training map: Pereira 2018 (384 sentences) features -> one subject's voxels, built once and cached.

Two cache entries under ``<berg cache root>/brainscore/``, both written atomically under a file lock
(``berg_core.cache.build_once``: two processes building the same entry leave one valid file):

* features ``{model}_pereira384-features_{key}.npz``: (384, n_units) float64 activations, the sentences fed
  passage by passage (each passage one running text, passages in sorted label order: Brain-Score's
  benchmark convention; computed by ``activations.grouped_features``, which equals ``digest_text`` per
  passage), rows in the assembly's presentation order, with the stimulus ids;
  key = (model id, layer, brainscore-language version, data sha1);
* PLS map ``{model}_sub-{subject}_pls_{key}.npz`` (``berg_brainscore.pls``), fit on the rows sorted by
  ``stimulus_id``; key = (model id, layer, subject, brainscore-language version, data sha1, n_components).

A later load reads the map and never touches the data, the model's features or sklearn's fit again.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from berg_brainscore.activations import grouped_features
from berg_brainscore.enumerate import BrainscoreModel, brainscore_version
from berg_brainscore.pereira import DATA_IDENTIFIER, EXPERIMENT, PereiraData, data_sha1, load_pereira384
from berg_brainscore.pls import N_COMPONENTS, PLSMap, fit_map, is_valid_map, load_map, save_map
from berg_core import ResourceError, build_once, cache_key, cache_path, progress_bar

NAMESPACE = "brainscore"
FEATURES_FORMAT = 1


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def _model_id(model: BrainscoreModel) -> str:
    return f"brainscore_language-{model.name}"


def features_path(model: BrainscoreModel) -> Path:
    """Cache file of the model's Pereira 384-sentence training features."""
    key = cache_key(model=_model_id(model), layer=model.layer, brainscore_language=brainscore_version(), data_sha1=data_sha1(),
                    feed="passages", format=FEATURES_FORMAT)
    return cache_path(NAMESPACE, f"{_safe(model.name)}_pereira384-features_{key}.npz")


def map_path(model: BrainscoreModel, subject: str) -> Path:
    """Cache file of the model's PLS map for ``subject``."""
    key = cache_key(model=_model_id(model), layer=model.layer, subject=subject, brainscore_language=brainscore_version(),
                    data_sha1=data_sha1(), n_components=N_COMPONENTS, feed="passages")
    return cache_path(NAMESPACE, f"{_safe(model.name)}_sub-{subject}_pls_{key}.npz")


def passage_features(subject: Any, data: PereiraData, *, show_progress: bool = False) -> np.ndarray:
    """(384, n_units) float64: each passage read as one running text, rows in presentation order."""
    passages = data.passages()
    values = grouped_features(subject, [[data.sentences[i] for i in index] for index in passages], show_progress=show_progress)
    rows = np.full((len(data.sentences), values[0].shape[1]), np.nan)
    for index, block in zip(passages, values):
        rows[index] = block
    if np.isnan(rows).any():
        raise ResourceError("the Pereira passages do not cover every sentence; the data file may be corrupt")
    return rows


def _features_valid(path: Path) -> bool:
    try:
        with np.load(path, allow_pickle=False) as z:
            return int(z["format"]) == FEATURES_FORMAT and z["features"].ndim == 2 and bool(np.isfinite(z["features"]).all())
    except Exception:
        return False


def ensure_features(model: BrainscoreModel, data: PereiraData, get_subject: Callable[[], Any], *, show_progress: bool = False) -> np.ndarray:
    """The cached training features, computed (model loaded through ``get_subject()``) if missing."""
    dest = features_path(model)

    def build(tmp: Path) -> None:
        feats = passage_features(get_subject(), data, show_progress=show_progress)
        with open(tmp, "wb") as f:
            np.savez(f, features=feats, stimulus_ids=np.asarray(data.stimulus_ids).astype(str), format=np.array(FEATURES_FORMAT))

    build_once(dest, build, _features_valid)
    with np.load(dest, allow_pickle=False) as z:
        if not np.array_equal(z["stimulus_ids"], np.asarray(data.stimulus_ids).astype(str)):
            raise ResourceError(f"cached features {dest} were made for other stimuli; delete the file and load again")
        return np.array(z["features"])


def ensure_map(model: BrainscoreModel, subject: str, get_subject: Callable[[], Any], *, show_progress: bool | None = None) -> PLSMap:
    """The model's PLS map for ``subject``: read from the cache, or trained once and cached.

    ``get_subject()`` returns the loaded brainscore model; it is called only when the training
    features are not cached. ``show_progress`` defaults to whether stderr is a terminal.
    """
    show = sys.stderr.isatty() if show_progress is None else show_progress
    dest = map_path(model, subject)

    def build(tmp: Path) -> None:
        data = load_pereira384(_model_id(model))
        feats = ensure_features(model, data, get_subject, show_progress=show)
        order = data.fit_order()
        cols = data.columns(subject)
        bar = progress_bar(show=show, total=1, desc=f"{model.name}: PLS fit, subject {subject}", unit="fit")
        fitted = fit_map(feats[order], data.responses[order][:, cols], data.neuroid_ids[cols],
                         info={"model_id": _model_id(model), "layer": model.layer, "subject": subject, "data": f"{DATA_IDENTIFIER} {EXPERIMENT}",
                               "data_sha1": data.sha1, "brainscore_language": brainscore_version(), "feed": "passages"})
        bar.update(1)
        bar.close()
        save_map(fitted, tmp)

    build_once(dest, build, is_valid_map)
    return load_map(dest)


def cached_map(model: BrainscoreModel, subject: str) -> PLSMap | None:
    """The cached map if it exists and is valid, else None (never trains)."""
    path = map_path(model, subject)
    return load_map(path) if path.exists() and is_valid_map(path) else None
