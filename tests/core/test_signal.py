"""berg_core.features.timeseries: delay layouts, z-score, Lanczos against the dense formula, TR grid."""

import numpy as np
import pytest

from berg_core.errors import InvalidParameterError
from berg_core.features.timeseries import delay, lanczos_kernel, lanczos_matrix, lanczos_resample, tr_grid, zscore


def dense_lanczos(t_out, t_in, tr, a=3):
    """Textbook dense formula, element by element."""
    out = np.zeros((len(t_out), len(t_in)))
    for k, to in enumerate(t_out):
        for j, ti in enumerate(t_in):
            u = (to - ti) / tr
            if u == 0:
                out[k, j] = 1.0
            elif abs(u) < a:
                out[k, j] = a * np.sin(np.pi * u) * np.sin(np.pi * u / a) / (np.pi**2 * u**2)
    return out


def test_fir_delays_are_delay_major_and_zero_padded():
    x = np.arange(1, 13, dtype=float).reshape(6, 2)  # 6 samples, 2 features
    out = delay(x, [1, 2, 3], mode="fir")
    assert out.shape == (6, 6)
    d = 2
    for i, lag in enumerate([1, 2, 3]):
        block = out[:, i * d:(i + 1) * d]
        assert np.all(block[:lag] == 0)
        np.testing.assert_array_equal(block[lag:], x[: 6 - lag])
    # column (d_index)·d + j is feature j at that delay
    np.testing.assert_array_equal(out[2:, 1 * d + 1], x[:4, 1])  # delay index 1 = lag 2


def test_fir_negative_and_zero_delays():
    x = np.arange(5.0)[:, None]
    out = delay(x, [0, -1], mode="fir")
    np.testing.assert_array_equal(out[:, 0], x[:, 0])
    np.testing.assert_array_equal(out[:, 1], [1, 2, 3, 4, 0])


def test_mean_delays_average_the_shifted_copies():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 3))
    out = delay(x, [8, 9, 10], mode="mean")
    assert out.shape == x.shape
    expected = np.zeros_like(x)
    for lag in (8, 9, 10):
        shifted = np.zeros_like(x)
        shifted[lag:] = x[:-lag]
        expected += shifted / 3
    np.testing.assert_allclose(out, expected, atol=1e-12)


def test_delay_errors():
    with pytest.raises(InvalidParameterError):
        delay(np.zeros(5), [1])
    with pytest.raises(InvalidParameterError):
        delay(np.zeros((5, 2)), [])
    with pytest.raises(InvalidParameterError):
        delay(np.zeros((5, 2)), [1], mode="stack")


def test_delay_longer_than_series_gives_zeros():
    out = delay(np.ones((3, 2)), [5], mode="fir")
    assert np.all(out == 0)


def test_zscore_population_std_and_constant_columns():
    x = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0], [6.0, 5.0]])
    z = zscore(x)
    expected0 = (x[:, 0] - x[:, 0].mean()) / np.sqrt(((x[:, 0] - x[:, 0].mean()) ** 2).mean())
    np.testing.assert_allclose(z[:, 0], expected0)
    np.testing.assert_array_equal(z[:, 1], 0.0)  # std 0 -> divided by 1 after centring


def test_lanczos_kernel_spec_values():
    u = np.array([0.0, 0.25, 0.5, 1.0, 1.5, 2.5, 3.0, -0.5, 4.0])
    expected = [1.0, 0.890067, 0.607927, 0.0, -0.135095, 0.024317, 0.0, 0.607927, 0.0]
    np.testing.assert_allclose(lanczos_kernel(u), expected, atol=1e-6)


def test_lanczos_kernel_is_finite_and_continuous_at_tiny_offsets():
    """u so small that u² underflows gave 0/0 = NaN (onsets 1e-170 s from a TR time: NaN predictions)."""
    tiny = np.array([1e-300, -1e-200, 1e-170, 5e-155, 1e-12, 1e-10])
    np.testing.assert_array_equal(lanczos_kernel(tiny), np.ones(tiny.size))  # the limit 1 (1 - L(u) < 1e-19 here)
    # continuity with the formula: Taylor 1 - π²(1 + 1/a²)u²/6 at u = 1e-4, 1e-6 (formula accurate there)
    for u in (1e-4, 1e-6):
        assert lanczos_kernel(np.array([u]))[0] == pytest.approx(1 - np.pi**2 * (1 + 1 / 9) * u**2 / 6, abs=1e-15)


def test_resampling_onsets_a_hair_apart_equals_equal_onsets():
    feats = np.random.default_rng(3).standard_normal((4, 5))
    times = tr_grid(np.array([0.0, 3.0]), tr=2.0)
    near = lanczos_resample(feats, np.array([0.0, 1e-170, 1e-300, 3.0]), times, tr=2.0)
    same = lanczos_resample(feats, np.array([0.0, 0.0, 0.0, 3.0]), times, tr=2.0)
    assert np.isfinite(near).all()
    np.testing.assert_array_equal(near, same)


def test_lanczos_matrix_equals_dense_formula_with_unsorted_times():
    rng = np.random.default_rng(1)
    t_in = rng.uniform(0, 40, size=57)  # irregular word onsets, unsorted
    t_out = tr_grid(np.sort(t_in), tr=2.0)
    K = lanczos_matrix(t_in, t_out, tr=2.0).toarray()
    np.testing.assert_allclose(K, dense_lanczos(t_out, t_in, 2.0), atol=1e-12)
    feats = rng.standard_normal((57, 4))
    np.testing.assert_allclose(lanczos_resample(feats, t_in, t_out, tr=2.0), dense_lanczos(t_out, t_in, 2.0) @ feats, atol=1e-10)


def test_tr_grid_count():
    grid = tr_grid(np.array([1.0, 3.0, 10.5]), tr=2.0)
    # n = ceil((10.5 + 8 - 1)/2) = ceil(8.75) = 9
    assert len(grid) == 9
    np.testing.assert_allclose(grid[:3], [1.0, 3.0, 5.0])


def test_one_implementation_shared_with_the_plugins():
    """berg_lebel (and any plugin) imports the core's Lanczos/delays/z-score instead of redefining them."""
    import re
    from pathlib import Path

    plugins = Path(__file__).resolve().parents[2] / "plugins"
    for py in plugins.rglob("*.py"):
        text = py.read_text(encoding="utf-8")
        assert not re.search(r"^\s*def (lanczos\w*|delay|zscore|tr_grid)\(", text, flags=re.M), py
    lebel = plugins / "berg_lebel" / "berg_lebel" / "encoder.py"
    if lebel.is_file():
        assert re.search(r"from berg_core(\.signal)? import [^\n]*\b(delay|lanczos_resample)\b", lebel.read_text(encoding="utf-8"))
