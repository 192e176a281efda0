"""`berg fetch`: which backbones a model loads, every subject when --subject is omitted, bad options in one line."""

from __future__ import annotations

from berg_core.cli import main
from berg_core.facade import backbones_of
from berg_core.spec import EncoderSpec


def spec(**kwargs) -> EncoderSpec:
    return EncoderSpec(model_id="m", family="f", factory="x:y", **kwargs)


def test_backbones_of_a_family_model_and_a_trained_encoder():
    tuckute_like = spec(options={"backbone": "gpt2-xl", "revision": None, "layer": 22})
    assert backbones_of(tuckute_like, {}) == [("gpt2-xl", None)]
    assert backbones_of(tuckute_like, {"backbone": "/data/gpt2-xl", "revision": "abc"}) == [("/data/gpt2-xl", "abc")]
    trained = spec(options={"backbone": None}, info={"feature_spaces": [
        {"name": "a", "backbone": "gpt2", "layer": 3}, {"name": "b", "backbone": "gpt2", "layer": 5},
        {"name": "c", "backbone": "facebook/opt-125m", "layer": 2, "revision": "r1"}, {"name": "precomputed", "backbone": None}]})
    assert backbones_of(trained, {}) == [("gpt2", None), ("facebook/opt-125m", "r1")]
    assert backbones_of(trained, {"backbone": "/local/gpt2"}) == [("/local/gpt2", None)]  # the override replaces every space's
    assert backbones_of(spec(options={"context": "independent"}), {}) == []  # e.g. brainscore: the model loads itself


def test_fetch_without_subject_covers_every_subject(capsys):
    """A model with subjects and no files: every subject is accepted (today: "needs a subject")."""
    assert main(["fetch", "test-timed_words", "--quiet"]) == 0
    assert main(["fetch", "test-timed_words", "--subject", "S9"]) == 1
    assert "unknown subject 'S9'" in capsys.readouterr().err
    assert main(["fetch", "test-sentence_length", "-O", "backbone=gpt2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown option(s) 'backbone'" in err[0] and "scale" in err[0]


def test_a_prepare_step_that_crashes_is_one_line_naming_the_plugin(monkeypatch, capsys):
    """A plugin bug in its ``prepare`` step (here a callable taking the wrong arguments) is one line, not a traceback."""
    import dataclasses

    import berg_core.facade as facade

    real = facade.resolve_spec
    monkeypatch.setattr(facade, "resolve_spec", lambda m: dataclasses.replace(real(m), prepare="builtins:divmod"))
    assert main(["fetch", "test-timed_words", "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "failed while preparing the model's files" in err[0] and "TypeError" in err[0]


def test_python_fetch_takes_every_subject_like_the_cli():
    from berg_core import BERG

    assert BERG().fetch("test-timed_words") == []  # no files to fetch, and no "needs a subject"
