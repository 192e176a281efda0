"""berg_core.fit.stats against hand computations, scipy/himalaya, and simulations with known answers."""

import numpy as np
import pytest

from berg_core.errors import InvalidParameterError
from berg_core.fit.stats import (
    block_permutation,
    block_permutation_test,
    cc_norm,
    fdr_bh,
    noise_ceiling,
    pearson_r,
    permutation_null,
    permutation_pvalues,
    r2_score,
    split_correlation,
)


def test_pearson_r_equals_numpy_corrcoef():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((50, 4)), rng.standard_normal((50, 4))
    b[:, 0] += 3 * a[:, 0]
    expected = [np.corrcoef(a[:, j], b[:, j])[0, 1] for j in range(4)]
    np.testing.assert_allclose(pearson_r(a, b), expected, atol=1e-12)
    const = np.ones((50, 1))
    assert pearson_r(a[:, :1], const)[0] == 0.0
    with pytest.raises(InvalidParameterError):
        pearson_r(a, b[:, :2])


def test_r2_equals_sklearn():
    from sklearn.metrics import r2_score as sk_r2

    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((30, 3)), rng.standard_normal((30, 3))
    np.testing.assert_allclose(r2_score(a, a + 0.3 * b), sk_r2(a, a + 0.3 * b, multioutput="raw_values"), atol=1e-12)


def test_fdr_bh_on_a_hand_computed_vector():
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.20, 0.50])
    # sorted: 0.005 0.01 0.03 0.04 0.20 0.50; m = 6; m·p/rank = 0.03 0.03 0.06 0.06 0.24 0.50
    # running minimum from the top: 0.03 0.03 0.06 0.06 0.24 0.50
    expected = np.array([0.03, 0.06, 0.06, 0.03, 0.24, 0.50])
    np.testing.assert_allclose(fdr_bh(p), expected, atol=1e-15)
    assert list(fdr_bh(p) <= 0.05) == [True, False, False, True, False, False]


def test_fdr_bh_monotone_cap_and_nan():
    p = np.array([0.9, np.nan, 0.95, 0.001])
    adj = fdr_bh(p)
    assert np.isnan(adj[1])
    # m = 3 finite: sorted 0.001 0.9 0.95 -> 0.003, 1.35, 0.95 -> min from top: 0.003, 0.95, 0.95
    np.testing.assert_allclose(adj[[3, 0, 2]], [0.003, 0.95, 0.95])
    with pytest.raises(InvalidParameterError):
        fdr_bh(np.array([1.5]))


def test_fdr_bh_equals_scipy():
    from scipy.stats import false_discovery_control

    p = np.random.default_rng(2).uniform(size=200) ** 3
    np.testing.assert_allclose(fdr_bh(p), false_discovery_control(p, method="bh"), atol=1e-14)


def test_block_permutation_keeps_blocks_contiguous():
    order = block_permutation(25, 10, np.random.default_rng(0))
    assert sorted(order) == list(range(25))
    starts = {0, 10, 20}
    pos = 0
    # walk the output: each block is a run of consecutive indices starting at a block start
    while pos < 25:
        s = order[pos]
        assert s in starts
        length = 5 if s == 20 else 10
        np.testing.assert_array_equal(order[pos:pos + length], np.arange(s, s + length))
        pos += length


def test_per_voxel_pvalues_formula_against_a_loop():
    rng = np.random.default_rng(3)
    y = rng.standard_normal((60, 3))
    pred = y + rng.standard_normal((60, 3)) * np.array([0.2, 3.0, 100.0])
    r, p = block_permutation_test(y, pred, n_permutations=99, block=6, mode="voxel", seed=7)
    # independent re-computation with the same generator sequence
    g = np.random.default_rng(7)
    null = []
    for _ in range(99):  # one block order per permutation, shared by all voxels
        order = block_permutation(60, 6, g)
        null.append([np.corrcoef(y[:, j], pred[order, j])[0, 1] for j in range(3)])
    null = np.array(null)
    k = (null >= r).sum(0)
    np.testing.assert_allclose(p, (k + 1) / 100)
    assert p[0] == pytest.approx(0.01)  # strong signal beats every permutation
    np.testing.assert_allclose(permutation_null(y, pred, n_permutations=99, block=6, seed=7), null, atol=1e-12)


def test_pooled_pvalues_use_all_voxels_null():
    null = np.array([[0.1, 0.2], [0.3, -0.1]])
    r = np.array([0.25, 0.05])
    # pooled values: -0.1 0.1 0.2 0.3; >= 0.25: 1 ; >= 0.05: 3
    np.testing.assert_allclose(permutation_pvalues(r, null, mode="pooled"), [(1 + 1) / 5, (3 + 1) / 5])
    np.testing.assert_allclose(permutation_pvalues(r, null, mode="voxel"), [(1 + 1) / 3, (1 + 1) / 3])
    with pytest.raises(InvalidParameterError):
        permutation_pvalues(r, null, mode="both")


def test_null_voxels_have_roughly_uniform_pvalues():
    rng = np.random.default_rng(4)
    y = rng.standard_normal((100, 400))
    pred = rng.standard_normal((100, 400))
    _, p = block_permutation_test(y, pred, n_permutations=200, block=10, mode="pooled", seed=1)
    assert 0.4 < p.mean() < 0.6
    assert (p < 0.05).mean() < 0.1
    assert (fdr_bh(p) < 0.05).sum() <= 4


def test_permutation_errors():
    y = np.zeros((15, 2))
    with pytest.raises(InvalidParameterError, match="2 blocks"):
        permutation_null(y, y, block=10)
    with pytest.raises(InvalidParameterError):
        permutation_null(y, y, n_permutations=0, block=2)


def test_noise_ceiling_recovers_known_signal_power():
    rng = np.random.default_rng(5)
    n_rep, n_t, n_vox = 10, 3000, 6
    sig_sd = np.array([1.0, 0.5, 2.0, 0.3, 1.0, 0.0])
    noise_sd = np.array([1.0, 1.0, 1.0, 1.0, 3.0, 1.0])
    signal = rng.standard_normal((n_t, n_vox)) * sig_sd
    repeats = signal[None] + rng.standard_normal((n_rep, n_t, n_vox)) * noise_sd
    nc = noise_ceiling(repeats)
    np.testing.assert_allclose(nc.signal_power[:5], sig_sd[:5] ** 2, rtol=0.1)
    np.testing.assert_allclose(nc.response_power, sig_sd**2 + noise_sd**2, rtol=0.05)
    # CCmax = corr(true signal, mean of N repeats) = sqrt(S / (S + N_noise / N))
    expected = np.sqrt(sig_sd[:5] ** 2 / (sig_sd[:5] ** 2 + noise_sd[:5] ** 2 / n_rep))
    np.testing.assert_allclose(nc.ccmax[:5], expected, atol=0.02)
    # the empirical correlation between the signal and the repeat mean agrees too
    emp = pearson_r(signal[:, :5], repeats.mean(0)[:, :5])
    np.testing.assert_allclose(nc.ccmax[:5], emp, atol=0.02)
    # no signal: SP ≈ 0 (floored when its estimate is negative), CCmax small; BERG's floor lifts it to 0.25
    assert nc.signal_power[5] < 0.01 and nc.ccmax[5] < 0.2
    assert noise_ceiling(repeats, floor=0.25).ccmax[5] == 0.25


def test_noise_ceiling_drop_first_and_errors():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 100, 2))
    a = noise_ceiling(x, drop_first=40)
    b = noise_ceiling(x[:, 40:])
    np.testing.assert_allclose(a.ccmax, b.ccmax)
    neg = np.stack([x[0], -x[0]])  # anti-correlated repeats: SP estimate negative -> floored
    nc = noise_ceiling(neg)
    assert np.all(nc.signal_power == 1e-10) and np.all(nc.ccmax < 1e-3)
    with pytest.raises(InvalidParameterError):
        noise_ceiling(x[:1])
    with pytest.raises(InvalidParameterError):
        noise_ceiling(np.zeros(5))


def test_cc_norm():
    np.testing.assert_allclose(cc_norm(np.array([0.2, 0.1]), np.array([0.5, 0.25])), [0.4, 0.4])
    with pytest.raises(InvalidParameterError):
        cc_norm(np.array([0.1]), np.array([0.0]))


def test_split_correlation_equals_himalaya_and_sums_to_joint():
    pytest.importorskip("himalaya")
    from himalaya.scoring import correlation_score_split

    rng = np.random.default_rng(8)
    parts = rng.standard_normal((3, 40, 5))
    y = parts.sum(0) + rng.standard_normal((40, 5))
    ours = split_correlation(y, parts)
    np.testing.assert_allclose(ours, np.asarray(correlation_score_split(y, parts)), atol=1e-10)
    np.testing.assert_allclose(ours.sum(0), pearson_r(y, parts.sum(0)), atol=1e-12)
