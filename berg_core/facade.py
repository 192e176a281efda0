"""``BERG``: the drop-in facade for BERG's Python API (same method names and arguments)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from berg_core.config import resolve_berg_dir
from berg_core.device import resolve_device
from berg_core.encoder import Encoder, check_options, check_subject, load_metadata
from berg_core.errors import BergError, InvalidParameterError, PluginError, fill_fetch_hint, plugin_errors
from berg_core.registry import get_registry
from berg_core.selection import check_selection
from berg_core.spec import EncoderSpec, import_object


def _is_dir(path: str) -> bool:
    try:
        return Path(path).is_dir()
    except (OSError, ValueError):  # a name too long for the OS, a NUL byte
        return False


def resolve_spec(model_id: str | os.PathLike[str]) -> EncoderSpec:
    """A registered model id, or the folder of a trained encoder (``berg train`` output)."""
    text = os.fspath(model_id) if isinstance(model_id, os.PathLike) else model_id
    if not isinstance(text, str):
        raise InvalidParameterError(f"a model id is a str such as 'fmri-tuckute_2024-GPT2_XL' (or a trained-encoder folder), "
                                    f"not {type(model_id).__name__}; run `berg list` to see the installed models")
    if get_registry().canonical(text) not in get_registry().specs and _is_dir(text):  # an id or alias wins over a folder
        from berg_core.trained.cards import spec_from_dir

        return spec_from_dir(Path(text))
    return get_registry().get(text)


def backbones_of(spec: Any, options: dict[str, Any]) -> list[tuple[str, str | None]]:
    """The (backbone, revision) pairs a model loads: its ``backbone`` option, else each feature space's (trained encoders)."""
    merged = {**spec.options, **options}
    revision = merged.get("revision") if isinstance(merged.get("revision"), str) else None
    name = merged.get("backbone")
    if isinstance(name, str) and name:
        return [(name, revision)]
    spaces = spec.info.get("feature_spaces") if isinstance(spec.info, dict) else None
    pairs = [(s["backbone"], s.get("revision") if isinstance(s.get("revision"), str) else revision)
             for s in spaces or () if isinstance(s, dict) and isinstance(s.get("backbone"), str) and s["backbone"]]
    return list(dict.fromkeys(pairs))


def subject_hint(subject: object) -> str | None:
    """``subject`` as text for a ``berg fetch ... --subject S`` hint (None when it is not a plain id)."""
    return str(subject) if isinstance(subject, (str, int)) and not isinstance(subject, bool) else None


@dataclass(eq=False)
class OutputLabels:
    """What an output's rows and columns are (the labels every ``berg encode`` output file carries).

    ``row_name``: ``"stimulus"`` (rows are sentences), ``"tr_onset_s"`` (TR onset times, s), ``"word"`` or ``"row"``;
    ``rows``: (n_rows,) the sentences / times / words (row numbers for ``"row"``); ``columns``: (n_columns,) ROI or
    voxel names (N-D models: the flattened names); ``axes``: ``{axis name: labels}`` of N-D models, else None;
    ``attrs``: model_id, subject, berg_version, backbone, backbone_revision, layer, units (str or int; "" unknown);
    ``column_groups``: ``{ROI name: int64 ascending indices into columns}`` (``Encoder.column_groups``: e.g. the
    selected voxels of each LeBel ROI; ROIs may overlap; a ROI with no selected column is left out), else None.
    """

    row_name: str
    rows: list[Any]
    columns: list[str]
    axes: dict[str, list[str]] | None
    attrs: dict[str, Any]
    column_groups: dict[str, np.ndarray] | None = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, OutputLabels):
            return NotImplemented
        mine, theirs = self.column_groups, other.column_groups
        same_groups = mine == theirs if mine is None or theirs is None else (
            list(mine) == list(theirs) and all(np.array_equal(mine[k], theirs[k]) for k in mine))
        return same_groups and (self.row_name, self.rows, self.columns, self.axes, self.attrs) == (
            other.row_name, other.rows, other.columns, other.axes, other.attrs)


def output_attrs(model: Encoder) -> dict[str, Any]:
    """The attributes an output carries: model id, subject, berg version, backbone id and revision, layer, units."""
    revision = getattr(model, "revision", None)
    return spec_attrs(model.spec, model.subject, model.options, revision if isinstance(revision, str) else None)


def spec_attrs(spec: EncoderSpec, subject: str | None, options: dict[str, Any], revision: str | None = None) -> dict[str, Any]:
    """``output_attrs`` without a loaded model (``revision``: the resolved backbone commit when known)."""
    from berg_core import __version__

    options = {**spec.options, **options}
    pairs = backbones_of(spec, options)
    backbone = ", ".join(name for name, _ in pairs)
    revision = revision or ", ".join(rev for _, rev in pairs if rev)
    layer = options.get("layer")
    units = spec.info.get("units") if isinstance(spec.info, dict) else None
    return {"model_id": spec.model_id, "subject": subject or "", "berg_version": __version__,
            "backbone": backbone, "backbone_revision": revision if isinstance(revision, str) else "",
            "layer": layer if isinstance(layer, int) else ("" if layer is None else str(layer)),
            "units": units if isinstance(units, str) else ""}


def output_labels(model: Encoder, stimulus: Any, n_rows: int) -> OutputLabels:
    """The labels of ``model.encode(stimulus)``'s (``n_rows`` rows) output: a model's ``row_labels(stimulus)``
    (``(name, labels)``, e.g. LeBel's TR onsets) when it has one, else the sentences (or words) when there is one
    row per sentence (word), else row numbers; its columns' names and groups (``column_groups_of``)."""
    from berg_core.encoder import column_groups_of, output_axes_of, output_names_of
    from berg_core.stimulus import TimedWords

    custom = getattr(model, "row_labels", None)
    canonical = model.validate(stimulus)
    if callable(custom):
        with plugin_errors(model.model_id, model.spec.plugin, "labelling its output rows", wrap=PluginError):
            row_name, rows = custom(canonical)
            rows = list(rows)
    elif isinstance(canonical, TimedWords) or (model.spec.stimulus == "words" and isinstance(canonical, list)):
        row_name, rows = "word", list(canonical.words if isinstance(canonical, TimedWords) else canonical)
    else:
        row_name, rows = "stimulus", list(canonical)
    if len(rows) != n_rows:
        row_name, rows = "row", list(range(n_rows))
    columns = output_names_of(model)
    return OutputLabels(row_name, rows, columns, output_axes_of(model), output_attrs(model), column_groups_of(model, len(columns)))


class BERG:
    """Entry point mirroring BERG: ``BERG(berg_dir)`` then ``get_encoding_model`` and ``encode``.

    ``berg_dir`` holds BERG's files in BERG's layout (``encoding_models/modality-fmri/...``); default
    ``$BERG_DIR``, else the platformdirs user data dir. Missing files are fetched on first use.
    """

    def __init__(self, berg_dir: str | os.PathLike[str] | None = None) -> None:
        self.berg_dir: Path = resolve_berg_dir(berg_dir)

    def list_models(self, pattern: str | None = None, expand_brainscore_language: bool = True) -> list[str]:
        """Ids of the installed models, optionally filtered (substring or glob, case-insensitive)."""
        if pattern is not None and not isinstance(pattern, str):
            raise InvalidParameterError(f"pattern must be a str (a substring or glob of model ids), not {type(pattern).__name__}")
        ids = [s.model_id for s in get_registry().find(pattern)]
        if not expand_brainscore_language:
            collapsed = [i for i in ids if not i.startswith("brainscore_language-")]
            if len(collapsed) != len(ids):
                collapsed.append("brainscore_language")
            ids = sorted(collapsed)
        return ids

    def get_encoding_model(
        self,
        model_id: str,
        subject: str | int | None = None,
        selection: dict[str, Any] | None = None,
        device: str = "auto",
        **options: Any,
    ) -> Encoder:
        """Load a model (its backbone and weights; files fetched if missing)."""
        spec = resolve_spec(model_id)
        # the cheap checks, before any plugin code runs (the Encoder base repeats them for direct use)
        check_subject(spec, subject)
        check_selection(spec, selection)
        checked = check_options(spec, options)  # also catches names that clash with the factory's arguments
        options = {key: checked[key] for key in options}  # coerced by the declared types (e.g. -O layer=22 -> 22)
        resolve_device(device)
        with plugin_errors(spec.model_id, spec.plugin, "loading the model", subject=subject_hint(subject)):
            factory = import_object(spec.factory)  # inside: a plugin module that raises on import is one line too
            model = factory(spec, subject=subject, selection=selection, device=device, berg_dir=self.berg_dir, **options)
        if not isinstance(model, Encoder):
            raise PluginError(f"{spec.factory} (plugin {spec.plugin or spec.family}) returned {type(model).__name__}, "
                              "not a berg Encoder (a plugin bug; report it)")
        return model

    def encode(
        self, model: Encoder, stimulus: Any, return_metadata: bool = False, show_progress: bool = False,
        return_labels: bool = False,
    ) -> np.ndarray | tuple[Any, ...]:
        """Predicted responses (float32); with ``return_metadata`` also the model's metadata; with ``return_labels``
        also (last) the ``OutputLabels`` of the rows, columns (names and ROI groups) and axes, and the attributes
        (``output_labels``)."""
        if not isinstance(model, Encoder):
            raise InvalidParameterError(f"model must be a loaded model from get_encoding_model, got {type(model).__name__}")
        responses = model.encode(stimulus, show_progress=show_progress)
        out: tuple[Any, ...] = (responses, model.metadata) if return_metadata else (responses,)
        if return_labels:
            out = (*out, output_labels(model, stimulus, len(responses)))
        return out if len(out) > 1 else responses

    def get_model_metadata(self, model_id: str, subject: str | int | None = None) -> dict[str, Any]:
        """The model's metadata without loading its backbone."""
        spec = resolve_spec(model_id)
        return load_metadata(spec, check_subject(spec, subject), self.berg_dir)

    def describe(self, model_id: str) -> str:
        """The model card and berg's facts about the model, as text."""
        spec = resolve_spec(model_id)
        lines = [spec.model_id, "=" * len(spec.model_id), spec.description.strip(), ""]
        if spec.subjects is not None:
            lines.append(f"subjects: {', '.join(spec.subjects)}")
        if spec.rois:
            lines.append(f"ROIs: {', '.join(spec.rois)}")
        for key, text in spec.selection.items():
            lines.append(f"selection[{key!r}]: {text}")
        lines.append(f"stimulus: {spec.stimulus}")
        for opt in spec.options.declared:
            lines.append(f"option {opt.name} = {opt.default!r}  ({opt.summary()})")
        for key, value in spec.info.items():
            lines.append(f"{key}: {value}")
        lines.append(f"plugin: {spec.plugin}")
        if spec.card:
            lines += ["", spec.card.strip()]
        return "\n".join(lines).strip() + "\n"

    def fetch(self, model_id: str, subject: str | int | None = None, show_progress: bool = True, *,
              include_backbone: bool = True, options: dict[str, Any] | None = None) -> list[Path]:
        """Download (or verify) everything the model needs ahead of use; return the local paths.

        For ``subject`` (every subject of a per-subject model when None): BERG's files into berg_dir; then,
        with ``include_backbone=True``, the Hugging Face backbone the model loads (its ``backbone``/``revision``
        options, overridable by ``options``, e.g. ``{"backbone": "/data/gpt2-xl"}``) into the HF cache, so compute nodes can run with
        ``HF_HUB_OFFLINE=1``; then the plugin's ``prepare`` step (conversions, caches; it gets the validated ``options``
        when it takes them, e.g. Text2fMRI's ``model_variant``). Each backbone's config
        is checked first (exists, no custom code, supported architecture), before anything large is downloaded.
        """
        from berg_core.spec import run_prepare
        from berg_core.store.fetch import fetch_model_files

        spec = resolve_spec(model_id)
        merged = check_options(spec, dict(options or {}))
        subjects = [check_subject(spec, subject)] if subject is not None or spec.subjects is None else list(spec.subjects)
        backbones = backbones_of(spec, merged) if include_backbone else []
        if backbones:
            from berg_core.features.backbones import backbone_config, fetch_backbone

            for name, revision in backbones:  # cheap check (config.json only) before any large download
                backbone_config(name, revision)
        paths: list[Path] = []
        for subj in subjects:
            try:
                paths += fetch_model_files(spec, subj, self.berg_dir, show_progress=show_progress)
            except BergError as exc:
                fill_fetch_hint(exc, spec.model_id, subj)
                raise
        for name, revision in backbones:
            paths.append(Path(fetch_backbone(name, revision=revision, show_progress=show_progress)))
        if spec.prepare:
            for subj in subjects:
                with plugin_errors(spec.model_id, spec.plugin, "preparing the model's files", subject=subj):
                    run_prepare(spec, subj, self.berg_dir, show_progress, merged)  # -O options reach hooks that take them
        return list(dict.fromkeys(paths))
