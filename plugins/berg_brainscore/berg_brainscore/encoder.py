"""``BrainscoreEncoder``: a brainscore model's language-system activations -> one subject's Pereira voxels.

Loading runs brainscore's ``load_model(name)`` (see ``activations``) and reads the subject's PLS map from
the cache, training it on first use (``training``). ``encode(sentences)`` returns float32
(n_sentences, n_voxels) in the data's neuroid order (``output_names`` = neuroid ids).
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import numpy as np

from berg_brainscore.activations import load_subject, sentence_features
from berg_brainscore.enumerate import UNSUITABLE, BrainscoreModel
from berg_brainscore.pereira import DATA_IDENTIFIER, EXPERIMENT, VOXELS, load_pereira384
from berg_brainscore.pls import N_COMPONENTS
from berg_brainscore.training import cached_map, ensure_map, map_path
from berg_core import Encoder, EncoderSpec, ModelLoadError, resolve_device


def model_of(spec: EncoderSpec) -> BrainscoreModel:
    """The brainscore facts registered with ``spec``; unsuitable models raise ``ModelLoadError`` with the reason."""
    model = BrainscoreModel.from_info(spec.params)
    if model.status == UNSUITABLE:
        raise ModelLoadError(f"{spec.model_id} cannot be used: {model.reason}")
    return model


class BrainscoreEncoder(Encoder):
    """Options: ``context`` ("independent" | "running"), ``batch_size`` (independent mode, HF models), ``train_context``
    ("running" | "passage": how the map's training sentences were read, see ``training``)."""

    def __init__(self, spec: EncoderSpec, **kwargs: Any) -> None:
        super().__init__(spec, **kwargs)
        self.model = model_of(spec)
        self._subject: Any = load_subject(self.model.name, self.device)
        assert self.subject is not None  # the spec declares subjects, so the core checked one was given
        self._map = ensure_map(self.model, self.subject, lambda: self._subject, train_context=self.options["train_context"])

    @property
    def output_names(self) -> list[str]:
        return [str(n) for n in self._map.neuroid_ids]

    def features(self, sentences: list[str], show_progress: bool = False) -> np.ndarray:
        """The model's language-system activations for ``sentences`` (float64, (n, n_units))."""
        return sentence_features(self._subject, sentences, context=self.options["context"], batch_size=self.options["batch_size"],
                                 show_progress=show_progress)

    def _encode(self, stimulus: list[str], show_progress: bool) -> np.ndarray:
        return self._map.predict(self.features(stimulus, show_progress))

    def _release(self) -> None:
        self._subject = None
        gc.collect()
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()


def load_metadata(spec: EncoderSpec, subject: str | None, berg_dir: Path) -> dict[str, Any]:
    """Facts about the model; with a subject also its neuroid ids (from the cached map, else from the data)."""
    info = spec.info
    meta: dict[str, Any] = {
        "model_id": spec.model_id, "brainscore_id": info.get("brainscore_id"), "layer": info.get("layer"), "status": info.get("status"),
        "reason": info.get("reason"), "brainscore_language": info.get("brainscore_language"), "subjects": list(spec.subjects or ()),
        "training_data": f"{DATA_IDENTIFIER} {EXPERIMENT} (384 sentences; default train_context='running': one running text, BERG's map)",
        "regression": f"PLSRegression(n_components={N_COMPONENTS}, scale=False), rows sorted by stimulus_id (brainscore-vision's pls_regression)",
    }
    if subject is None:
        return meta
    model = BrainscoreModel.from_info(info)
    pls = cached_map(model, subject)
    if pls is not None:
        neuroid_ids = [str(n) for n in pls.neuroid_ids]
        meta["pls_cache"] = str(map_path(model, subject))
    else:
        data = load_pereira384(spec.model_id)
        neuroid_ids = [str(n) for n in data.neuroid_ids[data.columns(subject)]]
    meta.update(subject=subject, n_voxels=len(neuroid_ids), neuroid_ids=neuroid_ids, expected_voxels=VOXELS.get(subject))
    return meta


#: models loaded by ``prepare`` in this process (their weights are then in the HF cache / brainscore's own cache)
_LOADED_ONCE: set[str] = set()


def prepare(spec: EncoderSpec, subject: str | None, berg_dir: Path, show_progress: bool) -> None:
    """``berg fetch``: build the data download, the training features and ``subject``'s PLS map ahead of use.

    The model itself is loaded at least once per process even when the features are cached, so its weights
    (Hugging Face cache, or the model's own download) are on disk for a later offline run.
    """
    if subject is None:
        return
    model = model_of(spec)
    loaded: dict[str, Any] = {}

    def get_subject() -> Any:
        if "subject" not in loaded:
            loaded["subject"] = load_subject(model.name, resolve_device("auto"))
            _LOADED_ONCE.add(model.name)
        return loaded["subject"]

    ensure_map(model, subject, get_subject, show_progress=show_progress)
    if model.name not in _LOADED_ONCE:
        get_subject()
    loaded.clear()
