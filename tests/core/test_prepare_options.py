"""`berg fetch MODEL -O key=value` reaches the plugin's ``prepare`` hook as ``options=`` (validated, defaults filled in);
hooks written in the older four-argument form keep working."""

from __future__ import annotations

import sys
import types

import pytest

from berg_core import BERG, EncoderSpec, InvalidParameterError, Option, Options
from berg_core.cli import main

CALLS: list[tuple[str, str | None, dict | None]] = []


def new_style(spec, subject, berg_dir, show_progress, *, options):
    CALLS.append(("new", subject, options))


def old_style(spec, subject, berg_dir, show_progress):
    CALLS.append(("old", subject, None))


def with_kwargs(spec, subject, berg_dir, show_progress, **kwargs):
    CALLS.append(("kwargs", subject, kwargs.get("options")))


@pytest.fixture
def prep_models(monkeypatch):
    """Three models whose prepare hooks are the functions above (no files, no backbone)."""
    import berg_core.registry as registry
    from berg_core import hookimpl

    module = types.ModuleType("berg_fake_prep")
    options = Options(Option("variant", str, "small", choices=("small", "large")), Option("scale", float, 1.0))

    @hookimpl
    def berg_register_encoders(register):
        for name in ("new_style", "old_style", "with_kwargs"):
            register(EncoderSpec(model_id=f"prep-{name}", family="prep", factory="x:y", subjects=("A", "B"), options=options,
                                 prepare=f"{__name__}:{name}"))

    module.berg_register_encoders = berg_register_encoders  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "berg_fake_prep", module)
    real = registry._sources
    monkeypatch.setattr(registry, "_sources", lambda: [*real(), ("prep", "berg-prep", "1.0", "berg_fake_prep", None)])
    registry.reset_registry()
    CALLS.clear()
    yield
    CALLS.clear()


def test_cli_fetch_passes_the_validated_options_to_prepare(prep_models, capsys):
    assert main(["fetch", "prep-new_style", "--subject", "B", "-O", "variant=large", "-O", "scale=2", "--quiet"]) == 0
    assert CALLS == [("new", "B", {"variant": "large", "scale": 2.0})]  # coerced by type, defaults filled in


def test_defaults_reach_prepare_when_no_option_is_given(prep_models):
    BERG().fetch("prep-new_style", show_progress=False)
    assert CALLS == [("new", "A", {"variant": "small", "scale": 1.0}), ("new", "B", {"variant": "small", "scale": 1.0})]


def test_a_kwargs_hook_gets_options_and_an_old_hook_still_works(prep_models):
    BERG().fetch("prep-with_kwargs", subject="A", show_progress=False, options={"variant": "large"})
    BERG().fetch("prep-old_style", subject="A", show_progress=False, options={"variant": "large"})
    assert CALLS == [("kwargs", "A", {"variant": "large", "scale": 1.0}), ("old", "A", None)]


def test_a_bad_option_is_refused_before_prepare(prep_models):
    with pytest.raises(InvalidParameterError, match="variant"):
        BERG().fetch("prep-new_style", subject="A", show_progress=False, options={"variant": "huge"})
    assert CALLS == []
