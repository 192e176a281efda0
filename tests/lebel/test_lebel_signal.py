"""berg_core.features.timeseries as the LeBel model uses it: spec test values and independent dense formulas."""

from __future__ import annotations

import numpy as np
import pytest
from lebel_reference import dense_lanczos, fir_delays, lanczos_weight, tr_times, zscore_columns

from berg_core.features.timeseries import delay, lanczos_kernel, lanczos_matrix, lanczos_resample, tr_grid, zscore

SPEC_VALUES = {0.25: 0.890067, 0.5: 0.607927, 1.0: 0.0, 1.5: -0.135095, 2.5: 0.024317, 3.0: 0.0, 0.0: 1.0}


@pytest.mark.parametrize("u,value", sorted(SPEC_VALUES.items()))
def test_lanczos_kernel_spec_values(u, value):
    assert lanczos_kernel(np.array([u]))[0] == pytest.approx(value, abs=1e-6)
    assert lanczos_kernel(np.array([-u]))[0] == pytest.approx(value, abs=1e-6)  # symmetric
    assert lanczos_weight(u) == pytest.approx(value, abs=1e-6)  # the reference formula agrees with the spec too


def test_lanczos_kernel_is_zero_outside_the_window():
    u = np.array([3.0, 3.2, -4.0, 10.0])
    np.testing.assert_array_equal(lanczos_kernel(u), 0.0)


def test_lanczos_matrix_equals_dense_double_loop():
    rng = np.random.default_rng(0)
    onsets = np.sort(rng.uniform(0, 120, 400))
    onsets[10:13] = onsets[10]  # equal onsets
    times = tr_times(onsets)
    feats = rng.standard_normal((400, 7))
    k = lanczos_matrix(onsets, times, tr=2.0).toarray()
    dense = np.array([[lanczos_weight((t - o) / 2.0) for o in onsets] for t in times])
    np.testing.assert_allclose(k, dense, atol=1e-12)
    ref = dense_lanczos(feats, onsets, times)
    np.testing.assert_allclose(lanczos_resample(feats, onsets, times, tr=2.0), ref, atol=1e-10)
    as32 = lanczos_resample(feats.astype(np.float32), onsets, times, tr=2.0, dtype=np.float32)
    assert as32.dtype == np.float32
    np.testing.assert_allclose(as32, ref, atol=2e-6 * np.abs(ref).max())


def test_tr_grid_spec_formula():
    onsets = np.array([3.7, 4.0, 10.1, 61.3])
    grid = tr_grid(onsets, tr=2.0)
    np.testing.assert_allclose(grid, tr_times(onsets))
    assert len(grid) == int(np.ceil((61.3 + 8.0 - 3.7) / 2.0)) and grid[0] == 3.7
    assert len(tr_grid(np.array([5.0]), tr=2.0)) == 4  # one word: 4 TRs


def test_zscore_population_std_and_constant_columns():
    rng = np.random.default_rng(1)
    x = np.column_stack([rng.standard_normal(50) * 3 + 2, np.full(50, 7.0), rng.standard_normal(50)])
    z = zscore(x)
    np.testing.assert_allclose(z, zscore_columns(x), atol=1e-12)
    np.testing.assert_array_equal(z[:, 1], 0.0)  # std 0 -> divided by 1 after centring
    np.testing.assert_allclose(z[:, 0].std(ddof=0), 1.0)


def test_fir_delays_are_delay_major():
    x = np.arange(1, 13, dtype=float).reshape(6, 2)  # 6 TRs, 2 features
    out = delay(x, [1, 2, 3, 4])
    assert out.shape == (6, 8)
    np.testing.assert_array_equal(out, fir_delays(x))
    # column (d-1)*2 + j = feature j shifted down by d rows, zeros on top
    np.testing.assert_array_equal(out[:, 2 * 1 + 1], [0, 0, 2, 4, 6, 8])  # d = 2, j = 1
    np.testing.assert_array_equal(out[:4, 6], 0)
    np.testing.assert_array_equal(out[4:, 6], [1, 3])
