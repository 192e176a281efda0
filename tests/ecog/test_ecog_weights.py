"""BERG's ECoG files: read by the safe unpickler, converted once to a safe tree, bad files refused in one line."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
from ecog_helpers import N_EMBD

from berg_core import BERG, ModelLoadError, UnsafePickleError
from berg_ecog import weights
from berg_ecog.plugin import METADATA_PATH, MODEL_ID, WEIGHTS_PATH
from berg_ecog.testing import write_berg_files

W01, M01 = WEIGHTS_PATH.format(subject="01"), METADATA_PATH.format(subject="01")


def test_weights_converted_exactly(berg_files, berg_dir):
    w = weights.load_weights(berg_dir, "01")
    raw = berg_files.weights
    assert (w["n_electrodes"], w["n_lags"]) == (3, 129)
    assert w["coef"].dtype == np.float32 and w["coef"].shape == (N_EMBD, 3 * 129)
    np.testing.assert_array_equal(w["coef"], raw["ridge_param"]["coef_"])
    np.testing.assert_array_equal(w["intercept"], raw["ridge_param"]["intercept_"])
    np.testing.assert_array_equal(w["mean_x"], raw["scaler_X_param"]["mean_"])
    np.testing.assert_array_equal(w["scale_y"], raw["scaler_Y_param"]["scale_"])
    np.testing.assert_array_equal(w["best_alphas"], raw["ridge_param"]["best_alphas_"])


def test_target_columns_are_electrode_major():
    np.testing.assert_array_equal(weights.target_columns(np.array([0, 2]), np.array([1, 128]), 129), [1, 128, 259, 386])


def test_converted_once_then_never_unpickled(berg_files, berg_dir, monkeypatch):
    weights.load_weights(berg_dir, "01")
    weights.load_subject_metadata(berg_dir, "01")

    def refuse(*args, **kwargs):
        raise AssertionError("BERG's pickle was read again")

    monkeypatch.setattr(weights, "load_npy_object", refuse)
    assert weights.load_weights(berg_dir, "01")["n_lags"] == 129
    assert weights.load_subject_metadata(berg_dir, "01")["ecog"]["n_electrodes"] == 3


def test_metadata_without_loading_the_backbone(berg_files, berg_dir, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the metadata loaded a backbone")

    monkeypatch.setattr("berg_core.features.backbones.load_backbone", refuse)
    meta = BERG(berg_dir).get_model_metadata(MODEL_ID, subject="01")
    raw = berg_files.metadata
    assert list(meta["ecog"]["ch_names"]) == ["G1", "G2", "G3"] and meta["ecog"]["subject_id"] == "sub-01"
    np.testing.assert_array_equal(meta["ecog"]["ch_coords"], raw["ecog"]["ch_coords"])
    np.testing.assert_array_equal(meta["ecog"]["times"], -2 + np.arange(129) / 32)
    np.testing.assert_array_equal(meta["encoding_model"]["correlation_results"], raw["encoding_model"]["correlation_results"])


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_malicious_weights_are_refused(berg_files, berg_dir):
    np.save(berg_dir / W01, {"ridge_param": Evil()}, allow_pickle=True)
    with pytest.raises(UnsafePickleError):
        weights.load_weights(berg_dir, "01")


@pytest.mark.parametrize(("mutate", "match"), [
    (lambda w: w.pop("ridge_param"), "lacks ridge_param/coef_"),
    (lambda w: w["ridge_param"].update(coef_=np.zeros((N_EMBD, 5), np.float32)), r"coef_ has shape \(32, 5\), expected"),
    (lambda w: w["scaler_Y_param"].update(scale_=np.ones(7)), r"scaler_Y_param/scale_ .* shape \(7,\), expected \(387,\)"),
    (lambda w: w["scaler_X_param"]["mean_"].__setitem__(0, np.nan), "holds NaN/inf"),
    (lambda w: w["shape"].update(n_lags="many"), "not BERG's ECoG weights file"),
])
def test_wrong_weight_files_are_one_line_errors(berg_dir, mutate, match):
    files = write_berg_files(berg_dir, "01", n_features=N_EMBD)
    mutate(files.weights)
    np.save(files.weights_file, files.weights, allow_pickle=True)
    with pytest.raises(ModelLoadError, match=match) as info:
        weights.load_weights(berg_dir, "01")
    assert "\n" not in str(info.value) and f"berg fetch {MODEL_ID} --subject 01" in str(info.value)


def test_not_a_dict_and_truncated(berg_files, berg_dir):
    np.save(berg_dir / M01, [1, 2, 3], allow_pickle=True)
    with pytest.raises(ModelLoadError):
        weights.load_subject_metadata(berg_dir, "01")
    path = berg_dir / W01
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ModelLoadError):
        weights.load_weights(berg_dir, "01")


def test_a_plain_pickle_instead_of_npy_is_refused(berg_files, berg_dir):
    (berg_dir / W01).write_bytes(pickle.dumps({"shape": {"n_electrodes": 3}}))
    with pytest.raises(ModelLoadError):
        weights.load_weights(berg_dir, "01")


def test_readout_predict_in_row_blocks_equals_the_formulas(berg_files, monkeypatch):
    raw = berg_files.weights
    cols = weights.target_columns(np.array([0, 2]), np.arange(0, 129, 4), 129)
    readout = weights.Readout(mean_x=raw["scaler_X_param"]["mean_"], scale_x=raw["scaler_X_param"]["scale_"],
                              coef=raw["ridge_param"]["coef_"][:, cols], intercept=raw["ridge_param"]["intercept_"][cols].astype(float),
                              mean_y=raw["scaler_Y_param"]["mean_"][cols], scale_y=raw["scaler_Y_param"]["scale_"][cols])
    x = np.random.default_rng(1).normal(0, 0.02, (20, N_EMBD)).astype(np.float32)
    monkeypatch.setattr(weights, "ROWS_PER_BLOCK", 7)
    got = readout.predict(x)
    z = (x - raw["scaler_X_param"]["mean_"]) / raw["scaler_X_param"]["scale_"]
    y = (z @ raw["ridge_param"]["coef_"].astype(float) + raw["ridge_param"]["intercept_"]) * raw["scaler_Y_param"]["scale_"] \
        + raw["scaler_Y_param"]["mean_"]
    assert got.dtype == np.float32 and got.shape == (20, len(cols))
    np.testing.assert_allclose(got, y[:, cols], rtol=1e-5, atol=1e-5)
