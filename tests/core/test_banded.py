"""The native banded ridge (berg_core.fit.banded) against himalaya's random search on the same draws."""

import numpy as np
import pytest

from berg_core.errors import InvalidParameterError
from berg_core.fit.banded import dirichlet_draws
from berg_core.fit.ridge import BandedRidgeCV

pytest.importorskip("himalaya")


def spaces(n, sizes, t, seed=0):
    rng = np.random.default_rng(seed)
    Xs = [rng.standard_normal((n, s)) * (1 + k) + k for k, s in enumerate(sizes)]
    Y = sum(x @ rng.standard_normal((x.shape[1], t)) * (0.3 * (k + 1)) for k, x in enumerate(Xs)) + 2 * rng.standard_normal((n, t))
    return Xs, Y + 5.0


@pytest.mark.parametrize("n_iter,conc", [(7, (0.1, 1.0)), (5, 1.0), (4, (0.5, np.inf, 2.0))])
def test_dirichlet_draws_are_himalayas(n_iter, conc):
    from himalaya.kernel_ridge import generate_dirichlet_samples

    ref = np.asarray(generate_dirichlet_samples(n_iter, 3, concentration=list(np.atleast_1d(conc)), random_state=11))
    ref[0] = 1 / 3  # himalaya's random search replaces the first draw with the uniform one
    np.testing.assert_allclose(dirichlet_draws(n_iter, 3, conc, 11), ref, rtol=0, atol=1e-15)


@pytest.mark.parametrize("solver,n,sizes", [("primal", 90, (4, 6, 3)), ("kernel", 40, (30, 25))])
@pytest.mark.parametrize("scoring", ["correlation", "r2"])
def test_native_equals_himalaya_engine(solver, n, sizes, scoring):
    """float64, grouped folds, target batches: the same deltas, CV scores, alphas and weights (1e-5)."""
    Xs, Y = spaces(n, sizes, 9, seed=3)
    groups = np.repeat(np.arange(5), n // 5 + 1)[:n]
    kw = dict(alphas=np.logspace(-2, 5, 15), n_iter=10, solver=solver, scoring=scoring, random_state=5, target_batch=4)
    ours = BandedRidgeCV(**kw).fit(Xs, Y, groups=groups)
    ref = BandedRidgeCV(**kw, engine="himalaya").fit(Xs, Y, groups=groups)
    assert ours.solver_ == ref.solver_ == solver
    np.testing.assert_allclose(ours.cv_scores_, ref.cv_scores_, rtol=0, atol=1e-5)
    np.testing.assert_allclose(ours.deltas_, ref.deltas_, rtol=0, atol=1e-5)
    np.testing.assert_allclose(ours.best_alphas_, ref.best_alphas_, rtol=1e-5)
    scale = np.abs(ref.coef_).max()
    np.testing.assert_allclose(ours.coef_ / scale, ref.coef_ / scale, rtol=0, atol=1e-5)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, rtol=0, atol=1e-5 * np.abs(Y).max())
    np.testing.assert_allclose(ours.predict(Xs), ref.predict(Xs), rtol=0, atol=1e-5 * np.abs(Y).max())


@pytest.mark.parametrize("solver,n,sizes", [("primal", 90, (4, 6, 3)), ("kernel", 40, (30, 25))])
def test_native_float32_as_accurate_as_himalaya(solver, n, sizes):
    """float32 input: both engines against the float64 fit; the native one within float32 noise (1e-3)."""
    Xs, Y = spaces(n, sizes, 9, seed=3)
    kw = dict(alphas=np.logspace(-2, 5, 15), n_iter=10, solver=solver, random_state=5)
    truth = BandedRidgeCV(**kw, engine="himalaya").fit(Xs, Y)
    X32, Y32 = [x.astype(np.float32) for x in Xs], Y.astype(np.float32)
    ours = BandedRidgeCV(**kw).fit(X32, Y32)
    ref = BandedRidgeCV(**kw, engine="himalaya").fit(X32, Y32)
    assert ours.coef_.dtype == np.float32
    scale = np.abs(truth.coef_).max()
    for fit in (ours, ref):
        np.testing.assert_allclose(fit.cv_scores_, truth.cv_scores_, rtol=0, atol=1e-3)
        np.testing.assert_allclose(fit.coef_ / scale, truth.coef_ / scale, rtol=0, atol=1e-3)


def test_native_torch_backend_equals_numpy():
    pytest.importorskip("torch")
    Xs, Y = spaces(60, (3, 5), 4, seed=1)
    kw = dict(alphas=np.logspace(-1, 3, 9), n_iter=6, random_state=0)
    on_numpy = BandedRidgeCV(**kw).fit(Xs, Y)
    on_torch = BandedRidgeCV(**kw, backend="torch", device="cpu").fit(Xs, Y)
    assert on_torch.backend_ == "torch"
    np.testing.assert_allclose(on_torch.coef_, on_numpy.coef_, atol=1e-10)
    np.testing.assert_allclose(on_torch.cv_scores_, on_numpy.cv_scores_, atol=1e-10)


def test_engine_checked():
    Xs, Y = spaces(30, (2, 2), 2)
    with pytest.raises(InvalidParameterError, match="engine"):
        BandedRidgeCV(engine="fast").fit(Xs, Y)
    with pytest.raises(InvalidParameterError, match="n_iter"):
        BandedRidgeCV(n_iter=0).fit(Xs, Y)
