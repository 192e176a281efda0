"""The base class of every loaded encoding model.

Families subclass ``Encoder`` and implement ``_encode`` (and usually ``output_names``); the base does
subject/selection/option checks, stimulus validation, float32 output, metadata, ``close()`` and the
context-manager protocol.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from berg_core.config import resolve_berg_dir
from berg_core.device import resolve_device
from berg_core.errors import BergError, InvalidParameterError, PluginError, StimulusError, plugin_errors
from berg_core.selection import check_selection
from berg_core.spec import EncoderSpec, import_object
from berg_core.stimulus import as_sentences, as_timed_words, as_tr_texts, as_words


def check_subject(spec: EncoderSpec, subject: str | int | None) -> str | None:
    """Validate ``subject`` against ``spec.subjects`` (required when the model has subjects)."""
    if spec.subjects is None:
        if subject is not None:
            raise InvalidParameterError(f"{spec.model_id} has no subjects; leave subject out")
        return None
    if subject is None:
        raise InvalidParameterError(f"{spec.model_id} needs a subject; one of {', '.join(spec.subjects)}")
    if isinstance(subject, bool) or not isinstance(subject, (str, int)):
        raise InvalidParameterError(f"a subject is a str or int (one of {', '.join(spec.subjects)}), not {type(subject).__name__}")
    subject = str(subject)
    if subject not in spec.subjects:
        raise InvalidParameterError(f"unknown subject {subject!r} for {spec.model_id}; valid subjects: {', '.join(spec.subjects)}")
    return subject


def check_options(spec: EncoderSpec, options: dict[str, Any]) -> dict[str, Any]:
    """The spec's defaults updated with ``options``, each coerced by its declared ``Option`` (see ``Options.check``).

    Called once, before the factory is imported: unknown names, missing required options and values of the
    wrong type, outside the choices or below the minimum are one-line ``InvalidParameterError``s.
    """
    return spec.options.check(options, spec.model_id)


class Encoder:
    """A loaded encoding model: ``encode(stimulus) -> np.ndarray`` (float32, rows = sentences, TRs or words).

    Subclasses receive validated ``subject``/``selection``/``device``/``options`` in ``__init__`` and
    implement ``_encode(stimulus, show_progress)`` where ``stimulus`` is already a ``list[str]`` or a
    ``TimedWords``.

    Outputs are 2-D, (n_rows, n_outputs), unless the model declares ``output_axes``: then they are N-D,
    (n_rows, len(labels_1), len(labels_2), ...), one named axis per ``output_axes`` entry (e.g. ECoG's
    ``{"electrode": [...], "lag": [...]}`` -> (n_words, n_electrodes, n_lags)), and ``output_names`` defaults to
    the flattened ``"<label_1>@<label_2>"`` names in row-major order (last axis fastest), the columns of
    ``out.reshape(n_rows, -1)``.
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
        self.options: dict[str, Any] = check_options(spec, options)
        self.device = resolve_device(device)
        self.berg_dir = resolve_berg_dir(berg_dir)
        self._metadata: dict[str, Any] | None = None
        self._closed = False

    # -- to implement --------------------------------------------------------------------------
    def _encode(self, stimulus: Any, show_progress: bool) -> np.ndarray:
        raise NotImplementedError

    @property
    def output_names(self) -> list[str]:
        """Names of the output columns (ROIs or voxel ids), for CSV headers; N-D models: the flattened axis labels."""
        axes = self.output_axes
        if axes is None:
            raise NotImplementedError
        return flat_output_names(axes)

    @property
    def output_axes(self) -> dict[str, list[str]] | None:
        """N-D models: ``{axis name: labels}`` for the output's axes after the first (rows), in order; ``None``
        (the default): 2-D outputs named by ``output_names``."""
        return None

    def column_groups(self) -> dict[str, Any] | None:
        """Optional: which ROI each output column is in (2-D outputs), for the labels every output file carries.

        ``{ROI name: indices into THIS output's columns}`` (after the selection; int, ascending) or, equivalently, a
        boolean mask of shape (n_columns,) per ROI; ROIs may overlap. The core turns masks into indices and leaves
        out a ROI with no selected column. ``None`` (the default): the columns have no groups (e.g. each column is
        already one ROI). Not used for N-D outputs (``output_axes``).
        """
        return None

    def _release(self) -> None:
        """Free the backbone and weights (called once by ``close``)."""

    # -- public API ----------------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        return self.spec.model_id

    def validate(self, stimulus: Any) -> Any:
        """The stimulus in canonical form (``list[str]`` or ``TimedWords``), or a ``StimulusError``."""
        return validate_stimulus(self.spec, stimulus)

    def encode(self, stimulus: Any, show_progress: bool = False) -> np.ndarray:
        """Predicted responses, float32, shape (n_sentences, n_TRs or n_words, n_outputs), or N-D (n_rows, *axis
        lengths) when the model declares ``output_axes``."""
        if self._closed:
            raise BergError(f"{self.model_id} was closed; load it again with get_encoding_model")
        stimulus = self.validate(stimulus)
        with plugin_errors(self.model_id, self.spec.plugin, "encoding", subject=self.subject, wrap=PluginError):
            out = np.asarray(self._encode(stimulus, bool(show_progress)), dtype=np.float32)
        with plugin_errors(self.model_id, self.spec.plugin, "naming its output axes", wrap=PluginError):
            axes = self.output_axes
        expected = "2-D" if axes is None else f"(n_rows, {', '.join(f'{len(v)} {k}s' for k, v in axes.items())})"
        wrong = out.ndim != 2 if axes is None else out.shape[1:] != tuple(len(v) for v in axes.values())
        if wrong:
            raise BergError(f"{self.model_id} produced an array of shape {out.shape}; expected {expected} (a plugin bug)")
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
            self._closed = True
            with plugin_errors(self.model_id, self.spec.plugin, "releasing the model", wrap=PluginError):
                self._release()

    def __enter__(self) -> Encoder:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        try:
            self.close()
        except BergError:
            if exc_type is None:  # a failing release never hides the error that ended the block
                raise

    def __repr__(self) -> str:
        subject = f", subject={self.subject!r}" if self.subject else ""
        return f"<{type(self).__name__} {self.model_id}{subject} device={self.device}>"


def validate_stimulus(spec: EncoderSpec, stimulus: Any) -> Any:
    """``stimulus`` in the canonical form of ``spec.stimulus`` (``list[str]`` or ``TimedWords``), or a ``StimulusError``.

    Needs no loaded model, so the CLI checks its input with it before loading one.
    """
    kinds = {"timed_words": (as_timed_words, "{'words': [...], 'word_onsets': [...]}"),
             "words": (as_words, "a list of words (list of str)"),
             "tr_texts": (as_tr_texts, "one str per TR (list of str, '' for a silent TR)")}
    check, expected = kinds.get(spec.stimulus, (as_sentences, "a str or a list of str"))
    try:
        return check(stimulus)
    except BergError:
        raise
    except (TypeError, ValueError, AttributeError) as exc:  # a shape the checks did not foresee
        raise StimulusError(f"the stimulus is malformed ({type(exc).__name__}: {exc}); give {expected}") from exc


def flat_output_names(axes: dict[str, list[str]]) -> list[str]:
    """Column names of an N-D output flattened to (n_rows, -1): each combination of the axes' labels joined by
    ``@`` (e.g. ``"LGA1@-2.00000s"``), row-major (the last axis varies fastest), as ``numpy.reshape`` orders them."""
    import itertools

    return ["@".join(combo) for combo in itertools.product(*(list(map(str, labels)) for labels in axes.values()))]


def output_axes_of(model: Encoder) -> dict[str, list[str]] | None:
    """``model.output_axes`` (N-D models) or ``None``; a plugin failing there is one ``PluginError`` line."""
    with plugin_errors(model.model_id, model.spec.plugin, "naming its output axes", wrap=PluginError):
        axes = model.output_axes
    return None if axes is None else {str(k): [str(v) for v in labels] for k, labels in axes.items()}


def column_groups_of(model: Encoder, n_columns: int) -> dict[str, np.ndarray] | None:
    """``model.column_groups()`` checked and normalised: ``{name: int64 ascending indices into the n_columns
    columns}``, ROIs with no column left out; ``None`` when the model has none or its outputs are N-D. A plugin
    failing there, or returning indices out of range or masks of the wrong length, is one ``PluginError`` line."""
    with plugin_errors(model.model_id, model.spec.plugin, "grouping its output columns", wrap=PluginError):
        if model.output_axes is not None:
            return None
        groups = model.column_groups()
        if groups is None:
            return None
        if not isinstance(groups, dict):
            raise PluginError(f"column_groups() returned a {type(groups).__name__}, not a dict of ROI name -> column indices "
                              "(a plugin bug; report it)")
        out: dict[str, np.ndarray] = {}
        for name, value in groups.items():
            arr = np.asarray(value)
            if arr.dtype.kind == "b" and arr.shape == (n_columns,):
                index = np.flatnonzero(arr).astype(np.int64)
            elif arr.ndim == 1 and (arr.dtype.kind in "iu" or arr.size == 0):
                index = np.unique(arr.astype(np.int64))
                if index.size and (index[0] < 0 or index[-1] >= n_columns):
                    raise PluginError(f"column_groups()[{str(name)!r}] lists columns outside 0..{n_columns - 1} "
                                      "(a plugin bug; report it)")
            else:
                raise PluginError(f"column_groups()[{str(name)!r}] is a {arr.dtype} array of shape {arr.shape}, neither column "
                                  f"indices nor a boolean mask over the {n_columns} columns (a plugin bug; report it)")
            if index.size:
                out[str(name)] = index
        return out


def output_names_of(model: Encoder) -> list[str]:
    """``model.output_names`` as a list; a plugin failing there is one ``PluginError`` line."""
    with plugin_errors(model.model_id, model.spec.plugin, "naming its outputs", wrap=PluginError):
        return [str(name) for name in model.output_names]


def load_metadata(spec: EncoderSpec, subject: str | None, berg_dir: Path) -> dict[str, Any]:
    """Call the spec's metadata loader (no backbone is loaded)."""
    if spec.metadata is None:
        return {"model_id": spec.model_id, **spec.info}
    with plugin_errors(spec.model_id, spec.plugin, "reading the metadata", subject=subject):
        metadata = import_object(spec.metadata)(spec, subject, berg_dir)
    if not isinstance(metadata, dict):
        raise PluginError(f"{spec.metadata} (plugin {spec.plugin or spec.family}) returned {type(metadata).__name__}, not a dict "
                          "(a plugin bug; report it)")
    return metadata
