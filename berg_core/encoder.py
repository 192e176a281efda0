"""The base class of every loaded encoding model.

Families subclass ``Encoder`` and implement ``_encode`` (and usually ``output_names``); the base does
subject/selection/option checks, stimulus validation, float32 output, metadata, ``close()`` and the
context-manager protocol.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from berg_core.device import resolve_device
from berg_core.errors import BergError, InvalidParameterError
from berg_core.paths import resolve_berg_dir
from berg_core.spec import EncoderSpec, import_object
from berg_core.stimulus import as_sentences, as_timed_words


def check_subject(spec: EncoderSpec, subject: str | int | None) -> str | None:
    """Validate ``subject`` against ``spec.subjects`` (required when the model has subjects)."""
    if spec.subjects is None:
        if subject is not None:
            raise InvalidParameterError(f"{spec.model_id} has no subjects; leave subject out")
        return None
    if subject is None:
        raise InvalidParameterError(f"{spec.model_id} needs a subject; one of {', '.join(spec.subjects)}")
    subject = str(subject)
    if subject not in spec.subjects:
        raise InvalidParameterError(f"unknown subject {subject!r} for {spec.model_id}; valid subjects: {', '.join(spec.subjects)}")
    return subject


def check_selection(spec: EncoderSpec, selection: dict[str, Any] | None) -> dict[str, Any]:
    """Check the selection's keys against the spec's schema (values are checked by the family)."""
    if selection is None:
        return {}
    if not isinstance(selection, dict):
        raise InvalidParameterError(f"selection must be a dict like {{'roi': [...]}}, got {type(selection).__name__}")
    unknown = sorted(set(selection) - set(spec.selection))
    if unknown:
        valid = ", ".join(spec.selection) or "none (this model takes no selection)"
        raise InvalidParameterError(f"unknown selection key(s) {', '.join(map(repr, unknown))} for {spec.model_id}; valid keys: {valid}")
    return dict(selection)


class Encoder:
    """A loaded encoding model: ``encode(stimulus) -> np.ndarray`` (float32, rows = sentences or TRs).

    Subclasses receive validated ``subject``/``selection``/``device``/``options`` in ``__init__`` and
    implement ``_encode(stimulus, show_progress)`` where ``stimulus`` is already a ``list[str]`` or a
    ``TimedWords``.
    """

    def __init__(
        self,
        spec: EncoderSpec,
        *,
        subject: str | int | None = None,
        selection: dict[str, Any] | None = None,
        device: str | None = "auto",
        berg_dir: str | Path | None = None,
        **options: Any,
    ) -> None:
        self.spec = spec
        self.subject = check_subject(spec, subject)
        self.selection = check_selection(spec, selection)
        unknown = sorted(set(options) - set(spec.options))
        if unknown:
            valid = ", ".join(spec.options) or "none"
            raise InvalidParameterError(f"unknown option(s) {', '.join(map(repr, unknown))} for {spec.model_id}; valid options: {valid}")
        self.options: dict[str, Any] = {**spec.options, **options}
        self.device = resolve_device(device)
        self.berg_dir = resolve_berg_dir(berg_dir)
        self._metadata: dict[str, Any] | None = None
        self._closed = False

    # -- to implement --------------------------------------------------------------------------
    def _encode(self, stimulus: Any, show_progress: bool) -> np.ndarray:
        raise NotImplementedError

    @property
    def output_names(self) -> list[str]:
        """Names of the output columns (ROIs or voxel ids), for CSV headers."""
        raise NotImplementedError

    def _release(self) -> None:
        """Free the backbone and weights (called once by ``close``)."""

    # -- public API ----------------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        return self.spec.model_id

    def validate(self, stimulus: Any) -> Any:
        """The stimulus in canonical form (``list[str]`` or ``TimedWords``), or a ``StimulusError``."""
        return as_timed_words(stimulus) if self.spec.stimulus == "timed_words" else as_sentences(stimulus)

    def encode(self, stimulus: Any, show_progress: bool = False) -> np.ndarray:
        """Predicted responses, float32, shape (n_sentences or n_TRs, n_outputs)."""
        if self._closed:
            raise BergError(f"{self.model_id} was closed; load it again with get_encoding_model")
        out = np.asarray(self._encode(self.validate(stimulus), show_progress), dtype=np.float32)
        if out.ndim != 2:
            raise BergError(f"{self.model_id} produced an array of shape {out.shape}; expected 2-D (a plugin bug)")
        return out

    @property
    def metadata(self) -> dict[str, Any]:
        """The model's metadata (BERG's metadata dict), loaded once."""
        if self._metadata is None:
            self._metadata = load_metadata(self.spec, self.subject, self.berg_dir)
        return self._metadata

    def close(self) -> None:
        """Release memory held by the model; further ``encode`` calls raise."""
        if not self._closed:
            self._release()
            self._closed = True

    def __enter__(self) -> Encoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        subject = f", subject={self.subject!r}" if self.subject else ""
        return f"<{type(self).__name__} {self.model_id}{subject} device={self.device}>"


def load_metadata(spec: EncoderSpec, subject: str | None, berg_dir: Path) -> dict[str, Any]:
    """Call the spec's metadata loader (no backbone is loaded)."""
    if spec.metadata is None:
        return {"model_id": spec.model_id, **spec.info}
    loader = import_object(spec.metadata)
    return loader(spec, subject, berg_dir)
