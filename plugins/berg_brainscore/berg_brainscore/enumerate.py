"""brainscore-language's model ids, found without importing any of its model modules.

brainscore-language registers each model in ``brainscore_language/models/<folder>/__init__.py`` with
lines like ``model_registry['gpt2'] = lambda: HuggingfaceSubject(model_id='gpt2', region_layer_mapping=
{ArtificialSubject.RecordingTarget.language_system: 'transformer.h.11'})``. Importing those modules has
side effects (Hugging Face hub access at import, tensorflow, nltk), so this module locates the installed
package with ``importlib.util.find_spec`` (which does not execute it) and reads the folders' source with
``ast``: registration keys (string literals, module-level string constants, f-strings inside ``for``
loops over literal sequences), the subject class, the hub id and the layer where they are literals.

Each id gets a status:

* ``usable``: runs as is (no download, or a Hugging Face download under 1 B parameters);
* ``large-download``: runs, but first downloads >= 1 B parameters of weights (>= 4 GB in float32) or
  other large resources (GloVe's 2 GB zip, a localizer data set);
* ``unsuitable``: berg cannot give language-network responses from it (features that ignore the text,
  no neural output, a Docker container, a TensorFlow 1.x graph), with the reason.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from berg_core import PluginError

REGISTRY_NAME = "model_registry"
USABLE, LARGE_DOWNLOAD, UNSUITABLE = "usable", "large-download", "unsuitable"
LARGE_PARAMS = 1e9  # parameters; >= this many -> "large-download" (4 bytes each in float32)

#: subject classes that cannot give text-driven neural responses, and why
UNSUITABLE_CLASSES: dict[str, str] = {
    "OASMSubject": "features ignore the text: OASM is a baseline whose features encode only a sentence's position in its block",
    "EarleyParserSubject": "no neural output: a symbolic Earley parser that only gives behavioural reading times",
    "ContainerSubject": "runs inside a Docker container (brainscore ContainerSubject); berg does not start containers",
}

#: parameter counts of hub models whose id carries no size
KNOWN_PARAMS: dict[str, float] = {
    "openai-gpt": 117e6,
    "distilgpt2": 82e6,
    "gpt2": 124e6,
    "gpt2-medium": 355e6,
    "gpt2-large": 774e6,
    "gpt2-xl": 1.56e9,
    "microsoft/phi-2": 2.7e9,
}

_SIZE_RE = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)([bBmM])(?![A-Za-z0-9])")
_TENSORFLOW_RE = re.compile(r"^\s*(?:import|from)\s+tensorflow\b", re.MULTILINE)
_DOWNLOAD_RE = re.compile(r"\b(?:urlretrieve|urlopen|requests\.get|hf_hub_download|snapshot_download|from_pretrained)\b")
_HOST_RE = re.compile(r"https?://([A-Za-z0-9.-]+)")
#: ``trust_remote_code=True`` / ``{"trust_remote_code": True}``: the model runs code from its hub repo
_REMOTE_CODE_RE = re.compile(r"""\btrust_remote_code\b["']?\s*[=:]\s*True\b""")
REMOTE_CODE_REASON = ("runs custom code from its Hugging Face repo (trust_remote_code=True), which berg will not run")


@dataclass(frozen=True)
class BrainscoreModel:
    """One id of brainscore's ``model_registry`` as read from the package source.

    ``layer`` is the language-system layer when it is a literal (e.g. ``"transformer.h.11"``), else None;
    ``hub_id`` the Hugging Face id for ``HuggingfaceSubject`` models; ``status`` one of ``usable``,
    ``large-download``, ``unsuitable``; ``reason`` says why in one sentence.
    """

    name: str
    folder: str
    subject_class: str
    hub_id: str | None
    layer: str | None
    status: str
    reason: str

    def to_info(self) -> dict[str, Any]:
        return {"brainscore_id": self.name, "brainscore_folder": self.folder, "brainscore_class": self.subject_class,
                "hub_id": self.hub_id, "layer": self.layer, "status": self.status, "reason": self.reason}

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> BrainscoreModel:
        return cls(name=info["brainscore_id"], folder=info["brainscore_folder"], subject_class=info["brainscore_class"],
                   hub_id=info.get("hub_id"), layer=info.get("layer"), status=info["status"], reason=info["reason"])


@dataclass(frozen=True)
class ScanResult:
    """All ids found, plus ``file:line`` of registrations whose id could not be evaluated."""

    models: tuple[BrainscoreModel, ...]
    unresolved: tuple[str, ...]


def package_dir() -> Path:
    """The installed ``brainscore_language`` folder, found without importing the package."""
    spec = importlib.util.find_spec("brainscore_language")
    if spec is None or not spec.submodule_search_locations:
        raise PluginError("brainscore-language is not installed; pip install berg-brainscore (it pins brainscore-language==2.3.0)")
    return Path(next(iter(spec.submodule_search_locations)))


def brainscore_version() -> str:
    """The installed brainscore-language version (from its distribution metadata, no import)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("brainscore-language")
    except PackageNotFoundError:
        return "unknown"


# -- evaluating literal strings ------------------------------------------------------------------


def _string(node: ast.AST | None, env: dict[str, Any]) -> str | None:
    """The value of a string expression made of literals, known names, f-strings and ``+``; else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name) and isinstance(env.get(node.id), (str, int, float)):
        return str(env[node.id])
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.FormattedValue):
                if value.format_spec is not None or value.conversion not in (-1, 115):
                    return None
                text = _string(value.value, env)
            else:
                text = _string(value, env)
            if text is None:
                return None
            parts.append(text)
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _string(node.left, env), _string(node.right, env)
        return None if left is None or right is None else left + right
    return None


def _module_constants(tree: ast.Module) -> dict[str, Any]:
    """Module-level ``NAME = <literal>`` assignments (strings, numbers, literal lists)."""
    env: dict[str, Any] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            try:
                env[stmt.targets[0].id] = ast.literal_eval(stmt.value)
            except (ValueError, SyntaxError, TypeError):
                continue
    return env


# -- reading registrations -------------------------------------------------------------------------


@dataclass
class _Registration:
    key: str | None
    value: ast.AST
    env: dict[str, Any]
    line: int


def _registrations(body: list[ast.stmt], env: dict[str, Any]) -> list[_Registration]:
    """``model_registry[<key>] = <value>`` statements in ``body``, unrolling ``for`` loops over literals."""
    found: list[_Registration] = []
    for stmt in body:
        if isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                if isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name) and target.value.id == REGISTRY_NAME:
                    found.append(_Registration(_string(target.slice, env), stmt.value, env, stmt.lineno))
        elif isinstance(stmt, ast.For):
            values: list[Any] | None
            try:
                values = list(ast.literal_eval(stmt.iter))
            except (ValueError, SyntaxError, TypeError):
                known = env.get(stmt.iter.id) if isinstance(stmt.iter, ast.Name) else None
                values = list(known) if isinstance(known, (list, tuple)) else None
            inner = _registrations(stmt.body, env)
            if values is None or not isinstance(stmt.target, ast.Name):
                found += [_Registration(None, r.value, r.env, r.line) for r in inner]  # ids depend on the loop: unresolved
                continue
            for value in values:
                found += _registrations(stmt.body, {**env, stmt.target.id: value})
        elif isinstance(stmt, (ast.If, ast.With, ast.Try)):
            found += _registrations(stmt.body, env)
    return found


def _callee(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


@dataclass
class _Call:
    """What a registration's value builds: the class (or factory) name and its literal keyword facts."""

    name: str
    hub_id: str | None = None
    layer: str | None = None
    localizer: bool = False
    tokenizer_id: str | None = None
    builds_model: bool = False  # a ``model=`` object is built in code (no hub weights to download)


def _read_call(call: ast.Call, env: dict[str, Any], functions: dict[str, ast.FunctionDef]) -> _Call:
    name = _callee(call.func) or "?"
    function = functions.get(name)
    if function is not None:  # a helper defined in the module: read the call it returns, its parameters bound
        params = [a.arg for a in function.args.args]
        bound = {**env}
        for param, arg in zip(params, call.args):
            if (text := _string(arg, env)) is not None:
                bound[param] = text
        for kw in call.keywords:
            if kw.arg and (text := _string(kw.value, env)) is not None:
                bound[kw.arg] = text
        for stmt in ast.walk(function):
            if isinstance(stmt, ast.Return) and isinstance(stmt.value, ast.Call):
                return _read_call(stmt.value, bound, functions)
    out = _Call(name=name)
    for kw in call.keywords:
        if kw.arg == "model_id":
            out.hub_id = _string(kw.value, env)
        elif kw.arg == "region_layer_mapping" and isinstance(kw.value, ast.Dict) and kw.value.values:
            out.layer = _string(kw.value.values[0], env)
        elif kw.arg == "use_localizer":
            out.localizer = isinstance(kw.value, ast.Constant) and kw.value.value is True
        elif kw.arg == "tokenizer" and isinstance(kw.value, ast.Call) and kw.value.args:
            out.tokenizer_id = _string(kw.value.args[0], env)
        elif kw.arg == "model":
            out.builds_model = True
    return out


def _describe(value: ast.AST, env: dict[str, Any], functions: dict[str, ast.FunctionDef]) -> _Call:
    body = value.body if isinstance(value, ast.Lambda) else value
    if isinstance(body, ast.Call):
        return _read_call(body, env, functions)
    return _Call(name=_callee(body) or "?")


# -- classifying ---------------------------------------------------------------------------------


def estimate_params(*names: str | None) -> float | None:
    """Parameter count from a size in the id (``opt-2.7b``, ``gpt-neo-125m``) or a known id; else None."""
    for name in names:
        if name and name in KNOWN_PARAMS:
            return KNOWN_PARAMS[name]
    for name in names:
        for number, unit in _SIZE_RE.findall(name or ""):
            return float(number) * (1e9 if unit.lower() == "b" else 1e6)
    return None


def _size_text(params: float) -> str:
    return f"~{params / 1e9:.1f} B parameters, ~{4 * params / 1e9:.1f} GB in float32" if params >= 1e9 else f"~{params / 1e6:.0f} M parameters"


def classify(name: str, call: _Call, folder_text: str) -> tuple[str, str]:
    """(status, reason) for one id, from its subject class and its folder's source text."""
    if call.name in UNSUITABLE_CLASSES:
        return UNSUITABLE, UNSUITABLE_CLASSES[call.name]
    if _REMOTE_CODE_RE.search(folder_text):
        return UNSUITABLE, REMOTE_CODE_REASON
    if _TENSORFLOW_RE.search(folder_text):
        return UNSUITABLE, "a TensorFlow 1.x graph model (tensorflow.compat.v1 + checkpoint download); berg's brainscore environment has no TensorFlow"
    params = estimate_params(call.hub_id, name)
    size = f" ({_size_text(params)})" if params else ""
    large = params is not None and params >= LARGE_PARAMS
    if call.name == "HuggingfaceSubject":
        notes = []
        if call.localizer:
            notes.append("reads localizer-selected units of several layers (use_localizer=True): the first load downloads the "
                         "Fedorenko 2010 localizer data and runs it")
        if call.tokenizer_id:
            notes.append(f"its tokenizer comes from {call.tokenizer_id} (a gated repo needs Hugging Face access)")
        if call.builds_model:
            notes.insert(0, f"a randomly initialised model built in code (hub id {call.hub_id or name!r} is only a label)")
        else:
            notes.insert(0, f"downloads {call.hub_id or name} from the Hugging Face hub{size}")
        return (LARGE_DOWNLOAD if large or call.localizer else USABLE), "; ".join(notes)
    hosts = sorted(set(_HOST_RE.findall(folder_text)))
    if "from_pretrained" in folder_text:
        hosts.append("the Hugging Face hub")
    if _DOWNLOAD_RE.search(folder_text):  # sizes are guessed from ids for hub models only ('glove-840b' is 840 B tokens)
        where = f" from {', '.join(hosts)}" if hosts else ""
        return LARGE_DOWNLOAD, f"{call.name}: downloads its weights{where} at first load"
    if call.name == "EmbeddingSubject":
        return USABLE, "word embeddings computed on the spot (no download); the sentence vector is the mean over words"
    if large:
        return LARGE_DOWNLOAD, f"custom brainscore subject {call.name}{size}"
    return USABLE, f"custom brainscore subject {call.name} (not vetted by berg)"


def _folder_text(folder: Path) -> str:
    """The source of the folder's own modules (tests excluded): what its model does at load."""
    texts = []
    for path in sorted(folder.glob("*.py")):
        if not path.name.startswith("test"):
            texts.append(path.read_text(encoding="utf-8", errors="replace"))
    return "\n".join(texts)


def scan_folder(folder: Path) -> tuple[list[BrainscoreModel], list[str]]:
    """The registrations in ``folder/__init__.py`` and ``file:line`` of any whose id is not a literal."""
    init = folder / "__init__.py"
    source = init.read_text(encoding="utf-8", errors="replace")
    try:
        tree = ast.parse(source, filename=str(init))
    except SyntaxError as exc:
        return [], [f"{init}:{exc.lineno} (syntax error)"]
    env = _module_constants(tree)
    functions = {s.name: s for s in tree.body if isinstance(s, ast.FunctionDef)}
    text = _folder_text(folder)
    models, unresolved = [], []
    for reg in _registrations(tree.body, env):
        if reg.key is None:
            unresolved.append(f"{init}:{reg.line}")
            continue
        call = _describe(reg.value, reg.env, functions)
        status, reason = classify(reg.key, call, text)
        models.append(BrainscoreModel(name=reg.key, folder=folder.name, subject_class=call.name, hub_id=call.hub_id,
                                      layer=call.layer, status=status, reason=reason))
    return models, unresolved


def scan(root: Path | None = None) -> ScanResult:
    """Every ``model_registry`` id under ``<brainscore_language>/models/*/__init__.py``, sorted by id."""
    models_dir = (root or package_dir()) / "models"
    models: list[BrainscoreModel] = []
    unresolved: list[str] = []
    for folder in sorted(models_dir.iterdir()):
        if not folder.is_dir() or folder.name.startswith(("_", ".")) or not (folder / "__init__.py").is_file():
            continue
        found, missing = scan_folder(folder)
        models += found
        unresolved += missing
    return ScanResult(models=tuple(sorted(models, key=lambda m: m.name)), unresolved=tuple(unresolved))


__all__ = ["BrainscoreModel", "ScanResult", "brainscore_version", "classify", "estimate_params", "package_dir", "scan"]
