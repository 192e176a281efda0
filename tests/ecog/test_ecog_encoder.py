"""ecog-zada2025-gpt2_xl on a tiny random GPT-2: windows, truncated-backbone features, readout, selection, errors."""

from __future__ import annotations

import numpy as np
import pytest
from ecog_helpers import LAYER, WORDS, berg_windows, reference_features, reference_readout

from berg_core import BERG, InvalidParameterError, ResourceError, StimulusError
from berg_ecog.encoder import PAD_ID, token_windows, word_tokens
from berg_ecog.plugin import MODEL_ID, N_LAGS


def load(berg_dir, tiny_gpt2_dir, **kwargs):
    kwargs.setdefault("layer", LAYER)
    return BERG(berg_dir).get_encoding_model(MODEL_ID, subject="01", backbone=str(tiny_gpt2_dir), device="cpu", **kwargs)


def test_windows_are_bergs_left_padded_33_token_windows():
    ids = list(range(101, 141))  # 40 tokens
    w = token_windows(ids, 32)
    assert w.shape == (40, 33) and w.dtype == np.int64 and PAD_ID == 0
    assert w[0].tolist() == [0] * 32 + [101]  # the first token: 32 pads + itself
    assert w[5].tolist() == [0] * 27 + ids[:6]
    assert w[32].tolist() == ids[:33] and w[39].tolist() == ids[7:40]  # full context, current token last
    np.testing.assert_array_equal(w, berg_windows(ids, 32))
    np.testing.assert_array_equal(token_windows(ids, 4), berg_windows(ids, 4))  # the older, other-length windows
    np.testing.assert_array_equal(token_windows(ids[:3], 0), np.array(ids[:3])[:, None])


def test_features_equal_the_full_models_hidden_states_at_the_last_position(berg_dir, berg_files, tiny_gpt2_dir):
    with load(berg_dir, tiny_gpt2_dir) as model:
        ids, spans = word_tokens(model.backbone.tokenize, WORDS)
        assert len(ids) > len(WORDS) and any(b - a > 1 for a, b in spans)  # some words are several tokens (mean pooling)
        assert len(ids) > 33  # some windows are full (no pad)
        got = model.word_features(WORDS)
    want = reference_features(tiny_gpt2_dir, WORDS, LAYER)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_features_do_not_depend_on_the_batch(berg_dir, berg_files, tiny_gpt2_dir):
    with load(berg_dir, tiny_gpt2_dir, batch_size=1) as one, load(berg_dir, tiny_gpt2_dir, batch_size=64) as many:
        np.testing.assert_allclose(one.word_features(WORDS), many.word_features(WORDS), rtol=0, atol=1e-5)


def test_context_tokens_option_gives_other_window_lengths(berg_dir, berg_files, tiny_gpt2_dir):
    with load(berg_dir, tiny_gpt2_dir, context_tokens=5) as model:
        got = model.word_features(WORDS)
    np.testing.assert_allclose(got, reference_features(tiny_gpt2_dir, WORDS, LAYER, context_len=5), rtol=0, atol=1e-5)
    with pytest.raises(InvalidParameterError, match="context_tokens=600 makes 601-token windows, more than .* 512 positions"):
        load(berg_dir, tiny_gpt2_dir, context_tokens=600)


def test_readout_equals_the_formulas_electrode_major(berg_dir, berg_files, tiny_gpt2_dir):
    with load(berg_dir, tiny_gpt2_dir) as model:
        out = model.encode(WORDS)
        names = model.output_names
        axes = model.output_axes
    assert out.dtype == np.float32 and out.shape == (len(WORDS), 3, N_LAGS)
    want = reference_readout(reference_features(tiny_gpt2_dir, WORDS, LAYER), berg_files.weights)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
    assert np.ptp(want[:, 0, 0]) > 100 * 1e-5  # the features matter at this tolerance (words differ)
    assert axes["electrode"] == ["G1", "G2", "G3"]
    assert axes["lag"][0] == "-2.00000s" and axes["lag"][64] == "+0.00000s" and axes["lag"][-1] == "+2.00000s"
    assert names[:2] == ["G1@-2.00000s", "G1@-1.96875s"] and names[N_LAGS] == "G2@-2.00000s" and len(names) == 3 * N_LAGS


def test_selection_is_every_selected_electrode_times_every_selected_lag(berg_dir, berg_files, tiny_gpt2_dir):
    lags = np.zeros(N_LAGS, dtype=int)
    lags[[0, 64, 100]] = 1
    with load(berg_dir, tiny_gpt2_dir, selection={"electrode_index": [1, 0, 1], "lags": lags}) as model:
        out = model.encode(WORDS[:6])
        assert model.output_names == ["G1@-2.00000s", "G1@+0.00000s", "G1@+1.12500s",
                                      "G3@-2.00000s", "G3@+0.00000s", "G3@+1.12500s"]
    want = reference_readout(reference_features(tiny_gpt2_dir, WORDS[:6], LAYER), berg_files.weights)
    assert out.shape == (6, 2, 3)
    np.testing.assert_allclose(out, want[:, [0, 2]][:, :, [0, 64, 100]], rtol=1e-5, atol=1e-5)


def test_context_stops_at_the_call(berg_dir, berg_files, tiny_gpt2_dir):
    """Words are read after the preceding words of the same call only (BERG's behaviour)."""
    with load(berg_dir, tiny_gpt2_dir) as model:
        whole = model.encode(WORDS[:10])
        tail = model.encode(WORDS[5:10])
    assert tail.shape == (5, 3, N_LAGS)
    assert not np.allclose(whole[5:], tail, atol=1e-4)  # the same words without their first five predecessors


@pytest.mark.parametrize(("stimulus", "message"), [
    ("So the quokka", "not one str; split the text into words"),
    ([], "the stimulus is empty"),
    (["So", ""], "word 1 is an empty string"),
    ({"sentences": ["a"]}, "needs a 'words' key"),
])
def test_bad_stimuli_are_one_line_errors(berg_dir, berg_files, tiny_gpt2_dir, stimulus, message):
    with load(berg_dir, tiny_gpt2_dir) as model, pytest.raises(StimulusError, match=message) as info:
        model.encode(stimulus)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"selection": {"electrode_index": [1, 0]}}, r"selection\['electrode_index'\] has length 2, but 01 has 3 electrodes"),
    ({"selection": {"lags": [1] * 128}}, r"selection\['lags'\] has length 128, but 01 has 129 lags"),
    ({"selection": {"lags": [0] * 129}}, "all zeros"),
    ({"selection": {"voxel_index": [1, 0, 1]}}, "unknown selection key.*valid keys: electrode_index, lags"),
    ({"subject": "10"}, "unknown subject '10'"),
    ({"context_tokens": -1}, "context_tokens"),
])
def test_bad_parameters_are_one_line_errors(berg_dir, berg_files, tiny_gpt2_dir, kwargs, message):
    kwargs = {"subject": "01", "backbone": str(tiny_gpt2_dir), "layer": LAYER, "device": "cpu", **kwargs}
    with pytest.raises(InvalidParameterError, match=message) as info:
        BERG(berg_dir).get_encoding_model(MODEL_ID, **kwargs)
    assert "\n" not in str(info.value)


def test_missing_file_offline_names_berg_fetch(berg_dir, tiny_gpt2_dir, monkeypatch):
    monkeypatch.setenv("BERG_OFFLINE", "1")
    with pytest.raises(ResourceError, match=f"berg fetch {MODEL_ID}") as info:
        load(berg_dir, tiny_gpt2_dir)
    assert "\n" not in str(info.value)
