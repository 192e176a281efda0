"""Plugin discovery through real entry points (tests/plugins/* are pip-installed in this session)."""

import pytest

from berg_core import EncoderSpec, ModelNotFoundError, PluginError
from berg_core.registry import build_registry, get_registry, get_spec, reset_registry


def test_test_plugin_models_registered_and_tagged():
    reg = get_registry()
    spec = reg.specs["test-sentence_length"]
    assert spec.family == "testplugin"
    assert spec.plugin == "berg-testplugin 0.0.1"
    assert "test-timed_words" in reg.specs


def test_broken_plugin_is_recorded_not_raised():
    reg = get_registry()
    broken = {p.name: p for p in reg.plugins}["broken"]
    assert broken.error is not None and "berg_this_dependency_does_not_exist" in broken.error
    assert broken.models == []
    assert broken.traceback and "ModuleNotFoundError" in broken.traceback


def test_duplicate_ids_are_kept_out_and_reported():
    reg = get_registry()
    assert "test-duplicate" not in reg.specs
    assert sorted(reg.duplicates["test-duplicate"]) == ["dupe", "testplugin"]
    with pytest.raises(ModelNotFoundError, match="claimed by several plugins"):
        reg.get("test-duplicate")


def test_disable_plugin_removes_its_models_and_ends_duplicate(monkeypatch):
    monkeypatch.setenv("BERG_DISABLE_PLUGINS", "dupe, broken")
    reg = build_registry()
    assert "test-duplicate" in reg.specs  # only one claimant left
    names = {p.name for p in reg.plugins}
    assert "testplugin" in names and not {"dupe", "broken"} & names


def test_load_plugins_allow_list(monkeypatch):
    monkeypatch.setenv("BERG_LOAD_PLUGINS", "dupe")
    reg = build_registry()
    assert set(reg.specs) == {"test-duplicate"}
    assert reg.specs["test-duplicate"].family == "dupe"


def test_strict_mode_reraises(monkeypatch):
    monkeypatch.setenv("BERG_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="broken"):
        build_registry()


def test_registry_is_cached_until_reset():
    first = get_registry()
    assert get_registry() is first
    reset_registry()
    assert get_registry() is not first


def test_unknown_id_suggests_close_matches():
    with pytest.raises(ModelNotFoundError, match="did you mean 'test-sentence_length'"):
        get_spec("test-sentence_lenght")
    with pytest.raises(ModelNotFoundError, match="berg list"):
        get_spec("completely-unrelated")


def test_find_by_substring_glob_and_family():
    reg = get_registry()
    assert [s.model_id for s in reg.find("TIMED")] == ["test-timed_words"]
    assert [s.model_id for s in reg.find("test-*_length")] == ["test-sentence_length"]
    assert len(reg.find("testplugin")) == 2


def test_plugin_registering_a_non_spec_is_a_plugin_error(monkeypatch):
    import berg_core.registry as registry
    from berg_core import hookimpl

    class Bad:
        @hookimpl
        def berg_register_encoders(self, register):
            register({"model_id": "x"})

    with pytest.raises(PluginError, match="not an EncoderSpec"):
        registry._collect(Bad(), "bad")


def test_builtin_plugins_use_the_same_hook(monkeypatch):
    import sys
    import types

    import berg_core.registry as registry
    from berg_core import hookimpl

    module = types.ModuleType("berg_fake_builtin")

    @hookimpl
    def berg_register_encoders(register):
        register(EncoderSpec(model_id="builtin-x", family="builtin", factory="x:y"))

    module.berg_register_encoders = berg_register_encoders
    monkeypatch.setitem(sys.modules, "berg_fake_builtin", module)
    monkeypatch.setattr(registry, "BUILTIN_PLUGINS", (("builtin", "berg_fake_builtin"),))
    reg = build_registry()
    assert reg.specs["builtin-x"].plugin.startswith("berg-core ")


def test_hooks_matching_no_hookspec_are_refused_in_collect():
    import berg_core.registry as registry
    from berg_core import hookimpl

    class Misspelled:
        @hookimpl
        def berg_register_encoder(self, register):
            register(EncoderSpec(model_id="x", family="x", factory="x:y"))

    with pytest.raises(PluginError, match=r"unknown hook 'berg_register_encoder' \(did you mean 'berg_register_encoders'\?\)"):
        registry._collect(Misspelled(), "misspelled")

    class Undecorated:
        def berg_register_encoders(self, register):
            register(EncoderSpec(model_id="x", family="x", factory="x:y"))

    with pytest.raises(PluginError, match="no berg hook implementation found"):
        registry._collect(Undecorated(), "undecorated")
