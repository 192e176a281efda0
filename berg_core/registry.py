"""The model registry: plugins discovered through entry points, loaded lazily and once.

Rules (xarray's backend loading, llm's hooks):
- entry points of group ``berg`` are loaded on first registry use, never at ``import berg_core``;
- each entry point is loaded and called inside its own try/except: a failure becomes a recorded
  ``PluginError`` (``berg plugins`` shows it); ``BERG_STRICT_PLUGINS=1`` re-raises it instead;
- ``BERG_LOAD_PLUGINS=a,b`` loads only those entry names, ``BERG_DISABLE_PLUGINS=a`` skips some;
- a model id claimed twice is kept out entirely and reported with both claimants;
- a model's ``aliases`` (older ids) resolve to it, with a one-line notice naming the current id; an alias that is
  another model's id, or that two models claim, is refused (the model keeps its id; the alias is dropped) and
  reported as a problem of each plugin involved, naming both distributions (``BERG_STRICT_PLUGINS=1`` raises);
- a trained-encoder card found through ``$BERG_ENCODER_PATH`` (the built-in ``trained`` source) never
  shadows an installed plugin's model: a card claiming such an id is kept out and reported;
- a plugin may report one skipped item (a bad card) through ``register.problem(source, message)``: it is
  shown by ``berg plugins`` and hides only that item;
- every spec is tagged with ``"<distribution> <version>"`` of the plugin that registered it;
- a plugin whose hook implementations do not match berg's hookspecs (a misspelled name such as
  ``berg_register_encoder``, or no ``@hookimpl`` at all) is not loaded: it is a recorded ``PluginError``
  too (a hook meant for a newer berg can be marked ``@hookimpl(optionalhook=True)``);
- ``check_imports`` imports every ``"module:attr"`` string of every model (``berg plugins --check``).
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
from berg_core.console import notice
from berg_core.errors import ModelNotFoundError, PluginError
from berg_core.spec import EncoderSpec

ENTRY_POINT_GROUP = "berg"

#: Plugins that ship inside berg_core and register through the same hook as external ones.
BUILTIN_PLUGINS: tuple[tuple[str, str], ...] = (("trained", "berg_core.trained.cards"),)
#: Sources whose models yield to every installed plugin's (folders on a path variable must not shadow them).
YIELDING_PLUGINS: frozenset[str] = frozenset({"trained"})


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
    #: items the plugin skipped (e.g. a refused trained-encoder card), one line each
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "module": self.module,
            "models": list(self.models),
            "error": self.error,
            "problems": list(self.problems),
        }


@dataclass
class Registry:
    """All models that loaded cleanly, the plugins seen, and the ids kept out as duplicates."""

    specs: dict[str, EncoderSpec] = field(default_factory=dict)
    plugins: list[PluginRecord] = field(default_factory=list)
    duplicates: dict[str, list[str]] = field(default_factory=dict)
    #: model id -> the yielding claimants (trained-encoder folders) kept out because a plugin owns the id
    shadowed: dict[str, list[str]] = field(default_factory=dict)
    #: alias (an older id) -> the model id it stands for
    aliases: dict[str, str] = field(default_factory=dict)
    #: aliases already announced in this process (the notice is printed once per alias)
    _announced: set[str] = field(default_factory=set, repr=False)

    def canonical(self, model_id: str) -> str:
        """``model_id`` itself, or the id an alias stands for (no notice; unknown ids come back unchanged)."""
        return model_id if model_id in self.specs else self.aliases.get(model_id, model_id)

    def get(self, model_id: str) -> EncoderSpec:
        try:
            return self.specs[model_id]
        except KeyError:
            pass
        target = self.aliases.get(model_id)
        if target is not None:
            if model_id not in self._announced:
                self._announced.add(model_id)
                notice(f"note: {model_id!r} is an older id of {target!r}; use {target!r} (same model; `berg info {target}` "
                       "lists its subjects and options)")
            return self.specs[target]
        if model_id in self.duplicates:
            raise ModelNotFoundError(
                f"model id {model_id!r} is claimed by several plugins ({', '.join(self.duplicates[model_id])}) "
                "and was kept out; uninstall or disable one (BERG_DISABLE_PLUGINS=name)"
            )
        close = difflib.get_close_matches(model_id, [*self.specs, *self.aliases], n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else "; run `berg list` to see the installed models"
        raise ModelNotFoundError(f"unknown model {model_id!r}{hint}")

    def find(self, pattern: str | None = None) -> list[EncoderSpec]:
        """Specs whose id or one of its aliases matches ``pattern`` (case-insensitive substring, or a glob with
        * ? []), or whose family is ``pattern``; each model once, by id."""
        specs = sorted(self.specs.values(), key=lambda s: s.model_id)
        if not pattern:
            return specs
        pat = pattern.lower()

        def ids(s: EncoderSpec) -> list[str]:
            return [s.model_id.lower()] + [a.lower() for a in s.aliases if self.aliases.get(a) == s.model_id]

        if any(ch in pat for ch in "*?["):
            return [s for s in specs if any(fnmatch.fnmatch(i, pat) for i in ids(s))]
        return [s for s in specs if any(pat in i for i in ids(s)) or pat == s.family.lower()]


_registry: Registry | None = None


def _env_names(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return {n.strip() for n in raw.split(",") if n.strip()}


def _strict() -> bool:
    return os.environ.get("BERG_STRICT_PLUGINS", "").lower() in {"1", "true", "yes", "on"}


class Registrar:
    """The ``register`` callable handed to one plugin's hook: collects its specs and the items it skipped."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.specs: list[EncoderSpec] = []
        self.problems: list[str] = []

    def __call__(self, spec: EncoderSpec) -> None:
        if not isinstance(spec, EncoderSpec):
            raise PluginError(f"plugin {self.name!r} registered {type(spec).__name__}, not an EncoderSpec")
        self.specs.append(spec)

    def problem(self, source: str, message: str) -> None:
        """Record that ``source`` (e.g. an encoder folder) was skipped because of ``message`` (one line)."""
        line = f"skipped {source}: {message}"
        if _strict():
            raise PluginError(f"plugin {self.name!r} {line}")
        self.problems.append(" ".join(line.split()))


def _check_hooks(pm: pluggy.PluginManager, plugin: ModuleType | object) -> None:
    """Raise ``PluginError`` when ``plugin`` implements a hook berg does not have, or no berg hook at all.

    pluggy would silently ignore both (a misspelled ``berg_register_encoder`` registers zero models); this is
    the unknown-hook check of ``PluginManager.check_pending``, per plugin and with a did-you-mean.
    """
    known = sorted(n for n, caller in vars(pm.hook).items() if not n.startswith("_") and caller.has_spec())
    callers = pm.get_hookcallers(plugin) or []
    unknown = sorted(c.name for c in callers if not c.has_spec() and any(not i.optionalhook for i in c.get_hookimpls()))
    if unknown:
        named = []
        for hook in unknown:
            close = difflib.get_close_matches(hook, known, n=1, cutoff=0.6)
            named.append(f"{hook!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise PluginError(f"unknown hook {', '.join(named)}: berg's hooks are {', '.join(known)}; rename it, or mark a hook "
                          "for a newer berg @hookimpl(optionalhook=True)")
    if not callers:
        raise PluginError(f"no berg hook implementation found: define {', '.join(known)} decorated with @berg_core.hookimpl")


def _collect(plugin: ModuleType | object, name: str, registrar: Registrar | None = None) -> list[EncoderSpec]:
    """Call one plugin's hook implementation in its own plugin manager and return what it registered."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(plugin, name=name)
    _check_hooks(pm, plugin)
    registrar = registrar or Registrar(name)
    pm.hook.berg_register_encoders(register=registrar)
    return registrar.specs


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
        registrar = Registrar(name)
        try:
            plugin = ep.load() if ep is not None else importlib.import_module(module)
            specs = _collect(plugin, name, registrar)
        except Exception as exc:  # isolation: one broken plugin never breaks the others
            if _strict():
                raise PluginError(f"plugin {name!r} ({dist} {version}) failed: {exc}") from exc
            record.error = f"{type(exc).__name__}: {exc}"
            record.traceback = traceback.format_exc()
            record.problems = registrar.problems
            continue
        record.problems = registrar.problems
        tag = f"{dist} {version}"
        for spec in specs:
            claims.setdefault(spec.model_id, []).append((name, spec.with_plugin(tag)))
            record.models.append(spec.model_id)
    records = {r.name: r for r in reg.plugins}
    for model_id, claimants in claims.items():
        owners = [(n, s) for n, s in claimants if n not in YIELDING_PLUGINS]
        if owners and len(owners) < len(claimants):
            kept_out = [_claimant(n, s) for n, s in claimants if n in YIELDING_PLUGINS]
            reg.shadowed[model_id] = kept_out
            for n, s in claimants:
                if n in YIELDING_PLUGINS:
                    records[n].models.remove(model_id)
                    records[n].problems.append(f"skipped {_claimant(n, s)}: its card claims model id {model_id!r} of installed "
                                               f"plugin {', '.join(o for o, _ in owners)}; give it another model_id")
            claimants = owners
        if len(claimants) == 1:
            reg.specs[model_id] = claimants[0][1]
        else:
            reg.duplicates[model_id] = [_claimant(n, s) if n in YIELDING_PLUGINS else n for n, s in claimants]
    _resolve_aliases(reg, claims, records)
    return reg


def _resolve_aliases(reg: Registry, claims: dict[str, list[tuple[str, EncoderSpec]]], records: dict[str, PluginRecord]) -> None:
    """Fill ``reg.aliases`` from the registered specs; refuse (and report on each plugin involved) an alias that is
    another model's id or that several models claim: the alias is dropped, every model keeps its own id."""
    alias_claims: dict[str, list[tuple[str, EncoderSpec]]] = {}
    for model_id, spec in reg.specs.items():
        name = next(n for n, s in claims[model_id] if s is spec)
        for alias in spec.aliases:
            alias_claims.setdefault(alias, []).append((name, spec))
    for alias, claimants in alias_claims.items():
        if alias not in claims and len(claimants) == 1:
            reg.aliases[alias] = claimants[0][1].model_id
            continue
        if alias in claims:  # another model's id (it keeps it, even when that id is itself kept out as a duplicate)
            clash = "the model id of " + " and of ".join(f"{s.plugin or n}" for n, s in claims[alias])
        else:
            clash = "an alias claimed by " + " and by ".join(f"{s.model_id!r} ({s.plugin or n})" for n, s in claimants)
        for name, spec in claimants:
            line = (f"refused alias {alias!r} of model {spec.model_id!r} ({spec.plugin or name}): {alias!r} is {clash}; "
                    "an alias may not repeat another model's id or alias (rename or drop it)")
            if _strict():
                raise PluginError(line)
            records[name].problems.append(line)


def _claimant(name: str, spec: EncoderSpec) -> str:
    """How ``berg plugins`` names one claimant: a trained-encoder folder by its path, a plugin by its name."""
    path = spec.info.get("path") if isinstance(spec.info, dict) else None
    return f"{name} folder {path}" if path else name


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
