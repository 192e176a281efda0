"""TuckuteEncoder: parity with BERG's computation, ROI order, and every bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from tuckute_helpers import N_LAYER, SENTENCES, SIX

from berg_core import BERG, InvalidParameterError, ModelLoadError, ResourceError, StimulusError
from berg_core.errors import BergError
from berg_tuckute.encoder import SentenceLengthWarning
from berg_tuckute.plugin import MODEL_ID, ROIS


def load(berg_dir, tiny_gpt2_dir, **options):
    options = {"backbone": str(tiny_gpt2_dir), "layer": 2, "device": "cpu", **options}
    return BERG(berg_dir).get_encoding_model(MODEL_ID, **options)


@pytest.mark.parametrize("layer", [1, 2, N_LAYER - 1])
@pytest.mark.parametrize("batch_size", [1, 3, 32])
def test_equals_full_model_hidden_states_one_sentence_at_a_time(berg_files, berg_dir, tiny_gpt2_dir, reference, layer, batch_size):
    with load(berg_dir, tiny_gpt2_dir, layer=layer, batch_size=batch_size) as model:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SentenceLengthWarning)
            got = model.encode(SENTENCES)
    want = reference(tiny_gpt2_dir, SENTENCES, layer, berg_files.clf, berg_files.neuroid_order)
    assert got.dtype == np.float32 and got.shape == (len(SENTENCES), 6)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    assert np.ptp(want, axis=0).min() > 1e-2  # the sentences differ by far more than the tolerance


def test_last_real_token_not_padding(berg_files, berg_dir, tiny_gpt2_dir, reference):
    # one long and one very short sentence in the same batch: the short one is mostly padding
    sentences = ["Hi", SENTENCES[3]]
    with load(berg_dir, tiny_gpt2_dir, batch_size=2) as model, warnings.catch_warnings():
        warnings.simplefilter("ignore", SentenceLengthWarning)
        got = model.encode(sentences)
        alone = model.encode(["Hi"])
    np.testing.assert_allclose(got, reference(tiny_gpt2_dir, sentences, 2, berg_files.clf, berg_files.neuroid_order), atol=1e-5, rtol=0)
    np.testing.assert_allclose(got[0], alone[0], atol=1e-5, rtol=0)


def test_roi_selection_in_the_users_order(berg_files, berg_dir, tiny_gpt2_dir, reference):
    rois = ["lang_LH_netw", "lang_LH_IFG", "lang_LH_AntTemp"]
    with load(berg_dir, tiny_gpt2_dir, selection={"roi": rois}) as model:
        assert model.output_names == rois
        got = model.encode(SIX)
    with load(berg_dir, tiny_gpt2_dir) as model:
        assert model.output_names == list(ROIS)
        full = model.encode(SIX)
    np.testing.assert_array_equal(got, full[:, [ROIS.index(r) for r in rois]])
    np.testing.assert_allclose(got, reference(tiny_gpt2_dir, SIX, 2, berg_files.clf, berg_files.neuroid_order, rois), atol=1e-5, rtol=0)


def test_weight_rows_are_matched_by_name_not_position(berg_dir, tiny_gpt2_dir, reference):
    from berg_tuckute.testing import write_berg_files

    shuffled = tuple(reversed(ROIS))
    files = write_berg_files(berg_dir, n_features=32, neuroid_order=shuffled, seed=3, scale=5.0)
    with load(berg_dir, tiny_gpt2_dir) as model:
        got = model.encode(SIX)
    np.testing.assert_allclose(got, reference(tiny_gpt2_dir, SIX, 2, files.clf, shuffled, ROIS), atol=1e-5, rtol=0)


def test_duplicate_sentences(berg_files, berg_dir, tiny_gpt2_dir, reference):
    sentences = [SIX[0], SIX[1], SIX[0], SIX[0]]
    with load(berg_dir, tiny_gpt2_dir) as model:
        got = model.encode(sentences)
    assert got.shape == (4, 6)
    np.testing.assert_array_equal(got[0], got[2])
    np.testing.assert_array_equal(got[0], got[3])
    np.testing.assert_allclose(got, reference(tiny_gpt2_dir, sentences, 2, berg_files.clf, berg_files.neuroid_order), atol=1e-5, rtol=0)


def test_stimulus_forms(berg_files, berg_dir, tiny_gpt2_dir):
    with load(berg_dir, tiny_gpt2_dir) as model:
        as_list = model.encode(SIX)
        np.testing.assert_array_equal(model.encode(np.array(SIX)), as_list)
        np.testing.assert_array_equal(model.encode(tuple(SIX)), as_list)
        one = model.encode(SIX[1])
    assert one.shape == (1, 6)
    np.testing.assert_allclose(one[0], as_list[1], atol=1e-6)


@pytest.mark.parametrize("bad", [[], "", [""], ["   "], ["fine sentence", 3], [None], np.array([["a"], ["b"]]), {"words": ["a"]}, 42, None])
def test_bad_stimulus(berg_files, berg_dir, tiny_gpt2_dir, bad):
    with load(berg_dir, tiny_gpt2_dir) as model, pytest.raises(StimulusError):
        model.encode(bad)


def length_warnings(encode) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        encode()
    return [str(w.message) for w in caught if issubclass(w.category, SentenceLengthWarning)]


def test_six_word_warning_once(berg_files, berg_dir, tiny_gpt2_dir):
    with load(berg_dir, tiny_gpt2_dir) as model:
        assert not length_warnings(lambda: model.encode(SIX))
        mine = length_warnings(lambda: model.encode(["Too short.", "Far too long to be a six word sentence here.", SIX[0], "Hi"]))
        assert len(mine) == 1
        assert "3 of 4" in mine[0] and "six-word" in mine[0] and "once per process" in mine[0]
        assert not length_warnings(lambda: model.encode(["Again too short."]))


def test_six_word_warning_once_per_process_not_per_loaded_model(berg_files, berg_dir, tiny_gpt2_dir):
    """Each loaded model warned again: a script loading the model per batch or per device saw it on most calls."""
    said = []
    for _ in range(3):
        with load(berg_dir, tiny_gpt2_dir) as model:
            said += length_warnings(lambda: model.encode(["Short one.", "Another short one."]))
    assert len(said) == 1 and "2 of 2" in said[0]
    with load(berg_dir, tiny_gpt2_dir) as model:
        said += length_warnings(lambda: BERG(berg_dir).encode(model, ["Yet another.", SIX[0]]))
    assert len(said) == 1


def test_six_word_warning_is_per_encoder_class(berg_files, berg_dir, tiny_gpt2_dir):
    from berg_tuckute.encoder import TuckuteEncoder

    class Derived(TuckuteEncoder):
        pass

    with load(berg_dir, tiny_gpt2_dir) as model:
        assert len(length_warnings(lambda: model.encode(["Short one."]))) == 1
        model.__class__ = Derived  # another family built on this encoder gets its own warning
        assert len(length_warnings(lambda: model.encode(["Short one."]))) == 1
        assert not length_warnings(lambda: model.encode(["Short one."]))


@pytest.mark.parametrize("rois", [["lang_LH_Foo"], ["lang_LH_IFG", "IFG"], [], "nope", [3]])
def test_unknown_roi_lists_the_six(berg_files, berg_dir, tiny_gpt2_dir, rois):
    with pytest.raises(InvalidParameterError) as err:
        load(berg_dir, tiny_gpt2_dir, selection={"roi": rois})
    for roi in ROIS:
        assert roi in str(err.value)


def test_single_roi_string_and_duplicate_roi(berg_files, berg_dir, tiny_gpt2_dir):
    with load(berg_dir, tiny_gpt2_dir, selection={"roi": "lang_LH_MFG"}) as model:
        assert model.encode(SIX).shape == (3, 1)
    with pytest.raises(InvalidParameterError, match="twice"):
        load(berg_dir, tiny_gpt2_dir, selection={"roi": ["lang_LH_MFG", "lang_LH_MFG"]})


def test_bad_parameters(berg_files, berg_dir, tiny_gpt2_dir):
    with pytest.raises(InvalidParameterError, match="selection key"):
        load(berg_dir, tiny_gpt2_dir, selection={"voxel": [1]})
    with pytest.raises(InvalidParameterError, match="option"):
        load(berg_dir, tiny_gpt2_dir, pooling="mean")
    with pytest.raises(InvalidParameterError, match="batch_size"):
        load(berg_dir, tiny_gpt2_dir, batch_size=0)
    with pytest.raises(InvalidParameterError, match="layer"):
        load(berg_dir, tiny_gpt2_dir, layer=N_LAYER + 1)
    with pytest.raises(InvalidParameterError, match="layer"):
        load(berg_dir, tiny_gpt2_dir, layer="22")
    with pytest.raises(InvalidParameterError, match="dtype"):
        load(berg_dir, tiny_gpt2_dir, dtype="float8")
    with pytest.raises(InvalidParameterError, match="no subjects"):
        load(berg_dir, tiny_gpt2_dir, subject="S1")
    with pytest.raises(InvalidParameterError, match="device"):
        load(berg_dir, tiny_gpt2_dir, device="tpu")


def test_cuda_asked_without_cuda(berg_files, berg_dir, tiny_gpt2_dir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the error case cannot happen here")
    with pytest.raises(InvalidParameterError, match="CUDA is not available"):
        load(berg_dir, tiny_gpt2_dir, device="cuda")


def test_backbone_width_must_match_the_readout(berg_dir, tiny_gpt2_dir):
    from berg_tuckute.testing import write_berg_files

    write_berg_files(berg_dir, n_features=1600)
    with pytest.raises(ModelLoadError, match="1600"):
        load(berg_dir, tiny_gpt2_dir)


def test_backbone_missing_offline(berg_files, berg_dir, tmp_path):
    with pytest.raises(ModelLoadError, match="backbone"):
        BERG(berg_dir).get_encoding_model(MODEL_ID, backbone=str(tmp_path / "no-such-model"), device="cpu")


def test_weights_missing_offline_says_berg_fetch(berg_dir, tiny_gpt2_dir, monkeypatch):
    monkeypatch.setenv("BERG_OFFLINE", "1")
    with pytest.raises(ResourceError, match="berg fetch"):
        load(berg_dir, tiny_gpt2_dir)


def test_weights_missing_and_mirror_unreachable(berg_dir, tiny_gpt2_dir):
    with pytest.raises(ResourceError):  # DownloadError: the conftest's BERG_BASE_URL is a dead port
        load(berg_dir, tiny_gpt2_dir)


def test_closed_model_refuses_to_encode(berg_files, berg_dir, tiny_gpt2_dir):
    model = load(berg_dir, tiny_gpt2_dir)
    model.close()
    assert model.backbone is None
    with pytest.raises(BergError, match="closed"):
        model.encode(SIX)


def test_facade_encode_with_metadata(berg_files, berg_dir, tiny_gpt2_dir):
    berg = BERG(berg_dir)
    with load(berg_dir, tiny_gpt2_dir) as model:
        responses, metadata = berg.encode(model, SIX, return_metadata=True)
    assert responses.shape == (3, 6)
    assert metadata["optimal_layer"] == 22
    assert list(metadata["rois"]) == list(ROIS)


def test_sentence_longer_than_the_position_table(berg_files, berg_dir, tiny_gpt2_dir):
    with load(berg_dir, tiny_gpt2_dir) as model, pytest.warns(SentenceLengthWarning), pytest.raises(StimulusError, match="at most 512"):
        model.encode(["fine sentence here", "word " * 600])  # the tiny GPT-2 has 512 positions (GPT2-XL: 1024)


def test_progress_bar_only_when_asked(berg_files, berg_dir, tiny_gpt2_dir, capsys):
    with load(berg_dir, tiny_gpt2_dir, batch_size=2) as model:
        capsys.readouterr()
        model.encode(SIX, show_progress=False)
        assert "sent" not in capsys.readouterr().err
        model.encode(SIX, show_progress=True)
        err = capsys.readouterr().err
    assert "3/3" in err and "sent" in err
