"""The declared plugin-author API: ``berg_core``'s top level (docs/plugins.md).

Families import only from it (an AST scan here, import-linter in ``nox -s lint``); every exported name resolves,
is documented, and stays lazy (``import berg_core`` imports no numpy: tests/integration/test_lazy_imports.py).
"""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import berg_core

ROOT = Path(__file__).resolve().parents[2]

# the family code (everything a plugin ships), which must use berg_core's top level only
FAMILY_DIRS = [
    ROOT / "plugins" / "berg_tuckute" / "berg_tuckute",
    ROOT / "plugins" / "berg_lebel" / "berg_lebel",
    ROOT / "plugins" / "berg_brainscore" / "berg_brainscore",
    ROOT / "tests" / "plugins" / "berg_testplugin" / "berg_testplugin",
]
TRAINED_FILES = sorted((ROOT / "berg_core" / "trained").glob("*.py"))
FAMILY_FILES = sorted(f for d in FAMILY_DIRS for f in d.glob("*.py")) + TRAINED_FILES
# the built-in trained family (berg_core/trained/) may also use its own modules
ALLOWED_SUBMODULES = {f: {"berg_core.trained", "berg_core.trained.cards", "berg_core.trained.encoder"} for f in TRAINED_FILES}

# what the families in this repository need (issue 10): the store, feature, signal and safe-loader helpers
NEEDED = [
    "hookimpl", "EncoderSpec", "RemoteFile", "Option", "Encoder", "select_outputs", "LinearReadout",
    "BergError", "InvalidParameterError", "ModelLoadError", "ResourceError", "DownloadError", "PluginError", "StimulusError",
    "ensure_file", "read_manifest", "sha256_file", "verify_recorded", "build_once", "cache_path", "cache_key", "atomic_folder",
    "load_backbone", "backbone_config", "backbone_revision", "sentence_features", "word_features", "word_features_key",
    "cached_features", "lanczos_resample", "tr_grid", "delay", "zscore", "load_tree", "save_tree", "is_valid_tree",
    "load_pickle", "load_npy_object", "load_npy_lazily", "read_columns", "write_matrix", "build_matrix", "matrix_info",
    "is_complete", "ArrayColumns", "RawArray", "LazyLoadUnsupported", "TimedWords", "as_timed_words", "resolve_device",
    "default_dtype", "progress", "progress_bar", "hf_guard", "offline_vars", "pad_batch", "register_package_encoders",
]


def _berg_core_imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) of every ``import berg_core...`` / ``from berg_core... import ...`` in ``path``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] == "berg_core":
            out.append((node.lineno, node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name, []) for a in node.names if a.name.split(".")[0] == "berg_core"]
    return out


def test_the_families_needs_are_exported():
    missing = [name for name in NEEDED if name not in berg_core.__all__]
    assert missing == []


@pytest.mark.parametrize("name", sorted(berg_core.__all__))
def test_every_export_resolves_and_is_documented(name):
    value = getattr(berg_core, name)
    if callable(value):
        assert inspect.getdoc(value), f"berg_core.{name} has no docstring"


@pytest.mark.parametrize("path", FAMILY_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_families_import_only_the_top_level(path):
    allowed = {"berg_core"} | ALLOWED_SUBMODULES.get(path, set())
    found = _berg_core_imports(path)
    bad = [f"{path.name}:{line}: {module}" for line, module, _ in found if module not in allowed]
    assert bad == [], "import these names from berg_core instead"
    unknown = [n for _, module, names in found if module == "berg_core" for n in names if n not in berg_core.__all__]
    assert unknown == []


def test_the_guide_lists_every_export():
    guide = (ROOT / "docs" / "plugins.md").read_text()
    missing = [name for name in berg_core.__all__ if name not in {"__version__", "BERG"} and f"`{name}" not in guide]
    assert missing == []


def test_names_shared_with_a_submodule_stay_the_functions():
    # `progress` and `word_features` are also submodule names; importing the submodule first must not shadow them
    code = ("import types, berg_core.console, berg_core.features.words\n"
            "from berg_core import progress, word_features\n"
            "assert callable(progress) and not isinstance(progress, types.ModuleType), progress\n"
            "assert callable(word_features) and not isinstance(word_features, types.ModuleType), word_features\n"
            "from berg_core.features.words import word_features_key\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_a_patched_submodule_is_what_the_top_level_gives(monkeypatch):
    import berg_core.features.timeseries

    def fake(x, **kwargs):
        return "patched"

    monkeypatch.setattr(berg_core.features.timeseries, "zscore", fake)
    from berg_core import zscore

    assert zscore is fake
