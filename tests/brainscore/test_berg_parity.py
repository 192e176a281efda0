"""berg's Brain-Score PLS map is BERG's map.

References, both independent of berg's code:
* BERG's gateway (``berg/models/fmri/brainscore_language_models.py``: ``_train_and_cache_regression`` and
  ``generate_response``) written out step by step with brainscore-language and brainscore-vision's own
  ``pls_regression``: ``benchmark.data`` filtered to the subject's neuroids, ONE ``digest_text`` over its
  384 sentences, the assembly's ``stimulus_id`` set on the output, ``pls_regression().fit``; new sentences:
  one ``digest_text`` over the list, ``regression.predict``;
* plain sklearn ``PLSRegression(25, scale=False)`` on features from the full Hugging Face model, with the
  alignment written out here: rows sorted by ``stimulus_id`` as text, the subject's neuroids in the data's order.

The data is the shuffled Pereira-shaped fixture (384 sentences in 96 passages; presentations and neuroids
permuted, see ``synthetic``), so any other row, sentence or neuroid order gives other numbers. The tiny
GPT-2's tokenizer truncates at 128 tokens (on the left, as brainscore sets it): the running text of the 384
sentences is truncated for nearly every sentence. Tolerance: 1e-5 relative to the largest entry.
"""

from __future__ import annotations

import numpy as np
import pytest
import synthetic
from brainscore_language.model_helpers.preprocessing import prepare_context
from conftest import hf_last_token, register_tiny, tiny_model, tiny_subject
from sklearn.cross_decomposition import PLSRegression

from berg_brainscore.encoder import BrainscoreEncoder, model_of
from berg_brainscore.pls import load_map
from berg_brainscore.training import features_path, map_path

PARITY_ID = "berg-tiny-gpt2-128"
MAX_LENGTH = 128
SUBJECTS = ("296", "018")
NEW = ["The violin player crossed the bridge at night.", "Whales sing in the cold ocean .", "Why?",
       "The violin player crossed the bridge at night.", "A pilot repaired the engine near the old harbor, then walked home."]


def assert_close(got, expected, rtol: float = 1e-5) -> None:
    """Equal to ``rtol`` relative to the largest entry of ``expected``."""
    expected = np.asarray(expected, dtype=np.float64)
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), expected, rtol=rtol, atol=rtol * np.abs(expected).max())


@pytest.fixture
def shuffled(monkeypatch):
    """brainscore's load_dataset('Pereira2018.language') returns the shuffled synthetic assembly."""
    synthetic.install(monkeypatch=monkeypatch, shuffle=True)


@pytest.fixture
def parity(tiny_folder, monkeypatch):
    """The berg spec of the tiny GPT-2 (128-token context) registered in brainscore's model_registry."""
    return register_tiny(monkeypatch, tiny_folder, PARITY_ID, MAX_LENGTH)[0]


@pytest.fixture(scope="session")
def gateway(tiny_folder):
    """BERG's gateway, per subject: its regression's coef_/_x_mean/intercept_, its predictions for NEW, their neuroid ids."""
    from brainscore_language.benchmarks.pereira2018.benchmark import _Pereira2018Experiment
    from brainscore_vision.metrics.regression_correlation.metric import pls_regression

    with pytest.MonkeyPatch.context() as mp:
        synthetic.install(monkeypatch=mp, shuffle=True)
        benchmark_data = _Pereira2018Experiment._load_data(None, "384sentences", atlas="language")  # Pereira2018_384sentences().data
    subject = tiny_subject(*tiny_model(tiny_folder, MAX_LENGTH), PARITY_ID)
    subject.start_neural_recording(recording_target=subject.RecordingTarget.language_system, recording_type=subject.RecordingType.fMRI)
    new_reps = subject.digest_text(NEW)["neural"]
    new_reps["stimulus_id"] = "presentation", [f"pred_{i}" for i in range(len(NEW))]
    model_reps = subject.digest_text(benchmark_data["sentence"].values)["neural"]  # the same sentences for every subject: run once
    out = {}
    for name in SUBJECTS:
        assembly = benchmark_data.sel(neuroid=benchmark_data["subject"] == name)
        model_reps["stimulus_id"] = "presentation", assembly["stimulus_id"].values
        regression = pls_regression()
        regression.fit(model_reps, assembly)
        predicted = regression.predict(new_reps)
        pls = regression._regression
        out[name] = {"coef": pls.coef_, "x_mean": pls._x_mean, "intercept": pls.intercept_, "prediction": predicted.values,
                     "neuroid_ids": [str(n) for n in predicted["neuroid_id"].values]}
    return out


@pytest.fixture(scope="session")
def written_out(tiny_folder):
    """The sklearn reference with the alignment written out: per subject (coef, predictions for NEW read as one running text)."""
    model, tokenizer = tiny_model(tiny_folder, MAX_LENGTH)
    sentences, stimulus_ids, _, values, subjects, _ = synthetic.the_384(shuffle=True)
    # BERG: the 384 sentences in the data's order are one running text; sentence i is read after 0..i-1
    x = np.stack([hf_last_token(model, tokenizer, prepare_context(sentences[: i + 1])) for i in range(len(sentences))])
    x_new = np.stack([hf_last_token(model, tokenizer, prepare_context(NEW[: i + 1])) for i in range(len(NEW))])
    rows = sorted(range(len(sentences)), key=lambda i: str(stimulus_ids[i]))  # XarrayRegression: sortby('stimulus_id'), text order
    out = {}
    for name in SUBJECTS:
        cols = [j for j in range(len(subjects)) if subjects[j] == name]  # the subject's neuroids, the data's order
        pls = PLSRegression(n_components=25, scale=False).fit(x[rows], values[np.ix_(rows, cols)])
        out[name] = (pls.coef_, pls.predict(x_new))
    return out


def test_default_map_is_bergs_map(parity, shuffled, gateway):
    """Default training = BERG's gateway with brainscore-vision's pls_regression (today: passage-wise feed, r ~ 0)."""
    for name in SUBJECTS:
        ref = gateway[name]
        pls = BrainscoreEncoder(parity, subject=name)._map  # the second subject reuses the cached running features
        assert_close(pls.coef, ref["coef"])
        assert_close(pls.x_mean, ref["x_mean"])
        assert_close(pls.intercept, ref["intercept"])
        assert [str(n) for n in pls.neuroid_ids] == ref["neuroid_ids"] and pls.info["train_context"] == "running"


def test_running_inference_is_bergs_encode(parity, shuffled, gateway):
    """context="running" = BERG's generate_response: one digest_text over the list, then the map."""
    for name in SUBJECTS:
        encoder = BrainscoreEncoder(parity, subject=name, context="running")
        out = encoder.encode(NEW)
        assert out.shape == gateway[name]["prediction"].shape
        assert_close(out, gateway[name]["prediction"])
        assert encoder.output_names == gateway[name]["neuroid_ids"]
        assert np.abs(out[0] - out[3]).max() > 1e-3  # same sentence, other context: the list was read as one text


def test_default_map_equals_sklearn_with_the_alignment_written_out(parity, shuffled, written_out):
    for name in SUBJECTS:
        coef, prediction = written_out[name]
        encoder = BrainscoreEncoder(parity, subject=name, context="running")
        assert_close(encoder._map.coef, coef)
        assert_close(encoder.encode(NEW), prediction)


def test_passage_context_is_an_option_with_its_own_cache(parity, shuffled, tiny_folder, monkeypatch):
    """-O train_context=passage: Brain-Score's benchmark feed (each passage one running text), cached apart from the default."""
    model = model_of(parity)
    assert features_path(model, "running") != features_path(model, "passage")
    assert map_path(model, "296", "running") != map_path(model, "296", "passage")
    running = BrainscoreEncoder(parity, subject="296")._map
    passage = BrainscoreEncoder(parity, subject="296", train_context="passage")._map
    for path in (features_path(model, "running"), features_path(model, "passage"), map_path(model, "296", "running"),
                 map_path(model, "296", "passage")):
        assert path.is_file()
    assert load_map(map_path(model, "296", "passage")).info["train_context"] == "passage"
    assert abs(np.corrcoef(running.coef.ravel(), passage.coef.ravel())[0, 1]) < 0.5  # the two feeds give unrelated maps

    hf, tokenizer = tiny_model(tiny_folder, MAX_LENGTH)
    sentences, stimulus_ids, passages, values, subjects, _ = synthetic.the_384(shuffle=True)
    x = np.zeros((len(sentences), hf.config.n_embd))
    for label in sorted(set(passages)):  # Brain-Score's benchmark: passages in sorted label order, each one running text
        rows = np.flatnonzero(passages == label)
        for k, row in enumerate(rows):
            x[row] = hf_last_token(hf, tokenizer, prepare_context([sentences[i] for i in rows[: k + 1]]))
    rows = sorted(range(len(sentences)), key=lambda i: str(stimulus_ids[i]))
    cols = [j for j in range(len(subjects)) if subjects[j] == "296"]
    ref = PLSRegression(n_components=25, scale=False).fit(x[rows], values[np.ix_(rows, cols)])
    assert_close(passage.coef, ref.coef_)

    def refuse(*args, **kwargs):
        raise AssertionError("retrained")

    monkeypatch.setattr(PLSRegression, "fit", refuse)  # both maps are read back from their own files
    np.testing.assert_array_equal(BrainscoreEncoder(parity, subject="296", train_context="passage")._map.coef, passage.coef)
    np.testing.assert_array_equal(BrainscoreEncoder(parity, subject="296")._map.coef, running.coef)
