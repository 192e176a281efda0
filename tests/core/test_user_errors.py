"""Mistakes in the Python API and plugin failures are one ``BergError`` line (issue 9, items 8 and 9)."""

import os

import numpy as np
import pytest

from berg_core import facade
from berg_core.cli import main
from berg_core.encoder import output_names_of
from berg_core.errors import (
    BergError,
    InvalidParameterError,
    ModelLoadError,
    ModelNotFoundError,
    PluginError,
    ResourceError,
    StimulusError,
    fill_fetch_hint,
)
from berg_core.facade import BERG

SENTENCE = "test-sentence_length"
TIMED = "test-timed_words"


@pytest.mark.parametrize("model_id", [None, 5, 2.5, b"test-sentence_length", ["test-sentence_length"], {"a": 1}])
def test_model_id_of_another_type_is_one_line(model_id):
    berg = BERG()
    for call in (berg.get_encoding_model, berg.get_model_metadata, berg.describe, berg.fetch):
        with pytest.raises(InvalidParameterError, match="a model id is a str"):
            call(model_id)


def test_list_models_pattern_of_another_type():
    with pytest.raises(InvalidParameterError, match="pattern must be a str"):
        BERG().list_models(5)
    assert BERG().list_models("timed") == [TIMED]


def test_model_id_that_is_no_valid_path_is_unknown():
    for model_id in ("x" * 5000, "a\x00b"):  # too long for the file system; NUL byte
        with pytest.raises(ModelNotFoundError, match="unknown model"):
            BERG().get_encoding_model(model_id)


def test_berg_dir_that_is_a_file_or_not_a_path(tmp_path, monkeypatch, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ResourceError, match="is a file, not a folder"):
        BERG(afile)
    with pytest.raises(InvalidParameterError, match="berg_dir must be a folder path"):
        BERG(5)
    monkeypatch.setenv("BERG_DIR", str(afile))
    with pytest.raises(ResourceError, match="BERG_DIR .* is a file"):
        BERG()
    assert main(["encode", SENTENCE, "abc"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("berg: error: BERG_DIR") and err.count("\n") == 1


def test_subject_selection_and_option_types_are_checked_before_loading():
    berg = BERG()
    with pytest.raises(InvalidParameterError, match="a subject is a str or int"):
        berg.get_encoding_model(TIMED, subject=["S1"])
    with pytest.raises(InvalidParameterError, match="unknown selection key"):
        berg.get_encoding_model(SENTENCE, selection={1: "x", "roi": "roi_a"})  # mixed key types
    with pytest.raises(InvalidParameterError, match=r"selection\['roi'\] must be an ROI name"):
        berg.get_encoding_model(SENTENCE, selection={"roi": 5})
    with pytest.raises(InvalidParameterError, match="only 0 and 1"):
        berg.get_encoding_model(TIMED, subject="S1", selection={"voxel_index": [0, 2, 1, 1]})
    with pytest.raises(InvalidParameterError, match="option scale of test-sentence_length must be a number"):
        berg.get_encoding_model(SENTENCE, scale="abc")
    with pytest.raises(InvalidParameterError, match="option batch_size .* must be an integer"):
        berg.get_encoding_model(SENTENCE, batch_size=np.zeros((2, 2)))
    with pytest.raises(InvalidParameterError, match="must be a number"):
        berg.get_encoding_model(SENTENCE, scale=float("nan"))
    for name in ("berg_dir", "spec"):  # clash with the factory's own arguments
        with pytest.raises(InvalidParameterError, match="unknown option"):
            berg.get_encoding_model(SENTENCE, **{name: "x"})
    # None means "no selection on that key", as in every family
    with berg.get_encoding_model(SENTENCE, selection={"roi": None}, scale=2) as model:
        np.testing.assert_array_equal(model.encode(["ab"]), [[4.0, 8.0, 12.0]])


def _crashing_factory(spec, **kwargs):
    raise KeyError("weights_v2")  # a plugin bug: not a BergError


def test_plugin_exception_while_loading_is_one_line_naming_the_plugin(monkeypatch, capsys):
    monkeypatch.setattr(facade, "import_object", lambda path: _crashing_factory)
    with pytest.raises(ModelLoadError, match=r"plugin berg-testplugin 0\.0\.1 failed while loading the model \(KeyError") as info:
        BERG().get_encoding_model(SENTENCE)
    assert isinstance(info.value.__cause__, KeyError)  # the original stays attached for debugging
    monkeypatch.delenv("BERG_DEBUG", raising=False)
    assert main(["encode", SENTENCE, "abc"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "berg-testplugin" in err and "BERG_DEBUG=1" in err and "Traceback" not in err
    monkeypatch.setenv("BERG_DEBUG", "1")
    with pytest.raises(ModelLoadError):  # the CLI re-raises: the traceback (with the KeyError) is shown
        main(["encode", SENTENCE, "abc"])


def test_plugin_exception_while_encoding_or_reading_metadata(monkeypatch):
    from berg_testplugin import encoder as toy

    def broken(self, sentences, show_progress):
        raise ZeroDivisionError("oops")

    monkeypatch.setattr(toy.LengthEncoder, "_encode", broken)
    with BERG().get_encoding_model(SENTENCE) as model, pytest.raises(PluginError, match="failed while encoding"):
        model.encode(["abc"])
    monkeypatch.setattr(toy.LengthEncoder, "output_names", property(lambda self: 1 / 0))
    with BERG().get_encoding_model(SENTENCE) as model, pytest.raises(PluginError, match="failed while naming its outputs"):
        output_names_of(model)

    class OutOfMemoryError(RuntimeError):  # what torch raises when a GPU is full
        pass

    def out_of_memory(self, sentences, show_progress):
        raise OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(toy.LengthEncoder, "_encode", out_of_memory)
    with BERG().get_encoding_model(SENTENCE) as model, pytest.raises(ResourceError, match="ran out of memory while encoding"):
        model.encode(["abc"])
    monkeypatch.setattr(toy, "load_metadata", lambda spec, subject, berg_dir: 1 / 0)
    with pytest.raises(ModelLoadError, match="failed while reading the metadata"):
        BERG().get_model_metadata(SENTENCE)
    monkeypatch.setattr(toy, "load_metadata", lambda spec, subject, berg_dir: ["not", "a", "dict"])
    with pytest.raises(PluginError, match="returned list, not a dict"):
        BERG().get_model_metadata(SENTENCE)


def test_fetch_hint_names_the_model_and_subject(monkeypatch, capsys):
    def missing(spec, **kwargs):
        raise ResourceError("weights missing: run `berg fetch MODEL` (or unset BERG_OFFLINE) to download x.npy")

    monkeypatch.setattr(facade, "import_object", lambda path: missing)
    with pytest.raises(ResourceError) as info:
        BERG().get_encoding_model(TIMED, subject="S2")
    assert type(info.value) is ResourceError
    assert "run `berg fetch test-timed_words --subject S2` (or unset" in str(info.value)
    assert main(["encode", SENTENCE, "abc"]) == 1
    assert "`berg fetch test-sentence_length` (or unset" in capsys.readouterr().err


def test_fill_fetch_hint_keeps_type_and_quotes():
    exc = ModelLoadError("x.npy is truncated; re-fetch it with `berg fetch MODEL`")
    assert fill_fetch_hint(exc, "my model", "01") is exc and type(exc) is ModelLoadError
    assert str(exc) == "x.npy is truncated; re-fetch it with `berg fetch 'my model' --subject 01`"
    plain = BergError("no hint here")
    assert str(fill_fetch_hint(plain, "m")) == "no hint here"
    not_found = ModelNotFoundError("see `berg fetch MODEL`")
    assert str(fill_fetch_hint(not_found, "m")) == "see `berg fetch m`"


@pytest.mark.parametrize("words", [None, 5, np.float64(2.0), np.zeros(())])
def test_timed_words_that_are_not_a_list(words):
    with BERG().get_encoding_model(TIMED, subject="S1") as model, pytest.raises(StimulusError, match="must be a list of str"):
        model.encode({"words": words, "word_onsets": [0.0]})


def test_encode_after_close_and_bad_model_object():
    berg = BERG()
    model = berg.get_encoding_model(SENTENCE)
    model.close()
    with pytest.raises(BergError, match="was closed"):
        berg.encode(model, ["abc"])
    with pytest.raises(InvalidParameterError, match="must be a loaded model"):
        berg.encode(SENTENCE, ["abc"])
    assert os.environ["BERG_DIR"]  # the isolated test environment is in place


def test_train_with_an_empty_npy_is_one_line(tmp_path, capsys):
    (tmp_path / "f.npy").write_bytes(b"")
    np.save(tmp_path / "r.npy", np.zeros((10, 2)))
    code = main(["train", "--features", str(tmp_path / "f.npy"), "--responses", str(tmp_path / "r.npy"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "not a plain numeric .npy" in err


def test_cheap_checks_run_before_the_plugin_code(monkeypatch):
    calls = []
    monkeypatch.setattr(facade, "import_object", lambda path: calls.append(path))
    berg = BERG()
    for kwargs in ({"subject": "S9"}, {"subject": "S1", "selection": {"roi": 3}}, {"subject": "S1", "device": "tpu"},
                   {"subject": "S1", "nope": 1}):
        with pytest.raises(InvalidParameterError):
            berg.get_encoding_model(TIMED, **kwargs)
    assert calls == []  # the factory was never imported, let alone run
