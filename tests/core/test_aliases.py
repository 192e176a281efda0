"""Model-id aliases (``EncoderSpec.aliases``): an older id resolves to its model everywhere an id is accepted, with a
one-line notice naming the current id; ``berg list`` shows each model once; an alias that repeats another model's id
or alias is refused at registration, naming both distributions, and shadows nothing."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest

from berg_core import BERG, EncoderSpec, ModelNotFoundError, Option, Options, PluginError, hookimpl
from berg_core.cli import main
from berg_core.registry import get_spec

RENAMED = "test-renamed"
OLD = ("test-old_name", "test-older")


def _plugin_module(name: str, *specs: EncoderSpec) -> types.ModuleType:
    module = types.ModuleType(name)

    @hookimpl
    def berg_register_encoders(register):
        for spec in specs:
            register(spec)

    module.berg_register_encoders = berg_register_encoders  # type: ignore[attr-defined]
    return module


def _length_spec(model_id: str, aliases: tuple[str, ...] = ()) -> EncoderSpec:
    """The test plugin's sentence-length model under another id (same factory, ROIs and option)."""
    from berg_testplugin.plugin import ROIS

    return EncoderSpec(model_id=model_id, family="aliasplugin", factory="berg_testplugin.encoder:LengthEncoder", rois=ROIS,
                       selection={"roi": ", ".join(ROIS)}, options=Options(Option("scale", float, 1.0)), aliases=aliases)


def add_plugins(monkeypatch, *plugins: tuple[str, str, tuple[EncoderSpec, ...]]) -> None:
    """Install in-process plugins ``(entry name, distribution, specs)`` (version 1.0) next to the real ones."""
    import berg_core.registry as registry

    real = registry._sources
    extra = []
    for name, dist, specs in plugins:
        module = f"berg_fake_{name}"
        monkeypatch.setitem(sys.modules, module, _plugin_module(module, *specs))
        extra.append((name, dist, "1.0", module, None))
    monkeypatch.setattr(registry, "_sources", lambda: [*real(), *extra])
    registry.reset_registry()


@pytest.fixture
def renamed(monkeypatch):
    add_plugins(monkeypatch, ("aliasplugin", "berg-aliasplugin", (_length_spec(RENAMED, OLD),)))


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_an_alias_resolves_to_its_model_with_one_notice(renamed, capsys):
    from berg_core.registry import get_registry

    assert get_spec(OLD[0]) is get_spec(RENAMED) is get_registry().specs[RENAMED]
    err = capsys.readouterr().err
    assert err == (f"note: {OLD[0]!r} is an older id of {RENAMED!r}; use {RENAMED!r} (same model; `berg info {RENAMED}` "
                   "lists its subjects and options)\n")
    get_spec(OLD[0])
    assert capsys.readouterr().err == ""  # once per alias and process
    assert {a: m for a, m in get_registry().aliases.items() if m == RENAMED} == {OLD[0]: RENAMED, OLD[1]: RENAMED}


def test_get_encoding_model_by_alias_is_the_model(renamed, capsys):
    berg = BERG()
    with berg.get_encoding_model(OLD[1], scale=2.0) as by_alias, berg.get_encoding_model(RENAMED, scale=2.0) as by_id:
        assert by_alias.spec.model_id == RENAMED
        np.testing.assert_array_equal(berg.encode(by_alias, ["abc", "ab"]), [[6, 12, 18], [4, 8, 12]])
        np.testing.assert_array_equal(berg.encode(by_alias, ["abc"]), berg.encode(by_id, ["abc"]))
    assert f"use {RENAMED!r}" in capsys.readouterr().err


def test_cli_encode_info_fetch_accept_an_alias(renamed, capsys, tmp_path):
    code, out, err = run_cli(capsys, "encode", OLD[0], "abc", "--json")
    data = json.loads(out)
    assert code == 0 and data["responses"] == [[3.0, 6.0, 9.0]] and f"older id of {RENAMED!r}" in err
    code, out, _ = run_cli(capsys, "info", OLD[0])
    lines = out.splitlines()
    assert code == 0 and lines[0] == RENAMED and lines[1] == f"aliases: {', '.join(OLD)} (older ids, accepted with a notice)"
    code, out, _ = run_cli(capsys, "info", OLD[1], "--json")
    assert json.loads(out)["model_id"] == RENAMED and json.loads(out)["aliases"] == list(OLD)
    code, out, _ = run_cli(capsys, "fetch", OLD[0], "--quiet")
    assert code == 0


def test_an_alias_wins_over_a_folder_of_the_same_name(renamed, tmp_path, monkeypatch):
    (tmp_path / OLD[0]).mkdir()
    monkeypatch.chdir(tmp_path)
    assert BERG().describe(OLD[0]).startswith(RENAMED)


def test_berg_list_shows_each_model_once_and_finds_it_by_alias(renamed, capsys):
    code, out, _ = run_cli(capsys, "list")
    ids = [line.split()[0] for line in out.splitlines()[1:] if line.startswith("test-")]
    assert code == 0 and ids.count(RENAMED) == 1 and not set(OLD) & set(ids)
    code, out, _ = run_cli(capsys, "list", "old_name")
    assert [line.split()[0] for line in out.splitlines()[1:] if line.startswith("test-")] == [RENAMED]
    code, out, _ = run_cli(capsys, "list", "test-olde?", "--aliases")
    rows = [line for line in out.splitlines() if not line.startswith("(")]
    assert rows[0].split() == ["id", "family", "subjects", "stimulus", "aliases"]
    assert rows[1].split()[0] == RENAMED and rows[1].endswith(f"{OLD[0]}, {OLD[1]}") and len(rows) == 2


def test_an_alias_equal_to_another_models_id_is_refused_naming_both(monkeypatch):
    from berg_core.registry import get_registry

    add_plugins(monkeypatch, ("aliasplugin", "berg-aliasplugin", (_length_spec(RENAMED, ("test-sentence_length", OLD[0])),)))
    reg = get_registry()
    assert reg.get("test-sentence_length").family == "testplugin"  # not shadowed
    assert reg.get(OLD[0]).model_id == RENAMED  # its other alias still works
    assert "test-sentence_length" not in reg.aliases
    record = {p.name: p for p in reg.plugins}["aliasplugin"]
    (line,) = record.problems
    assert line.startswith("refused alias 'test-sentence_length' of model 'test-renamed' (berg-aliasplugin 1.0): ")
    assert "the model id of berg-testplugin 0.0.1" in line and "\n" not in line


def test_one_alias_claimed_by_two_models_is_kept_out(monkeypatch, capsys):
    from berg_core.registry import get_registry

    add_plugins(monkeypatch, ("aliasplugin", "berg-aliasplugin", (_length_spec(RENAMED, (OLD[0],)),)),
                ("other", "berg-other", (_length_spec("test-other", (OLD[0],)),)))
    reg = get_registry()
    assert OLD[0] not in reg.aliases and {RENAMED, "test-other"} <= set(reg.specs)
    with pytest.raises(ModelNotFoundError, match=f"unknown model {OLD[0]!r}"):
        reg.get(OLD[0])
    by_name = {p.name: p for p in reg.plugins}
    for name in ("aliasplugin", "other"):
        (line,) = by_name[name].problems
        assert "'test-renamed' (berg-aliasplugin 1.0)" in line and "'test-other' (berg-other 1.0)" in line
    code, out, _ = run_cli(capsys, "list")
    assert "2 item(s) skipped" in out


def test_strict_mode_raises_on_a_refused_alias(monkeypatch):
    from berg_core.registry import build_registry

    add_plugins(monkeypatch, ("aliasplugin", "berg-aliasplugin", (_length_spec(RENAMED, ("test-timed_words",)),)))
    monkeypatch.setenv("BERG_STRICT_PLUGINS", "1")
    monkeypatch.setenv("BERG_DISABLE_PLUGINS", "broken")
    with pytest.raises(PluginError, match="refused alias 'test-timed_words'"):
        build_registry()


@pytest.mark.parametrize(("aliases", "message"), [
    (("test-x", "test-x2", RENAMED), "repeat its own model_id"),
    (("",), "non-empty model ids"),
    ((" test-x",), "non-empty model ids"),
    ((3,), "non-empty model ids"),
])
def test_bad_aliases_are_plugin_errors(aliases, message):
    with pytest.raises(PluginError, match=message):
        EncoderSpec(model_id=RENAMED, family="f", factory="m:f", aliases=aliases)


def test_aliases_are_deduplicated_and_a_single_str_is_one_alias():
    assert EncoderSpec(model_id="a", family="f", factory="m:f", aliases=("b", "c", "b")).aliases == ("b", "c")
    assert EncoderSpec(model_id="a", family="f", factory="m:f", aliases="b").aliases == ("b",)  # type: ignore[arg-type]
