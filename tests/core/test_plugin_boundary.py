"""The plugin boundary: hooks that match no hookspec are recorded errors; any non-BergError raised by plugin code
(on import, in its factory, metadata, prepare, encode or release) is one BergError line naming the plugin's
distribution and version; ``berg plugins --check`` imports every model's ``module:attr`` strings.

Each misbehaving plugin here is a real distribution (a ``.dist-info`` folder with ``entry_points.txt``) put on
``sys.path`` for one test, so discovery goes through ``importlib.metadata`` exactly as for an installed plugin.
"""

import json
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from berg_core import BERG, ModelLoadError, PluginError
from berg_core.cli import main
from berg_core.registry import build_registry, get_registry, reset_registry

MakePlugin = Callable[..., None]

GOOD_HOOK = """
from berg_core import EncoderSpec, hookimpl

@hookimpl
def berg_register_encoders(register):
    register(EncoderSpec(model_id={model_id!r}, family="fake", factory={factory!r}, metadata={metadata!r},
                         prepare={prepare!r}))
"""


@pytest.fixture
def make_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakePlugin]:
    """``make_plugin(dist, version, entry, modules={name: source})``: a distribution whose ``berg`` entry point
    ``entry`` is the first module; its modules are forgotten after the test."""
    created: list[str] = []

    def make(dist: str, version: str, entry: str, modules: dict[str, str]) -> None:
        root = tmp_path / f"site-{dist}"
        info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[berg]\n{entry} = {next(iter(modules))}\n")
        for name, source in modules.items():
            (root / f"{name}.py").write_text(textwrap.dedent(source))
            created.append(name)
        monkeypatch.syspath_prepend(str(root))
        reset_registry()  # as after a pip install in a running process

    yield make
    for name in created:
        sys.modules.pop(name, None)


def good_plugin(make_plugin: MakePlugin, dist: str, model_id: str, *, factory: str, metadata: str | None = None,
                prepare: str | None = None, extra: dict[str, str] | None = None) -> None:
    """A plugin with a correct hook registering one model whose code strings are ``factory``/``metadata``/``prepare``."""
    module = dist.replace("-", "_") + "_plugin"
    hook = GOOD_HOOK.format(model_id=model_id, factory=factory, metadata=metadata, prepare=prepare)
    make_plugin(dist, "2.3.4", dist.removeprefix("berg-"), {module: hook, **(extra or {})})


# -- hooks that match no hookspec -------------------------------------------------------------------------------

MISSPELLED = """
from berg_core import EncoderSpec, hookimpl

@hookimpl
def berg_register_encoder(register):  # one letter short: pluggy alone would ignore it
    register(EncoderSpec(model_id="typo-model", family="typo", factory="x:y"))
"""


def test_misspelled_hook_is_a_recorded_plugin_error(make_plugin, capsys):
    make_plugin("berg-typo", "0.4.0", "typo", {"berg_typo_plugin": MISSPELLED})
    record = {p.name: p for p in get_registry().plugins}["typo"]
    assert (record.distribution, record.version) == ("berg-typo", "0.4.0")
    assert record.error is not None and "unknown hook 'berg_register_encoder'" in record.error
    assert "did you mean 'berg_register_encoders'?" in record.error
    assert record.models == []
    # `berg plugins` shows it on the plugin's line; `berg list` still works and lists the other plugins' models
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    [line] = [line for line in out.splitlines() if line.startswith("typo ")]
    assert "berg-typo 0.4.0" in line and "FAILED: PluginError: unknown hook 'berg_register_encoder'" in line
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "test-sentence_length" in out and "see `berg plugins`" in out


def test_plugin_with_no_decorated_hook_is_a_recorded_plugin_error(make_plugin):
    undecorated = MISSPELLED.replace("@hookimpl\n", "").replace("berg_register_encoder(", "berg_register_encoders(")
    make_plugin("berg-nodecorator", "1.0", "nodecorator", {"berg_nodecorator_plugin": undecorated})
    record = {p.name: p for p in get_registry().plugins}["nodecorator"]
    assert record.error is not None and "no berg hook implementation" in record.error and "@berg_core.hookimpl" in record.error


def test_unknown_hook_in_strict_mode_raises_naming_the_distribution(make_plugin, monkeypatch):
    make_plugin("berg-typo", "0.4.0", "typo", {"berg_typo_plugin": MISSPELLED})
    monkeypatch.setenv("BERG_STRICT_PLUGINS", "1")
    monkeypatch.setenv("BERG_LOAD_PLUGINS", "typo")
    with pytest.raises(PluginError, match=r"plugin 'typo' \(berg-typo 0\.4\.0\) failed: unknown hook 'berg_register_encoder'"):
        build_registry()


def test_an_optional_hook_for_a_newer_berg_is_accepted(make_plugin):
    source = GOOD_HOOK.format(model_id="newer-model", factory="x:y", metadata=None, prepare=None) + textwrap.dedent("""
        @hookimpl(optionalhook=True)
        def berg_register_datasets(register):
            pass
    """)
    make_plugin("berg-newer", "3.0", "newer", {"berg_newer_plugin": source})
    reg = get_registry()
    record = {p.name: p for p in reg.plugins}["newer"]
    assert record.error is None and record.models == ["newer-model"]
    assert reg.specs["newer-model"].plugin == "berg-newer 3.0"


# -- any other exception from plugin code: one BergError line naming distribution and version ------------------

RAISES_ON_IMPORT = "raise RuntimeError('boom at import: CUDA driver too old')\n"


def test_factory_module_that_raises_on_import_is_one_line(make_plugin, monkeypatch, capsys):
    good_plugin(make_plugin, "berg-crashy", "crashy-model", factory="berg_crashy_encoder:Encoder",
                extra={"berg_crashy_encoder": RAISES_ON_IMPORT})
    with pytest.raises(ModelLoadError, match=r"crashy-model: plugin berg-crashy 2\.3\.4 failed while loading the model "
                                             r"\(RuntimeError: boom at import: CUDA driver too old\)") as info:
        BERG().get_encoding_model("crashy-model")
    assert isinstance(info.value.__cause__, RuntimeError)
    monkeypatch.delenv("BERG_DEBUG", raising=False)
    assert main(["encode", "crashy-model", "some words"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "berg-crashy 2.3.4" in err and "RuntimeError" in err and "BERG_DEBUG=1" in err
    monkeypatch.setenv("BERG_DEBUG", "1")
    with pytest.raises(ModelLoadError) as info:  # the CLI re-raises: Python prints the chained RuntimeError
        main(["encode", "crashy-model", "some words"])
    assert isinstance(info.value.__cause__, RuntimeError)


def test_factory_with_a_missing_dependency_names_the_distribution(make_plugin):
    good_plugin(make_plugin, "berg-needy", "needy-model", factory="berg_needy_encoder:Encoder",
                extra={"berg_needy_encoder": "import berg_no_such_dependency_xyz\n"})
    with pytest.raises(PluginError, match=r"needy-model: plugin berg-needy 2\.3\.4: cannot import 'berg_needy_encoder'.*"
                                          r"berg_no_such_dependency_xyz"):
        BERG().get_encoding_model("needy-model")
    good_plugin(make_plugin, "berg-typoattr", "typoattr-model", factory="berg_typoattr_encoder:Encodr",
                extra={"berg_typoattr_encoder": "class Encoder:\n    pass\n"})
    with pytest.raises(PluginError, match=r"plugin berg-typoattr 2\.3\.4: 'berg_typoattr_encoder' has no attribute 'Encodr'"):
        BERG().get_encoding_model("typoattr-model")


def test_factory_that_calls_sys_exit_does_not_end_the_program(make_plugin):
    good_plugin(make_plugin, "berg-exits", "exits-model", factory="berg_exits_encoder:load",
                extra={"berg_exits_encoder": "import sys\ndef load(spec, **kwargs):\n    sys.exit('no GPU, bye')\n"})
    with pytest.raises(ModelLoadError, match=r"plugin berg-exits 2\.3\.4 failed while loading the model \(SystemExit: no GPU"):
        BERG().get_encoding_model("exits-model")


def test_metadata_and_prepare_modules_that_raise_on_import_are_one_line(make_plugin, capsys):
    good_plugin(make_plugin, "berg-meta", "meta-model", factory="berg_testplugin.encoder:LengthEncoder",
                metadata="berg_meta_weights:load_metadata", prepare="berg_meta_weights:prepare",
                extra={"berg_meta_weights": RAISES_ON_IMPORT})
    with pytest.raises(ModelLoadError, match=r"meta-model: plugin berg-meta 2\.3\.4 failed while reading the metadata "
                                             r"\(RuntimeError: boom at import"):
        BERG().get_model_metadata("meta-model")
    assert main(["fetch", "meta-model", "--quiet"]) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "plugin berg-meta 2.3.4 failed while preparing the model's files (RuntimeError: boom at import" in line


ENCODER_BUGS = """
from berg_core import Encoder

class Buggy(Encoder):
    output_names = ["a"]

    def _encode(self, sentences, show_progress):
        return {}["missing key"]

    def _release(self):
        raise AttributeError("'NoneType' object has no attribute 'cpu'")
"""


def test_encode_and_release_bugs_name_the_distribution(make_plugin, capsys):
    good_plugin(make_plugin, "berg-buggy", "buggy-model", factory="berg_buggy_encoder:Buggy",
                extra={"berg_buggy_encoder": ENCODER_BUGS})
    model = BERG().get_encoding_model("buggy-model")
    with pytest.raises(PluginError, match=r"buggy-model: plugin berg-buggy 2\.3\.4 failed while encoding \(KeyError"):
        model.encode(["a sentence"])
    with pytest.raises(PluginError, match=r"plugin berg-buggy 2\.3\.4 failed while releasing the model \(AttributeError"):
        model.close()
    model.close()  # released once: a second close does nothing
    with pytest.raises(PluginError, match="failed while releasing the model"), BERG().get_encoding_model("buggy-model"):
        pass  # leaving a `with` block cleanly reports the failed release
    assert main(["encode", "buggy-model", "a sentence"]) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "berg-buggy 2.3.4 failed while encoding (KeyError" in line


# -- berg plugins --check ----------------------------------------------------------------------------------------

def test_check_passes_for_every_installed_model_except_the_broken_fixture(monkeypatch, capsys):
    monkeypatch.setenv("BERG_DISABLE_PLUGINS", "broken")
    assert main(["plugins", "--check"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("checked ") and "every factory, metadata and prepare imports" in out[0]


def test_check_reports_each_failing_import_without_calling_anything(make_plugin, monkeypatch, capsys, tmp_path):
    called = tmp_path / "factory-was-called"
    # the factory imports but would leave a mark if called: --check must only import (no weights loaded)
    good_plugin(make_plugin, "berg-checkme", "check-model", factory="berg_checkme_code:load",
                metadata="berg_checkme_code:no_such_loader", prepare="berg_checkme_code:PREPARE",
                extra={"berg_checkme_code": f"import pathlib\nPREPARE = 'not callable'\n"
                                            f"def load(*a, **k):\n    pathlib.Path({str(called)!r}).touch()\n"})
    good_plugin(make_plugin, "berg-checkboom", "boom-model", factory="berg_checkboom_code:Encoder",
                extra={"berg_checkboom_code": RAISES_ON_IMPORT})
    monkeypatch.setenv("BERG_LOAD_PLUGINS", "testplugin,checkme,checkboom,broken")
    assert main(["plugins", "--check"]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert not called.exists()
    assert lines[-1] == "checked 5 model(s) of 4 plugin(s): 4 failure(s)"
    failures = lines[:-1]
    assert len(failures) == 4 and all(line.startswith("FAILED ") for line in failures)
    assert "plugin broken (berg-brokenplugin 0.0.1" in failures[0] and "berg_this_dependency_does_not_exist" in failures[0]
    text = "\n".join(failures)
    assert "berg-checkme 2.3.4: metadata 'berg_checkme_code:no_such_loader' (of check-model): " in text
    assert "has no attribute 'no_such_loader'" in text
    assert "berg-checkme 2.3.4: prepare 'berg_checkme_code:PREPARE' (of check-model): it is a str, not a callable" in text
    assert ("berg-checkboom 2.3.4: factory 'berg_checkboom_code:Encoder' (of boom-model): importing it raised RuntimeError: "
            "boom at import") in text
    assert "test-sentence_length" not in text and "berg_checkme_code:load" not in text  # those import fine
    assert main(["plugins", "--check", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and data["models"] == 5
    assert [p["name"] for p in data["failed_plugins"]] == ["broken"]
    assert sorted((f["field"], f["target"]) for f in data["import_failures"]) == [
        ("factory", "berg_checkboom_code:Encoder"), ("metadata", "berg_checkme_code:no_such_loader"),
        ("prepare", "berg_checkme_code:PREPARE")]
    assert not called.exists()
