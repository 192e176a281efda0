"""A tiny random GPT-2 through brainscore's own HuggingfaceSubject: features checked against the full HF
model's hidden_states, context modes, the end-to-end PLS map, device."""

from __future__ import annotations

import numpy as np
import pytest
import synthetic
import torch
from brainscore_language.model_helpers.preprocessing import prepare_context
from conftest import TINY_HIDDEN_INDEX
from sklearn.cross_decomposition import PLSRegression

from berg_brainscore.activations import digest
from berg_brainscore.encoder import BrainscoreEncoder
from berg_core import InvalidParameterError

SENTENCES = ["The cat sat on the mat.", "Whales sing in the cold ocean .", "Why?", "The cat sat on the mat.",
             "A pilot repaired the engine near the old harbor, then walked home."]


def hf_last_token(model, tokenizer, text: str) -> np.ndarray:
    """Reference: the full model run on ``text`` alone, hidden_states[2] (= output of transformer.h.1) at the last token."""
    with torch.no_grad():
        out = model(**tokenizer(text, truncation=True, return_tensors="pt"), output_hidden_states=True)
    return out.hidden_states[TINY_HIDDEN_INDEX][0, -1].double().numpy()


def test_independent_features_equal_the_full_models_hidden_states(tiny, pereira):
    spec, model, tokenizer = tiny
    encoder = BrainscoreEncoder(spec, subject="018", batch_size=2)
    got = encoder.features(SENTENCES)
    ref = np.stack([hf_last_token(model, tokenizer, prepare_context([s])) for s in SENTENCES])  # brainscore's text clean-up
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)
    via_brainscore = np.stack([digest(encoder._subject, [s])[0] for s in SENTENCES])  # brainscore's digest_text, one at a time
    np.testing.assert_allclose(got, via_brainscore, rtol=0, atol=1e-5)
    encoder.options["batch_size"] = 16
    np.testing.assert_allclose(encoder.features(SENTENCES), got, rtol=0, atol=1e-5)


def test_running_context_reads_each_sentence_after_the_earlier_ones(tiny, pereira):
    spec, model, tokenizer = tiny
    independent = BrainscoreEncoder(spec, subject="018")
    running = BrainscoreEncoder(spec, subject="018", context="running")
    ind, run = independent.features(SENTENCES), running.features(SENTENCES)
    ref = np.stack([hf_last_token(model, tokenizer, prepare_context(SENTENCES[: i + 1])) for i in range(len(SENTENCES))])
    np.testing.assert_allclose(run, ref, rtol=0, atol=1e-5)
    np.testing.assert_allclose(run, digest(running._subject, SENTENCES), rtol=0, atol=1e-5)  # BERG's digest_text of the list
    np.testing.assert_allclose(run[0], ind[0], rtol=0, atol=1e-6)  # the first sentence has no earlier context
    assert np.all(np.abs(run[1:] - ind[1:]).max(axis=1) > 1e-3)
    assert np.abs(ind[0] - ind[3]).max() == 0 and np.abs(run[0] - run[3]).max() > 1e-3  # same text, other context
    assert not np.allclose(independent.encode(SENTENCES)[1:], running.encode(SENTENCES)[1:])


def test_end_to_end_map_equals_sklearn_on_reference_features(tiny, pereira):
    spec, model, tokenizer = tiny
    sentences, stimulus_ids, passages, values, subjects, _ = synthetic.the_384()
    x = np.zeros((len(sentences), model.config.n_embd))
    for label in sorted(set(passages)):  # Brain-Score's convention: each passage one running text
        rows = np.flatnonzero(passages == label)
        for k, row in enumerate(rows):
            x[row] = hf_last_token(model, tokenizer, prepare_context([sentences[i] for i in rows[: k + 1]]))
    order = np.argsort(stimulus_ids)
    cols = subjects == "296"
    pls = PLSRegression(n_components=25, scale=False).fit(x[order], values[order][:, cols])
    expected = pls.predict(np.stack([hf_last_token(model, tokenizer, prepare_context([s])) for s in SENTENCES]))
    out = BrainscoreEncoder(spec, subject="296").encode(SENTENCES)
    assert out.shape == (len(SENTENCES), int(cols.sum()))
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_device_is_honoured(tiny, pereira):
    spec, _, _ = tiny
    encoder = BrainscoreEncoder(spec, subject="018", device="cpu")
    assert encoder.device == "cpu" and encoder._subject.device == "cpu"
    assert {p.device.type for p in encoder._subject.basemodel.parameters()} == {"cpu"}
    assert not encoder._subject.basemodel.training
    if not torch.cuda.is_available():
        with pytest.raises(InvalidParameterError, match="CUDA is not available"):
            BrainscoreEncoder(spec, subject="018", device="cuda")


def test_close_releases_the_model(tiny, pereira):
    spec, _, _ = tiny
    encoder = BrainscoreEncoder(spec, subject="018")
    encoder.close()
    assert encoder._subject is None
