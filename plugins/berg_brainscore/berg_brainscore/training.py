"""The training map: Pereira 2018 (384 sentences) features -> one subject's voxels, built once and cached.

How the training features are read (``train_context``, part of both cache keys):

* ``"running"`` (default, BERG's gateway): the 384 sentences in the assembly's presentation order are ONE
  running text (one ``digest_text`` over the whole list: sentence i is read after sentences 0..i-1 of every
  passage, left-truncated to the model's maximum length);
* ``"passage"`` (Brain-Score's benchmark): each passage is one running text, passages in sorted label order.

Either way row i of the features is sentence i of the assembly (its ``stimulus_id``), and the PLS map is fit
as brainscore-vision's ``pls_regression`` fits it (``XarrayRegression``): presentations of the features and
of the data sorted by ``stimulus_id`` (stable), the subject's neuroids in the assembly's order, sklearn
``PLSRegression(n_components=25, scale=False)`` on float64 arrays.

Two cache entries under ``<berg cache root>/brainscore/``, both written atomically under a file lock
(``berg_core.build_once``: two processes building the same entry leave one valid file):

* features ``{model}_pereira384-features_{key}.npz``: (384, n_units) float64 activations in the assembly's
  presentation order, with the stimulus ids; key = (model id, layer, brainscore-language version, data
  sha1, train_context);
* PLS map ``{model}_sub-{subject}_pls_{key}.npz`` (``berg_brainscore.pls``); key = (model id, layer,
  subject, brainscore-language version, data sha1, n_components, train_context).

A later load reads the map and never touches the data, the model's features or sklearn's fit again.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from berg_brainscore.activations import grouped_features, sentence_features
from berg_brainscore.enumerate import BrainscoreModel, brainscore_version
from berg_brainscore.pereira import DATA_IDENTIFIER, EXPERIMENT, PereiraData, data_sha1, load_pereira384
from berg_brainscore.pls import N_COMPONENTS, PLSMap, fit_map, is_valid_map, load_map, save_map
from berg_core import InvalidParameterError, ResourceError, build_once, cache_key, cache_path, progress_bar

NAMESPACE = "brainscore"
FEATURES_FORMAT = 1
#: how the 384 training sentences are read: one running text (BERG's gateway) or passage by passage (Brain-Score)
TRAIN_CONTEXTS = ("running", "passage")
DEFAULT_TRAIN_CONTEXT = "running"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def _model_id(model: BrainscoreModel) -> str:
    return f"brainscore_language-{model.name}"


def _check_context(train_context: str) -> None:
    if train_context not in TRAIN_CONTEXTS:
        raise InvalidParameterError(f"unknown train_context {train_context!r}; use 'running' (BERG's map) or 'passage' (Brain-Score's benchmark)")


def features_path(model: BrainscoreModel, train_context: str = DEFAULT_TRAIN_CONTEXT) -> Path:
    """Cache file of the model's Pereira 384-sentence training features read with ``train_context``."""
    _check_context(train_context)
    key = cache_key(model=_model_id(model), layer=model.layer, brainscore_language=brainscore_version(), data_sha1=data_sha1(),
                    train_context=train_context, format=FEATURES_FORMAT)
    return cache_path(NAMESPACE, f"{_safe(model.name)}_pereira384-features_{key}.npz")


def map_path(model: BrainscoreModel, subject: str, train_context: str = DEFAULT_TRAIN_CONTEXT) -> Path:
    """Cache file of the model's PLS map for ``subject`` trained on ``train_context`` features."""
    _check_context(train_context)
    key = cache_key(model=_model_id(model), layer=model.layer, subject=subject, brainscore_language=brainscore_version(),
                    data_sha1=data_sha1(), n_components=N_COMPONENTS, train_context=train_context)
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


def training_features(subject: Any, data: PereiraData, train_context: str, *, show_progress: bool = False) -> np.ndarray:
    """(384, n_units) float64, row i = sentence i of the assembly: ``"running"`` = the whole list one running
    text (BERG's ``digest_text(sentences)``), ``"passage"`` = ``passage_features``."""
    _check_context(train_context)
    if train_context == "passage":
        return passage_features(subject, data, show_progress=show_progress)
    return sentence_features(subject, data.sentences, context="running", show_progress=show_progress)


def _features_valid(path: Path) -> bool:
    try:
        with np.load(path, allow_pickle=False) as z:
            return int(z["format"]) == FEATURES_FORMAT and z["features"].ndim == 2 and bool(np.isfinite(z["features"]).all())
    except Exception:
        return False


def ensure_features(model: BrainscoreModel, data: PereiraData, get_subject: Callable[[], Any], *, train_context: str = DEFAULT_TRAIN_CONTEXT,
                    show_progress: bool = False) -> np.ndarray:
    """The cached training features, computed (model loaded through ``get_subject()``) if missing."""
    dest = features_path(model, train_context)

    def build(tmp: Path) -> None:
        feats = training_features(get_subject(), data, train_context, show_progress=show_progress)
        with open(tmp, "wb") as f:
            np.savez(f, features=feats, stimulus_ids=np.asarray(data.stimulus_ids).astype(str), format=np.array(FEATURES_FORMAT))

    build_once(dest, build, _features_valid)
    with np.load(dest, allow_pickle=False) as z:
        if not np.array_equal(z["stimulus_ids"], np.asarray(data.stimulus_ids).astype(str)):
            raise ResourceError(f"cached features {dest} were made for other stimuli; delete the file and load again")
        return np.array(z["features"])


def ensure_map(model: BrainscoreModel, subject: str, get_subject: Callable[[], Any], *, train_context: str = DEFAULT_TRAIN_CONTEXT,
               show_progress: bool | None = None) -> PLSMap:
    """The model's PLS map for ``subject``: read from the cache, or trained once and cached.

    ``get_subject()`` returns the loaded brainscore model; it is called only when the training
    features are not cached. ``show_progress`` defaults to whether stderr is a terminal.
    """
    show = sys.stderr.isatty() if show_progress is None else show_progress
    dest = map_path(model, subject, train_context)

    def build(tmp: Path) -> None:
        data = load_pereira384(_model_id(model))
        feats = ensure_features(model, data, get_subject, train_context=train_context, show_progress=show)
        order = data.fit_order()
        cols = data.columns(subject)
        bar = progress_bar(show=show, total=1, desc=f"{model.name}: PLS fit, subject {subject}", unit="fit")
        fitted = fit_map(feats[order], data.responses[np.ix_(order, cols)], data.neuroid_ids[cols],
                         info={"model_id": _model_id(model), "layer": model.layer, "subject": subject, "data": f"{DATA_IDENTIFIER} {EXPERIMENT}",
                               "data_sha1": data.sha1, "brainscore_language": brainscore_version(), "train_context": train_context})
        bar.update(1)
        bar.close()
        save_map(fitted, tmp)

    build_once(dest, build, is_valid_map)
    return load_map(dest)


def cached_map(model: BrainscoreModel, subject: str, train_context: str = DEFAULT_TRAIN_CONTEXT) -> PLSMap | None:
    """The cached map if it exists and is valid, else None (never trains)."""
    path = map_path(model, subject, train_context)
    return load_map(path) if path.exists() and is_valid_map(path) else None
