"""``EncoderSpec``: the light, import-free description of one model a plugin registers.

The heavy code stays behind ``factory`` and ``metadata`` strings (``"package.module:attr"``) that are
imported only when the model is loaded (npe2's lazy factories).
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from berg_core.errors import PluginError
from berg_core.options import Options

StimulusKind = Literal["sentences", "timed_words", "words", "tr_texts"]


@dataclass(frozen=True)
class RemoteFile:
    """A file of BERG's bucket a model needs.

    ``path`` is relative to berg_dir (= the bucket root) and may contain ``{subject}``.
    ``sha256``/``size`` are optional known values; otherwise they are recorded on first download.
    """

    path: str
    sha256: str | None = None
    size: int | None = None
    per_subject: bool = False

    def for_subject(self, subject: str | None) -> str:
        return self.path.format(subject=subject) if "{subject}" in self.path else self.path


@dataclass(frozen=True)
class EncoderSpec:
    """One model as a plugin registers it (data only).

    Attributes:
        model_id: BERG's model id, e.g. ``"fmri-tuckute_2024-GPT2_XL"``.
        family: plugin namespace (``"tuckute"``, ``"lebel"``, ...).
        factory: ``"module:attr"`` of a callable ``(spec, *, subject, selection, device, berg_dir,
            **options) -> Encoder`` (usually the Encoder subclass itself).
        modality: ``"fmri"``.
        description: one paragraph for ``berg info``.
        subjects: valid subject ids, or ``None`` when the model has no subjects.
        selection: selection schema: key -> description (e.g. ``{"roi": "lang_LH_IFG, ..."}``).
        rois: the default output columns when they are fixed ROIs (e.g. Tuckute's six), else ``()``.
        stimulus: ``"sentences"`` (list of str), ``"timed_words"`` (dict of words + word_onsets) or ``"words"``
            (list of str, one output row per word, context = the preceding words of the same call) or ``"tr_texts"``
            (list of str, one per fMRI TR, empty strings = silent TRs; one output row per TR).
        metadata: ``"module:attr"`` of ``(spec, subject, berg_dir) -> dict`` (no backbone load).
        remote_files: files of BERG's bucket the model needs (``berg fetch`` gets them).
        prepare: optional ``"module:attr"`` of ``(spec, subject, berg_dir, show_progress, *, options) -> None`` that
            ``berg fetch`` runs after the remote files (e.g. to build a cache ahead of first use); ``options`` is the
            validated load options (defaults filled in, ``-O key=value`` applied), passed only to hooks that accept an
            ``options`` keyword (or ``**kwargs``): the older four-argument form still works.
        card: the model card text (``berg info``).
        options: the declared load options: ``Options(Option("layer", int, 22, help=...), ...)`` (a tuple of
            ``Option`` also works). The old form, a plain ``{name: default}`` dict, is still accepted and
            converted with each type inferred from its default (``None`` -> any value). Read back as a mapping
            ``name -> default``; validated once, before the factory is imported (``Options.check``).
        params: fixed factory parameters the plugin passes to its own factory (e.g. a trained encoder's
            folder): not user-settable, not shown by ``berg info``; the factory reads ``spec.params``.
        info: further JSON-able display facts shown by ``berg info`` (status, layer, reason, ...); factories
            should not read their parameters from here (use ``params``).
        aliases: other ids of the same model (ids BERG used earlier, spellings of BERG's docs): accepted everywhere an
            id is (``get_encoding_model``, ``berg encode/info/fetch``, ``get_spec``) with a one-line notice naming
            ``model_id``; ``berg list`` shows the model once, under ``model_id``. An alias that is another model's id or
            another model's alias is refused at registration (reported by ``berg plugins``; that model keeps its id).
        plugin: ``"distribution version"`` of the plugin that registered it (set by the registry).
    """

    model_id: str
    family: str
    factory: str
    modality: str = "fmri"
    description: str = ""
    subjects: tuple[str, ...] | None = None
    selection: dict[str, str] = field(default_factory=dict)
    rois: tuple[str, ...] = ()
    stimulus: StimulusKind = "sentences"
    metadata: str | None = None
    remote_files: tuple[RemoteFile, ...] = ()
    prepare: str | None = None
    card: str = ""
    options: Options = field(default_factory=Options)
    params: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    plugin: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", Options.of(self.options))
        aliases = (self.aliases,) if isinstance(self.aliases, str) else self.aliases
        if not isinstance(aliases, (tuple, list)) or not all(isinstance(a, str) and a.strip() == a and a for a in aliases):
            raise PluginError(f"{self.model_id}: aliases must be a tuple of non-empty model ids without spaces at the ends, "
                              f"got {self.aliases!r}")
        if self.model_id in aliases:
            raise PluginError(f"{self.model_id}: its aliases repeat its own model_id")
        object.__setattr__(self, "aliases", tuple(dict.fromkeys(aliases)))

    def with_plugin(self, plugin: str) -> EncoderSpec:
        return replace(self, plugin=plugin)

    def files_for(self, subject: str | None) -> list[RemoteFile]:
        """The remote files this model needs for ``subject`` (paths with the subject filled in)."""
        out = []
        for f in self.remote_files:
            if "{subject}" in f.path and subject is None:
                continue
            out.append(replace(f, path=f.for_subject(subject)))
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-able view used by ``berg info --json`` and ``describe``."""
        return {
            "model_id": self.model_id,
            "family": self.family,
            "modality": self.modality,
            "description": self.description,
            "subjects": list(self.subjects) if self.subjects is not None else None,
            "selection": dict(self.selection),
            "rois": list(self.rois),
            "stimulus": self.stimulus,
            "remote_files": [f.path for f in self.remote_files],
            "options": dict(self.options),
            "option_types": self.options.describe(),
            "info": dict(self.info),
            "aliases": list(self.aliases),
            "plugin": self.plugin,
        }


def import_object(path: str) -> Any:
    """Import ``"package.module:attr"`` (attr may be dotted)."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise PluginError(f"bad factory path {path!r}: expected 'package.module:attr'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise PluginError(f"cannot import {module_name!r} for {path!r}: {exc}; is its plugin installed with its dependencies?") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise PluginError(f"{module_name!r} has no attribute {attr!r} (from {path!r})") from exc
    return obj


def _takes_keyword(func: Any, name: str) -> bool:
    """Whether ``func`` accepts the keyword argument ``name`` (a parameter of that name, or ``**kwargs``)."""
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable without a signature: call it the old way
        return False
    return any(p.kind is p.VAR_KEYWORD or (p.name == name and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))
               for p in params)


def run_prepare(spec: EncoderSpec, subject: str | None, berg_dir: Path, show_progress: bool, options: dict[str, Any]) -> None:
    """Call the spec's ``prepare`` hook: with ``options=`` (the validated load options) when the hook accepts that
    keyword, else in the older four-argument form ``(spec, subject, berg_dir, show_progress)``."""
    if not spec.prepare:
        return
    hook = import_object(spec.prepare)
    if _takes_keyword(hook, "options"):
        hook(spec, subject, berg_dir, show_progress, options=dict(options))
    else:
        hook(spec, subject, berg_dir, show_progress)
