"""``berg new-plugin NAME --kind trained|sentences|timed-words``: names, folders and kinds, and what a coded
package is made of (rendered from the templates shipped in berg_core, written only against the declared API).

Installing a rendered package and running its own tests is the ``template`` nox session's job (minutes);
these are the fast checks of the command and of the rendered files.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import berg_core
from berg_core import Option
from berg_core.cli import main
from berg_core.cli.new_plugin import KINDS, create_plugin, render
from berg_core.errors import InvalidParameterError

REPO = Path(__file__).resolve().parents[2]
CODED = ("sentences", "timed-words")


def one_line_error(capsys, *argv: str) -> str:
    """Run the CLI; it must fail with exactly one ``berg: error:`` line and no traceback."""
    assert main(list(argv)) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("berg: error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def berg_imports(source: str) -> set[str]:
    """The ``berg_core...`` modules a Python source imports (``from X import`` and ``import X``)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "berg_core":
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "berg_core"}
    return found


# ----------------------------------------------------------------------------------------- names, folders, kinds
@pytest.mark.parametrize("kind", CODED)
@pytest.mark.parametrize("name", ["core", "lebel", "trained", "My-Lab", "mylab_", "9lab", "a" * 41])
def test_bad_names_are_refused_for_every_kind_and_nothing_is_written(name, kind, capsys, tmp_path):
    with pytest.raises(InvalidParameterError, match="plugin name"):
        render(name, kind=kind)
    one_line_error(capsys, "new-plugin", name, "--kind", kind, "--out", str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_is_kept_unless_force(capsys, tmp_path):
    root = create_plugin("mylab", out=tmp_path, kind="sentences")
    (root / "berg_mylab" / "encoder.py").write_text("# my edits\n")
    err = one_line_error(capsys, "new-plugin", "mylab", "--kind", "timed-words", "--out", str(tmp_path))
    assert "already exists" in err and "--force" in err
    assert (root / "berg_mylab" / "encoder.py").read_text() == "# my edits\n"
    assert main(["new-plugin", "mylab", "--kind", "timed-words", "--out", str(tmp_path), "--force"]) == 0
    assert "StoryEncoder" in (root / "berg_mylab" / "encoder.py").read_text()
    assert not (root / "tests" / "fixtures" / "sentences.txt").exists()  # the old package is replaced, not merged


def test_kinds_unknown_or_mixed_with_encoders_are_refused(capsys, tmp_path):
    with pytest.raises(InvalidParameterError, match="--kind 'neural'"):
        create_plugin("mylab", out=tmp_path, kind="neural")
    with pytest.raises(SystemExit):  # argparse lists the choices
        main(["new-plugin", "mylab", "--kind", "neural", "--out", str(tmp_path)])
    assert "sentences" in capsys.readouterr().err
    (tmp_path / "enc").mkdir()
    err = one_line_error(capsys, "new-plugin", "mylab", "--kind", "sentences", "--encoder", str(tmp_path / "enc"), "--out",
                         str(tmp_path / "pkgs"))
    assert "--kind trained" in err
    assert not (tmp_path / "pkgs").exists()


def test_trained_stays_the_default_kind(tmp_path, capsys):
    assert render("mylab") == render("mylab", kind="trained")
    assert main(["new-plugin", "mylab", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "berg-mylab" / "berg_mylab" / "encoders").is_dir()
    assert not (tmp_path / "berg-mylab" / "berg_mylab" / "encoder.py").exists()
    assert main(["new-plugin", "coded", "--kind", "sentences", "--out", str(tmp_path)]) == 0
    assert "a sentences model" in capsys.readouterr().err
    assert not (tmp_path / "berg-coded" / "berg_coded" / "encoders").exists()


# ----------------------------------------------------------------------------------------- what a coded package holds
@pytest.mark.parametrize("kind", CODED)
def test_a_coded_package_has_its_parts_and_valid_files(kind):
    files = render("mylab", "1.2.0", kind)
    for part in ("pyproject.toml", "README.md", "berg_mylab/__init__.py", "berg_mylab/plugin.py", "berg_mylab/encoder.py",
                 "berg_mylab/weights.py", "berg_mylab/readouts/README.md", "tests/conftest.py", "tests/test_encoder.py"):
        assert part in files, part
    assert any(p.startswith("tests/fixtures/") for p in files)
    for rel, text in files.items():
        assert "{{" not in text and "NAME" not in rel, rel
        if rel.endswith(".py"):
            compile(text, rel, "exec")
        if rel.endswith(".json"):
            json.loads(text)
    data = tomllib.loads(files["pyproject.toml"])
    assert data["project"]["name"] == "berg-mylab" and data["project"]["version"] == "1.2.0"
    assert data["project"]["entry-points"]["berg"] == {"mylab": "berg_mylab.plugin"}
    assert data["tool"]["setuptools"]["package-data"] == {"berg_mylab": ["readouts/*"]}


@pytest.mark.parametrize("kind", CODED)
def test_a_coded_package_uses_only_the_declared_api(kind):
    """The package imports berg_core's top level only (its tests also berg_core.testing), and every name it imports
    from there is declared (exported and listed in docs/plugins.md); encoder.py + plugin.py stay about 60 lines."""
    files = render("mylab", kind=kind)
    guide = (REPO / "docs" / "plugins.md").read_text()
    for rel, text in files.items():
        if not rel.endswith(".py"):
            continue
        allowed = {"berg_core", "berg_core.testing", "berg_core.testing.hf"} if rel.startswith("tests/") else {"berg_core"}
        assert berg_imports(text) <= allowed, rel
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and node.module == "berg_core":
                for alias in node.names:
                    assert alias.name in berg_core.__all__, (rel, alias.name)
                    assert f"`{alias.name}" in guide or alias.name in ("BERG",), (rel, alias.name)
    lines = sum(len(files[f"berg_mylab/{m}.py"].splitlines()) for m in ("encoder", "plugin"))
    assert lines <= 70, lines


@pytest.mark.parametrize("kind", CODED)
def test_a_coded_plugin_registers_one_spec_with_typed_options_and_imports_nothing_heavy(kind, tmp_path, monkeypatch):
    name = f"tpl_{kind.replace('-', '_')}"
    root = create_plugin(name, out=tmp_path, kind=kind)
    probe = (f"import sys; import berg_{name}.plugin as p; specs = []; p.berg_register_encoders(specs.append); "
             "heavy = sorted(m for m in ('numpy', 'torch', 'transformers') if m in sys.modules); "
             "print(specs[0].model_id, specs[0].stimulus, specs[0].factory, heavy)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    model_id, stimulus, factory, heavy = out.stdout.split(" ", 3)
    assert model_id.startswith(f"fmri-{name}-") and heavy.strip() == "[]"
    assert stimulus == ("sentences" if kind == "sentences" else "timed_words")
    assert factory.startswith(f"berg_{name}.encoder:")
    monkeypatch.syspath_prepend(str(root))
    try:
        from importlib import import_module

        specs = []
        import_module(f"berg_{name}.plugin").berg_register_encoders(specs.append)
        options = {n: specs[0].options.option(n) for n in specs[0].options}
        assert all(isinstance(o, Option) for o in options.values())
        assert (options["layer"].type, options["batch_size"].type, options["weights"].type) == (int, int, str)
        assert options["dtype"].choices == ("float32", "float16", "bfloat16")
    finally:
        for mod in [m for m in sys.modules if m == f"berg_{name}" or m.startswith(f"berg_{name}.")]:
            del sys.modules[mod]


def test_the_templates_ship_as_package_data():
    """Every template file is matched by berg_core's package-data glob, so an installed berg can render every kind."""
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["berg_core"]
    assert "cli/templates/**/*.tmpl" in data
    templates = REPO / "berg_core" / "cli" / "templates"
    files = [p for p in templates.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert files and all(p.suffix == ".tmpl" for p in files), [p for p in files if p.suffix != ".tmpl"]
    assert {p.relative_to(templates).parts[0] for p in files} == {"coded", *KINDS}
