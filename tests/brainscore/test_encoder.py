"""The real brainscore ``randomembedding-100`` model end to end on the synthetic Pereira data."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import synthetic
from sklearn.cross_decomposition import PLSRegression

from berg_brainscore.enumerate import BrainscoreModel
from berg_brainscore.training import features_path, map_path
from berg_core import BERG, DownloadError, InvalidParameterError, ModelLoadError
from berg_core.cli import main
from berg_core.registry import get_spec

MODEL_ID = "brainscore_language-randomembedding-100"
NEW = ["The violin player crossed the bridge at night.", "Whales sing in the cold ocean.", "A pilot repaired the engine.",
       "The violin player crossed the bridge at night."]


@pytest.fixture(scope="session")
def reference():
    """Independent reference: brainscore's own load_model + digest_text (passage by passage for the training
    rows: an embedding model reads every part alone, so this equals the default one running text; each new
    sentence alone), then sklearn's PLSRegression fit on rows sorted by stimulus_id."""
    from brainscore_language import ArtificialSubject, load_model

    subject = load_model("randomembedding-100")
    subject.start_neural_recording(ArtificialSubject.RecordingTarget.language_system, ArtificialSubject.RecordingType.fMRI)
    sentences, stimulus_ids, passages, values, subjects, neuroid_ids = synthetic.the_384()
    x = np.zeros((len(sentences), 100))
    for label in sorted(set(passages)):
        rows = np.flatnonzero(passages == label)
        x[rows] = subject.digest_text([sentences[i] for i in rows])["neural"].values
    x_new = np.stack([subject.digest_text([s])["neural"].values[0] for s in NEW])
    order = np.argsort(stimulus_ids)
    return {"x": x[order], "y": values[order], "subjects": subjects, "neuroid_ids": neuroid_ids, "x_new": x_new}


def sklearn_prediction(reference, subject: str) -> np.ndarray:
    cols = reference["subjects"] == subject
    pls = PLSRegression(n_components=25, scale=False).fit(reference["x"], reference["y"][:, cols])
    return pls.predict(reference["x_new"])


def model() -> BrainscoreModel:
    return BrainscoreModel.from_info(get_spec(MODEL_ID).info)


def test_predictions_equal_sklearn_pls_fit_on_the_same_data(pereira, reference):
    encoder = BERG().get_encoding_model(MODEL_ID, subject="289")
    out = encoder.encode(NEW)
    assert out.dtype == np.float32 and out.shape == (len(NEW), synthetic.voxel_counts()["289"])
    np.testing.assert_allclose(out, sklearn_prediction(reference, "289"), rtol=0, atol=1e-5)
    assert encoder.output_names == [str(n) for n in reference["neuroid_ids"][reference["subjects"] == "289"]]
    np.testing.assert_array_equal(out[0], out[3])


def test_second_load_reads_the_cache_and_never_retrains(pereira, reference, monkeypatch):
    expected = sklearn_prediction(reference, "018")
    first = BERG().get_encoding_model(MODEL_ID, subject="018").encode(NEW)
    assert pereira.read_text().count("load") == 1
    assert map_path(model(), "018").is_file() and features_path(model()).is_file()

    def refuse(*args, **kwargs):
        raise AssertionError("retrained")

    monkeypatch.setattr(PLSRegression, "fit", refuse)
    synthetic_loader_refused = lambda: refuse()  # noqa: E731
    from brainscore_language import data_registry

    monkeypatch.setitem(data_registry, "Pereira2018.language", synthetic_loader_refused)
    again = BERG().get_encoding_model(MODEL_ID, subject="018").encode(NEW)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(again, expected, rtol=0, atol=1e-5)


def test_another_subject_reuses_the_cached_features(pereira, reference, monkeypatch):
    BERG().get_encoding_model(MODEL_ID, subject="199")
    import berg_brainscore.training as training

    monkeypatch.setattr(training, "training_features", lambda *a, **k: (_ for _ in ()).throw(AssertionError("features recomputed")))
    out = BERG().get_encoding_model(MODEL_ID, subject="426").encode(NEW)
    np.testing.assert_allclose(out, sklearn_prediction(reference, "426"), rtol=0, atol=1e-5)


TWO_PROCESSES = """
import sys
sys.path.insert(0, {here!r})
import synthetic
synthetic.install(calls_file={loads!r})
from sklearn.cross_decomposition import PLSRegression
fit = PLSRegression.fit
def counted(self, *a, **k):
    with open({fits!r}, "a") as f:
        f.write("fit\\n")
    return fit(self, *a, **k)
PLSRegression.fit = counted
from berg_core import BERG
print(BERG().get_encoding_model({model_id!r}, subject="288").encode(["A river crossed the valley."]).tolist())
"""


def test_two_processes_building_one_cache_leave_one_valid_file(tmp_path, pereira, reference):
    fits = tmp_path / "fits.txt"
    code = TWO_PROCESSES.format(here=str(synthetic.HERE), loads=str(tmp_path / "loads.txt"), fits=str(fits), model_id=MODEL_ID)
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][1][-2000:] + outs[1][1][-2000:]
    assert outs[0][0].splitlines()[-1] == outs[1][0].splitlines()[-1]
    assert fits.read_text().count("fit") == 1
    folder = map_path(model(), "288").parent
    assert sorted(p.name for p in folder.glob("*sub-288*.npz")) == [map_path(model(), "288").name]
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    from berg_brainscore.pls import load_map

    x_new = np.asarray(reference["x_new"][:1])
    np.testing.assert_allclose(load_map(map_path(model(), "288")).predict(x_new), sklearn_prediction(reference, "288")[:1], atol=1e-8)


def test_berg_fetch_prebuilds_the_cache(pereira, monkeypatch, capsys):
    assert main(["fetch", MODEL_ID, "--subject", "343", "--quiet"]) == 0
    assert map_path(model(), "343").is_file()
    monkeypatch.setattr(PLSRegression, "fit", lambda *a, **k: (_ for _ in ()).throw(AssertionError("retrained")))
    assert BERG().get_encoding_model(MODEL_ID, subject="343").encode("One sentence.").shape == (1, synthetic.voxel_counts()["343"])


def test_berg_fetch_without_subject_builds_every_map_and_loads_the_model_once(pereira, monkeypatch, capsys):
    """`berg fetch MODEL` (no --subject): every subject's map; the model is loaded once per process even when the
    features are already cached, so its weights are downloaded for offline use (today: "needs a subject")."""
    from berg_brainscore import encoder
    from berg_brainscore.pereira import SUBJECTS

    loads = []
    real = encoder.load_subject
    monkeypatch.setattr(encoder, "load_subject", lambda name, device: loads.append(name) or real(name, device))
    monkeypatch.setattr(encoder, "_LOADED_ONCE", set())
    assert main(["fetch", MODEL_ID, "--quiet"]) == 0
    assert all(map_path(model(), s).is_file() for s in SUBJECTS) and len(SUBJECTS) == 9
    assert loads == ["randomembedding-100"]
    monkeypatch.setattr(encoder, "_LOADED_ONCE", set())  # a new process: everything cached, the model still loaded once
    assert main(["fetch", MODEL_ID, "--quiet"]) == 0
    assert loads == ["randomembedding-100"] * 2


def test_metadata_lists_the_subjects_neuroid_ids(pereira):
    _, _, _, _, subjects, neuroid_ids = synthetic.the_384()
    meta = BERG().get_model_metadata(MODEL_ID, subject="366")  # before any training: read from the data
    assert meta["neuroid_ids"] == [str(n) for n in neuroid_ids[subjects == "366"]]
    assert meta["n_voxels"] == synthetic.voxel_counts()["366"] and meta["subject"] == "366"
    encoder = BERG().get_encoding_model(MODEL_ID, subject="366")
    assert encoder.metadata["neuroid_ids"] == meta["neuroid_ids"] and "pls_cache" in encoder.metadata


def test_embedding_features_ignore_the_context_mode(pereira):
    independent = BERG().get_encoding_model(MODEL_ID, subject="407").encode(NEW)
    running = BERG().get_encoding_model(MODEL_ID, subject="407", context="running").encode(NEW)
    np.testing.assert_array_equal(independent, running)


def test_bad_subject_lists_the_valid_ones(pereira):
    with pytest.raises(InvalidParameterError, match="018, 199, 288, 289, 296, 343, 366, 407, 426"):
        BERG().get_encoding_model(MODEL_ID, subject="215")
    with pytest.raises(InvalidParameterError, match="needs a subject"):
        BERG().get_encoding_model(MODEL_ID)


def test_bad_options(pereira):
    with pytest.raises(InvalidParameterError, match="context"):
        BERG().get_encoding_model(MODEL_ID, subject="018", context="sliding")
    with pytest.raises(InvalidParameterError, match="batch_size"):
        BERG().get_encoding_model(MODEL_ID, subject="018", batch_size=0)
    with pytest.raises(InvalidParameterError, match="train_context.*running.*passage"):
        BERG().get_encoding_model(MODEL_ID, subject="018", train_context="sentence")


@pytest.mark.parametrize(("name", "reason"), [("oasm-sigma1.0", "ignore the text"), ("rnn-lm-ptb", "Docker container"),
                                              ("lm1b", "TensorFlow"), ("earley-parser-minivocab", "no neural output")])
def test_unusable_model_is_refused_with_its_reason(name, reason):
    with pytest.raises(ModelLoadError, match=reason):
        BERG().get_encoding_model(f"brainscore_language-{name}", subject="018")
    assert not [m for m in sys.modules if m.startswith("brainscore_language.models.") and "random_embedding" not in m]


def test_data_download_failure_is_a_download_error(monkeypatch, tmp_path):
    """brainscore offline: boto raises, BotoFetcher wraps both tries in a bare Exception; berg says DownloadError."""
    from botocore.exceptions import EndpointConnectionError
    from brainscore_core.supported_data_standards.brainio import fetch

    def offline(self, config):
        raise EndpointConnectionError(endpoint_url="https://brainscore-storage.s3.amazonaws.com")

    monkeypatch.setattr(fetch.BotoFetcher, "download_boto_config", offline)
    monkeypatch.setattr(fetch, "_local_data_path", str(tmp_path / "brainio"))
    with pytest.raises(DownloadError, match=r"Pereira2018\.language.*check the network"):
        BERG().get_encoding_model(MODEL_ID, subject="018")
    assert main(["fetch", MODEL_ID, "--subject", "018", "--quiet"]) == 1


def test_hub_model_missing_offline_is_a_clear_load_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="could not load model 'distilgpt2'.*HF cache.*unset HF_HUB_OFFLINE"):
        BERG().get_encoding_model("brainscore_language-distilgpt2", subject="018")


def test_cli_encode_writes_the_responses(pereira, tmp_path, reference):
    out = tmp_path / "responses.npy"
    assert main(["encode", MODEL_ID, *NEW, "--subject", "289", "--output", str(out)]) == 0
    np.testing.assert_allclose(np.load(out), sklearn_prediction(reference, "289"), rtol=0, atol=1e-5)


def test_cli_train_context_option_builds_its_own_map(pereira, tmp_path, reference):
    """-O train_context=passage: its own features and map files; the default (running) ones are not built."""
    out = tmp_path / "responses.npy"
    assert main(["encode", MODEL_ID, *NEW, "--subject", "289", "-O", "train_context=passage", "--output", str(out), "--quiet"]) == 0
    assert map_path(model(), "289", "passage").is_file() and features_path(model(), "passage").is_file()
    assert not map_path(model(), "289").exists() and not features_path(model()).exists()
    np.testing.assert_allclose(np.load(out), sklearn_prediction(reference, "289"), rtol=0, atol=1e-5)  # embeddings: same features
