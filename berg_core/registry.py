"""The model registry: plugins discovered through entry points, loaded lazily and once.

Rules (xarray's backend loading, llm's hooks):
- entry points of group ``berg`` are loaded on first registry use, never at ``import berg_core``;
- each entry point is loaded and called inside its own try/except: a failure becomes a recorded
  ``PluginError`` (``berg plugins`` shows it); ``BERG_STRICT_PLUGINS=1`` re-raises it instead;
- ``BERG_LOAD_PLUGINS=a,b`` loads only those entry names, ``BERG_DISABLE_PLUGINS=a`` skips some;
- a model id claimed twice is kept out entirely and reported with both claimants;
- every spec is tagged with ``"<distribution> <version>"`` of the plugin that registered it.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
import traceback
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any

import pluggy

from berg_core import hookspecs
from berg_core.errors import ModelNotFoundError, PluginError
from berg_core.spec import EncoderSpec

ENTRY_POINT_GROUP = "berg"

#: Plugins that ship inside berg_core and register through the same hook as external ones.
BUILTIN_PLUGINS: tuple[tuple[str, str], ...] = (("trained", "berg_core.trained_cards"),)


@dataclass
class PluginRecord:
    """What ``berg plugins`` shows for one entry point."""

    name: str
    distribution: str
    version: str
    module: str
    models: list[str] = field(default_factory=list)
    error: str | None = None
    traceback: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "module": self.module,
            "models": list(self.models),
            "error": self.error,
        }


@dataclass
class Registry:
    """All models that loaded cleanly, the plugins seen, and the ids kept out as duplicates."""

    specs: dict[str, EncoderSpec] = field(default_factory=dict)
    plugins: list[PluginRecord] = field(default_factory=list)
    duplicates: dict[str, list[str]] = field(default_factory=dict)

    def get(self, model_id: str) -> EncoderSpec:
        try:
            return self.specs[model_id]
        except KeyError:
            pass
        if model_id in self.duplicates:
            raise ModelNotFoundError(
                f"model id {model_id!r} is claimed by several plugins ({', '.join(self.duplicates[model_id])}) "
                "and was kept out; uninstall or disable one (BERG_DISABLE_PLUGINS=name)"
            )
        close = difflib.get_close_matches(model_id, list(self.specs), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else "; run `berg list` to see the installed models"
        raise ModelNotFoundError(f"unknown model {model_id!r}{hint}")

    def find(self, pattern: str | None = None) -> list[EncoderSpec]:
        """Specs whose id matches ``pattern`` (case-insensitive substring, or a glob with * ? [])."""
        specs = sorted(self.specs.values(), key=lambda s: s.model_id)
        if not pattern:
            return specs
        pat = pattern.lower()
        if any(ch in pat for ch in "*?["):
            return [s for s in specs if fnmatch.fnmatch(s.model_id.lower(), pat)]
        return [s for s in specs if pat in s.model_id.lower() or pat == s.family.lower()]


_registry: Registry | None = None


def _env_names(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return {n.strip() for n in raw.split(",") if n.strip()}


def _strict() -> bool:
    return os.environ.get("BERG_STRICT_PLUGINS", "").lower() in {"1", "true", "yes", "on"}


def _collect(plugin: ModuleType | object, name: str) -> list[EncoderSpec]:
    """Call one plugin's hook implementation in its own plugin manager and return what it registered."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(plugin, name=name)
    found: list[EncoderSpec] = []

    def register(spec: EncoderSpec) -> None:
        if not isinstance(spec, EncoderSpec):
            raise PluginError(f"plugin {name!r} registered {type(spec).__name__}, not an EncoderSpec")
        found.append(spec)

    pm.hook.berg_register_encoders(register=register)
    return found


def _sources() -> list[tuple[str, str, str, str, EntryPoint | None]]:
    """(name, distribution, version, module, entry point) for built-ins then installed entry points."""
    import berg_core

    out: list[tuple[str, str, str, str, EntryPoint | None]] = [
        (name, "berg-core", berg_core.__version__, module, None) for name, module in BUILTIN_PLUGINS
    ]
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = getattr(ep, "dist", None)
        out.append((ep.name, dist.name if dist else "?", dist.version if dist else "?", ep.value, ep))
    return out


def build_registry() -> Registry:
    """Discover and load every plugin (see the module docstring for the rules)."""
    import importlib

    allow = _env_names("BERG_LOAD_PLUGINS")
    block = _env_names("BERG_DISABLE_PLUGINS") or set()
    reg = Registry()
    claims: dict[str, list[tuple[str, EncoderSpec]]] = {}
    for name, dist, version, module, ep in _sources():
        if (allow is not None and name not in allow) or name in block:
            continue
        record = PluginRecord(name=name, distribution=dist, version=version, module=module)
        reg.plugins.append(record)
        try:
            plugin = ep.load() if ep is not None else importlib.import_module(module)
            specs = _collect(plugin, name)
        except Exception as exc:  # isolation: one broken plugin never breaks the others
            if _strict():
                raise PluginError(f"plugin {name!r} ({dist} {version}) failed: {exc}") from exc
            record.error = f"{type(exc).__name__}: {exc}"
            record.traceback = traceback.format_exc()
            continue
        tag = f"{dist} {version}"
        for spec in specs:
            claims.setdefault(spec.model_id, []).append((name, spec.with_plugin(tag)))
            record.models.append(spec.model_id)
    for model_id, claimants in claims.items():
        if len(claimants) == 1:
            reg.specs[model_id] = claimants[0][1]
        else:
            reg.duplicates[model_id] = [n for n, _ in claimants]
    return reg


def get_registry() -> Registry:
    """The process-wide registry, built on first use."""
    global _registry
    if _registry is None:
        _registry = build_registry()
    return _registry


def reset_registry() -> None:
    """Forget the loaded plugins (tests; after installing a plugin in-process)."""
    global _registry
    _registry = None


def get_spec(model_id: str) -> EncoderSpec:
    """The spec of ``model_id``; unknown ids raise ``ModelNotFoundError`` with close matches."""
    return get_registry().get(model_id)
