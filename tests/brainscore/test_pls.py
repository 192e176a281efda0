"""The cached PLS map: sklearn's predict formula, stored as .npz without pickle."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cross_decomposition import PLSRegression

from berg_brainscore.pls import N_COMPONENTS, fit_map, is_valid_map, load_map, save_map


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((120, 40)) * rng.uniform(0.5, 3.0, 40) + rng.standard_normal(40)
    y = x[:, :7] @ rng.standard_normal((7, 30)) + 0.5 * rng.standard_normal((120, 30)) + 2.0
    return x, y, rng.standard_normal((9, 40))


def test_prediction_equals_sklearn(data):
    x, y, new = data
    ref = PLSRegression(n_components=N_COMPONENTS, scale=False).fit(x, y)
    pls = fit_map(x, y, np.arange(30))
    np.testing.assert_allclose(pls.predict(new), ref.predict(new), rtol=0, atol=1e-10)
    np.testing.assert_allclose(pls.x_mean, x.mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(pls.y_mean, y.mean(axis=0), atol=1e-12)
    assert pls.coef.shape == (30, 40) and np.all(pls.x_std == 1.0)


def test_npz_round_trip_without_pickle(data, tmp_path):
    x, y, new = data
    pls = fit_map(x, y, [f"s.{i}" for i in range(30)], info={"subject": "018"})
    path = tmp_path / "map.npz"
    save_map(pls, path)
    with np.load(path, allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)
    back = load_map(path)
    np.testing.assert_array_equal(back.predict(new), pls.predict(new))
    assert list(back.neuroid_ids) == [f"s.{i}" for i in range(30)] and back.info["subject"] == "018"
    assert back.info["n_components"] == 25 and back.info["scale"] is False
    assert is_valid_map(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # truncated: rebuilt, never read as valid
    assert not is_valid_map(path)
    assert not is_valid_map(tmp_path / "missing.npz")


def test_wrong_feature_count_is_a_clear_error(data):
    x, y, _ = data
    pls = fit_map(x, y, np.arange(30))
    with pytest.raises(ValueError, match="40 features"):
        pls.predict(np.zeros((2, 41)))
