"""The BERG facade and the Encoder base class, through the test plugin's toy models."""

import numpy as np
import pytest

from berg_core import BERG, BergError, InvalidParameterError, ModelNotFoundError, StimulusError


def test_list_models_and_pattern():
    berg = BERG()
    assert [m for m in berg.list_models() if m.startswith("test-")] == ["test-sentence_length", "test-timed_words"]
    assert berg.list_models("timed") == ["test-timed_words"]


def test_berg_dir_default_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("BERG_DIR", str(tmp_path / "elsewhere"))
    assert BERG().berg_dir == tmp_path / "elsewhere"
    assert BERG(tmp_path / "given").berg_dir == tmp_path / "given"


def test_encode_float32_roi_order_and_metadata(tmp_path):
    berg = BERG(tmp_path)
    model = berg.get_encoding_model("test-sentence_length", selection={"roi": ["roi_c", "roi_a"]}, device="cpu", scale=0.5)
    out, meta = berg.encode(model, ["abcd", "ab"], return_metadata=True)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[6.0, 2.0], [3.0, 1.0]])  # 0.5 * len * (3, 1)
    assert meta == {"rois": ["roi_a", "roi_b", "roi_c"], "berg_dir": str(tmp_path)}
    assert model.output_names == ["roi_c", "roi_a"]


def test_metadata_without_loading_the_model(tmp_path):
    assert BERG(tmp_path).get_model_metadata("test-sentence_length")["rois"][0] == "roi_a"


def test_context_manager_closes():
    berg = BERG()
    with berg.get_encoding_model("test-sentence_length", device="cpu") as model:
        assert model.encode("hello").shape == (1, 3)
    with pytest.raises(BergError, match="closed"):
        model.encode("hello")


def test_subject_rules():
    berg = BERG()
    with pytest.raises(InvalidParameterError, match="needs a subject; one of S1, S2"):
        berg.get_encoding_model("test-timed_words", device="cpu")
    with pytest.raises(InvalidParameterError, match="unknown subject 'S9'.*S1, S2"):
        berg.get_encoding_model("test-timed_words", subject="S9", device="cpu")
    with pytest.raises(InvalidParameterError, match="has no subjects"):
        berg.get_encoding_model("test-sentence_length", subject="S1", device="cpu")
    with pytest.raises(InvalidParameterError, match="unknown subject"):
        berg.get_model_metadata("test-timed_words", subject="S3")


def test_selection_and_option_rules():
    berg = BERG()
    with pytest.raises(InvalidParameterError, match="unknown selection key.*'voxels'.*valid keys: roi"):
        berg.get_encoding_model("test-sentence_length", selection={"voxels": [1]}, device="cpu")
    with pytest.raises(InvalidParameterError, match="must be a dict"):
        berg.get_encoding_model("test-sentence_length", selection=["roi_a"], device="cpu")
    with pytest.raises(InvalidParameterError, match="unknown option.*'lyer'.*valid options: scale, batch_size"):
        berg.get_encoding_model("test-sentence_length", device="cpu", lyer=3)
    with pytest.raises(InvalidParameterError, match="unknown ROI 'roi_z'; valid ROIs: roi_a, roi_b, roi_c"):
        berg.get_encoding_model("test-sentence_length", selection={"roi": ["roi_z"]}, device="cpu")


def test_wrong_stimulus_kind():
    berg = BERG()
    model = berg.get_encoding_model("test-timed_words", subject="S1", device="cpu")
    with pytest.raises(StimulusError, match="takes a dict"):
        berg.encode(model, ["a sentence"])
    out = berg.encode(model, {"words": ["a", "b", "c"], "word_onsets": [0.0, 0.5, 2.5]})
    np.testing.assert_array_equal(out[:, 0], [2, 1, 0])
    sentence_model = berg.get_encoding_model("test-sentence_length", device="cpu")
    with pytest.raises(StimulusError, match="not a dict"):
        berg.encode(sentence_model, {"words": ["a"], "word_onsets": [0.0]})


def test_encode_rejects_non_models():
    with pytest.raises(InvalidParameterError, match="loaded model"):
        BERG().encode("test-sentence_length", ["x"])


def test_unknown_model_and_describe():
    berg = BERG()
    with pytest.raises(ModelNotFoundError):
        berg.get_encoding_model("nope")
    text = berg.describe("test-sentence_length")
    assert "ROIs: roi_a, roi_b, roi_c" in text and "A toy card." in text and "berg-testplugin 0.0.1" in text


def test_device_unavailable_is_an_error():
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(InvalidParameterError, match="CUDA is not available"):
        BERG().get_encoding_model("test-sentence_length", device="cuda")


def test_berg_import_name_is_an_alias():
    import berg
    import berg_core

    assert berg.BERG is berg_core.BERG
