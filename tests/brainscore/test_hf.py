"""A tiny random GPT-2 through brainscore's own HuggingfaceSubject: features checked against the full HF
model's hidden_states, context modes, device (the trained map against BERG's and sklearn's: test_berg_parity)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from brainscore_language.model_helpers.preprocessing import prepare_context
from conftest import hf_last_token

from berg_brainscore.activations import digest
from berg_brainscore.encoder import BrainscoreEncoder
from berg_core import InvalidParameterError

SENTENCES = ["The cat sat on the mat.", "Whales sing in the cold ocean .", "Why?", "The cat sat on the mat.",
             "A pilot repaired the engine near the old harbor, then walked home."]


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
