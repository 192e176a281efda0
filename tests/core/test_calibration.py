"""Training statistics on simulated data with known truth: permutation p-values uniform under the null
(automatic block), FDR control on a known mixture, and alpha selection near the Bayes-optimal penalty."""

import warnings

import numpy as np
import pytest

from berg_core.fit.stats import (
    PermutationBlockWarning,
    auto_block,
    block_permutation_test,
    correlation_length,
    fdr_bh,
    permutation_block,
)

stats = pytest.importorskip("scipy.stats")


def ar1(phi, n, v, rng):
    """(n, v) stationary AR(1) noise with coefficient phi (unit innovations; 200 samples of burn-in)."""
    from scipy.signal import lfilter

    return lfilter([1.0], [1.0, -phi], rng.standard_normal((n + 200, v)), axis=0)[200:]


@pytest.mark.parametrize("phi", [0.0, 0.5, 0.9])
def test_pvalues_uniform_under_null_with_automatic_block(phi):
    """Responses and predictions independent, both AR(phi): the defaults (block from the data, per-voxel
    null) give uniform p-values (KS) and a 5 % test that rejects about 5 % of voxels."""
    rng = np.random.default_rng(2024)
    y, pred = ar1(phi, 1200, 300, rng), ar1(phi, 1200, 300, rng)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PermutationBlockWarning)  # the automatic block fits this test set
        _, p = block_permutation_test(y, pred, n_permutations=200, seed=3)
    assert stats.kstest(p, "uniform").pvalue > 0.01
    assert np.mean(p < 0.05) < 0.08


def test_short_given_block_warns_and_is_liberal():
    """The failure the automatic block fixes: AR(0.9) with a block of 5 rejects far more than 5 % of null voxels."""
    rng = np.random.default_rng(7)
    y, pred = ar1(0.9, 1200, 300, rng), ar1(0.9, 1200, 300, rng)
    with pytest.warns(PermutationBlockWarning, match="shorter than the residuals' correlation length"):
        _, p = block_permutation_test(y, pred, n_permutations=200, block=5, seed=3)
    assert np.mean(p < 0.05) > 0.1
    assert stats.kstest(p, "uniform").pvalue < 0.01


def test_correlation_length_and_block_follow_the_autocorrelation():
    rng = np.random.default_rng(1)
    white, smooth = rng.standard_normal((1000, 100)), ar1(0.9, 1000, 100, rng)
    assert correlation_length(white) <= 2
    thr = 0.0632  # max(0.05, 2/sqrt(1000))
    assert 0.7 * np.log(thr) / np.log(0.9) <= correlation_length(smooth) <= 1.6 * np.log(thr) / np.log(0.9)
    assert auto_block(white) <= 6
    assert 60 <= auto_block(smooth) <= 125
    with pytest.warns(PermutationBlockWarning, match="longer test set"):  # 200 samples allow blocks of 25 only
        assert auto_block(smooth[:200]) == 25
    assert permutation_block(white, np.zeros_like(white), 4) == 4  # a given block is kept


def test_per_voxel_mode_calibrated_when_voxels_differ_pooled_is_not():
    """Half the voxels white, half AR(0.9): per voxel each half rejects about 5 %; the pooled null is too
    conservative for the white half and too liberal for the smooth one (why pooled is not the default)."""
    rng = np.random.default_rng(11)
    y = np.concatenate([rng.standard_normal((1200, 200)), ar1(0.9, 1200, 200, rng)], axis=1)
    pred = np.concatenate([rng.standard_normal((1200, 200)), ar1(0.9, 1200, 200, rng)], axis=1)
    _, p_voxel = block_permutation_test(y, pred, n_permutations=200, seed=5)
    _, p_pooled = block_permutation_test(y, pred, n_permutations=200, seed=5, mode="pooled")
    for half in (slice(0, 200), slice(200, 400)):
        assert stats.kstest(p_voxel[half], "uniform").pvalue > 0.01
    assert np.mean(p_pooled[:200] < 0.05) < 0.02
    assert np.mean(p_pooled[200:] < 0.05) > 0.08


def test_fdr_controls_false_discovery_proportion_on_known_mixture():
    """2,000 voxels with AR(0.5) noise, 400 with a true signal (r about 0.3): BH at q = 0.05 on the
    per-voxel permutation p-values keeps the false discovery proportion below q and finds the signals."""
    rng = np.random.default_rng(3)
    n, m, k = 400, 2000, 400
    noise = ar1(0.5, n, m, rng)
    signal = ar1(0.5, n, m, rng)
    truth = np.zeros(m, dtype=bool)
    truth[rng.choice(m, k, replace=False)] = True
    y = noise + np.where(truth, 0.33, 0.0) * signal
    pred = np.where(truth, 1.0, 0.0) * signal + np.where(truth, 0.0, 1.0) * ar1(0.5, n, m, rng)
    _, p = block_permutation_test(y, pred, n_permutations=999, seed=1)
    found = fdr_bh(p) <= 0.05
    fdp = (found & ~truth).sum() / max(found.sum(), 1)
    assert fdp <= 0.05
    assert (found & truth).sum() >= 0.9 * k


def bayes_problem(n=2000, p=50, v=300, seed=0):
    """y = X w + e with w ~ N(0, τ_v² I), e ~ N(0, 1): the Bayes-optimal ridge penalty is λ_v = 1/τ_v²,
    spread uniformly over 10^-0.5 … 10^3.5."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    log_lam = rng.uniform(-0.5, 3.5, v)
    W = rng.standard_normal((p, v)) / np.sqrt(10**log_lam)
    return X, X @ W + rng.standard_normal((n, v)), log_lam


ALPHAS = np.logspace(-3, 6, 37)  # four per decade


def test_alpha_by_r2_lands_near_the_optimal_penalty():
    from berg_core.fit.ridge import RidgeCV

    X, Y, log_lam = bayes_problem()
    near = {s: np.abs(np.log10(RidgeCV(ALPHAS, cv=5, scoring=s).fit(X, Y).best_alphas_) - log_lam) <= 0.5 for s in ("r2", "correlation")}
    assert near["r2"].mean() >= 0.85
    assert near["correlation"].mean() < 0.5  # the correlation ignores the predictions' scale


def test_berg_train_picks_alphas_by_r2_by_default(tmp_path):
    from berg_core.fit.train import TrainConfig, train

    X, Y, log_lam = bayes_problem(v=120, seed=1)
    np.save(tmp_path / "F.npy", X)
    np.save(tmp_path / "Y.npy", Y)
    train(TrainConfig(features=[str(tmp_path / "F.npy")], responses=str(tmp_path / "Y.npy"), out=str(tmp_path / "o"), alphas=list(ALPHAS),
                      permutations=0))
    chosen = np.load(tmp_path / "o" / "alphas_raw.npy")
    assert np.mean(np.abs(np.log10(chosen) - log_lam) <= 0.5) >= 0.85
