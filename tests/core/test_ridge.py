"""berg_core.fit.ridge against independent references: sklearn Ridge, a brute-force CV loop, HuthLab's
formula, himalaya's banded ridge, sklearn's PCA."""

import numpy as np
import pytest

from berg_core.errors import BergError, InvalidParameterError
from berg_core.fit.ridge import PCA, BandedRidgeCV, RidgeCV, make_folds, parse_reduce, select_alphas

sklearn = pytest.importorskip("sklearn")
from sklearn.linear_model import Ridge  # noqa: E402

ALPHAS = np.logspace(-3, 5, 17)


def problem(n, p, t, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)) * (1.0 / np.sqrt(1 + np.arange(p) / 4)) + 3.0  # offset: intercept matters
    W = rng.standard_normal((p, t)) / np.sqrt(p)
    snr = np.logspace(-1, 1, t)
    Y = X @ W * snr + rng.standard_normal((n, t)) + np.arange(t)
    return X, Y


def brute_force_scores(X, Y, alphas, folds, scoring):
    """Mean over folds of each target's validation score, one sklearn Ridge fit per (fold, alpha)."""
    scores = np.zeros((len(alphas), Y.shape[1]))
    for tr, va in folds:
        for i, a in enumerate(alphas):
            pred = Ridge(alpha=a).fit(X[tr], Y[tr]).predict(X[va])
            if scoring == "correlation":
                s = [np.corrcoef(pred[:, j], Y[va, j])[0, 1] for j in range(Y.shape[1])]
            else:
                s = 1 - ((Y[va] - pred) ** 2).sum(0) / ((Y[va] - Y[va].mean(0)) ** 2).sum(0)
            scores[i] += np.asarray(s) / len(folds)
    return scores


def clear_winners(scores, margin=1e-7):
    """Targets whose best alpha beats every other by more than ``margin`` (no near-ties)."""
    top2 = np.sort(scores, axis=0)[-2:]
    return top2[1] - top2[0] > margin


# (n, p): primal with scores from AᵀA (rank < n_val) and from explicit predictions (rank ≥ n_val),
# kernel form (p > n_train)
SHAPES = [(200, 12), (90, 40), (60, 150)]


@pytest.mark.parametrize("n,p", SHAPES)
@pytest.mark.parametrize("scoring", ["correlation", "r2"])
def test_cv_scores_and_alphas_equal_brute_force(n, p, scoring):
    X, Y = problem(n, p, 25)
    model = RidgeCV(ALPHAS, cv=4, scoring=scoring).fit(X, Y)
    ref = brute_force_scores(X, Y, ALPHAS, make_folds(n, 4), scoring)
    np.testing.assert_allclose(model.cv_scores_, ref, atol=1e-9)
    clear = clear_winners(ref)
    assert clear.sum() >= 20
    np.testing.assert_array_equal(model.best_alphas_[clear], ALPHAS[ref.argmax(0)][clear])
    np.testing.assert_allclose(model.cv_score_, ref.max(0), atol=1e-9)


@pytest.mark.parametrize("n,p", SHAPES)
def test_coef_equal_sklearn_ridge_at_selected_alphas(n, p):
    X, Y = problem(n, p, 25, seed=1)
    model = RidgeCV(ALPHAS, cv=5).fit(X, Y)
    assert model.coef_.shape == (p, 25) and model.intercept_.shape == (25,)
    assert len(np.unique(model.best_alphas_)) > 3  # the test covers several alphas
    for j in range(25):
        ref = Ridge(alpha=model.best_alphas_[j]).fit(X, Y[:, j])
        np.testing.assert_allclose(model.coef_[:, j], ref.coef_, atol=1e-6)
        assert abs(model.intercept_[j] - ref.intercept_) < 1e-6
    Xt = problem(30, p, 1, seed=9)[0]
    ref_pred = np.column_stack([Ridge(alpha=a).fit(X, Y[:, j]).predict(Xt) for j, a in enumerate(model.best_alphas_)])
    np.testing.assert_allclose(model.predict(Xt), ref_pred, atol=1e-6)


def test_solvers_chosen_by_shape():
    X, Y = problem(60, 150, 3)
    assert RidgeCV(ALPHAS, cv=3).fit(X, Y).solver_ == "kernel"
    X, Y = problem(200, 12, 3)
    assert RidgeCV(ALPHAS, cv=3).fit(X, Y).solver_ == "primal"


def test_grouped_cv_is_leave_one_group_out():
    X, Y = problem(120, 10, 8, seed=2)
    groups = np.repeat([3, 1, 2, 0], 30)[np.random.default_rng(0).permutation(120)]
    model = RidgeCV(ALPHAS, cv=10).fit(X, Y, groups=groups)  # groups override cv
    folds = [(np.flatnonzero(groups != g), np.flatnonzero(groups == g)) for g in range(4)]
    np.testing.assert_allclose(model.cv_scores_, brute_force_scores(X, Y, ALPHAS, folds, "correlation"), atol=1e-9)


def test_kfold_matches_sklearn_kfold():
    from sklearn.model_selection import KFold

    for n, k in [(23, 5), (40, 4)]:
        ours = make_folds(n, k)
        for (tr, va), (tr2, va2) in zip(ours, KFold(k).split(np.zeros(n))):
            np.testing.assert_array_equal(tr, tr2)
            np.testing.assert_array_equal(va, va2)


def test_explicit_splits_and_splitter_object():
    from sklearn.model_selection import KFold

    X, Y = problem(80, 6, 4)
    a = RidgeCV(ALPHAS, cv=KFold(4, shuffle=True, random_state=0)).fit(X, Y)
    b = RidgeCV(ALPHAS, cv=list(KFold(4, shuffle=True, random_state=0).split(X))).fit(X, Y)
    np.testing.assert_allclose(a.cv_scores_, b.cv_scores_)


def test_huth_convention_penalty_is_alpha_squared():
    X, Y = problem(100, 30, 10, seed=3)
    huth = RidgeCV(np.sqrt(ALPHAS), cv=4, alpha_convention="huth").fit(X, Y)
    skl = RidgeCV(ALPHAS, cv=4, alpha_convention="sklearn").fit(X, Y)
    np.testing.assert_allclose(huth.cv_scores_, skl.cv_scores_, atol=1e-12)
    np.testing.assert_allclose(huth.best_alphas_ ** 2, skl.best_alphas_, rtol=1e-12)
    np.testing.assert_allclose(huth.coef_, skl.coef_, atol=1e-10)
    # HuthLab's formula (no intercept): W = V diag(s/(s² + α²)) Uᵀ Y
    noint = RidgeCV(np.sqrt(ALPHAS), cv=4, alpha_convention="huth", fit_intercept=False).fit(X, Y)
    U, s, Vt = np.linalg.svd(X, full_matrices=False)
    for j in range(10):
        a = noint.best_alphas_[j]
        w = Vt.T @ np.diag(s / (s**2 + a**2)) @ U.T @ Y[:, j]
        np.testing.assert_allclose(noint.coef_[:, j], w, atol=1e-8)
        np.testing.assert_allclose(noint.coef_[:, j], Ridge(alpha=a**2, fit_intercept=False).fit(X, Y[:, j]).coef_, atol=1e-8)
    assert np.all(noint.intercept_ == 0)


def test_ties_go_to_the_larger_alpha():
    scores = np.array([[0.5, 0.1, 0.0], [0.5, 0.3, 0.0], [0.2, 0.3, 0.0]])
    np.testing.assert_array_equal(select_alphas(scores), [1, 2, 2])
    assert select_alphas(np.array([[np.nan], [0.1], [np.nan]]))[0] == 1
    X, Y = problem(60, 5, 2)
    Y[:, 1] = 7.0  # a constant target scores 0 for every alpha
    model = RidgeCV(ALPHAS, cv=3).fit(X, Y)
    assert model.best_alphas_[1] == ALPHAS.max()
    np.testing.assert_allclose(model.coef_[:, 1], 0, atol=1e-12)
    np.testing.assert_allclose(model.predict(X)[:, 1], 7.0)


def test_alphas_sorted_internally():
    X, Y = problem(80, 8, 6)
    a = RidgeCV(ALPHAS[::-1], cv=4).fit(X, Y)
    b = RidgeCV(ALPHAS, cv=4).fit(X, Y)
    np.testing.assert_array_equal(a.alphas_, ALPHAS)
    np.testing.assert_array_equal(a.best_alphas_, b.best_alphas_)


@pytest.mark.parametrize("n,p", SHAPES)
def test_target_batches_do_not_change_results(n, p):
    X, Y = problem(n, p, 11, seed=4)
    a = RidgeCV(ALPHAS, cv=3, target_batch=3).fit(X, Y)
    b = RidgeCV(ALPHAS, cv=3, target_batch=1000).fit(X, Y)
    np.testing.assert_allclose(a.cv_scores_, b.cv_scores_, atol=1e-12)
    np.testing.assert_allclose(a.coef_, b.coef_, atol=1e-12)


@pytest.mark.parametrize("n,p", SHAPES)
def test_torch_backend_equals_numpy(n, p):
    pytest.importorskip("torch")
    X, Y = problem(n, p, 9, seed=5)
    a = RidgeCV(ALPHAS, cv=3, backend="torch", device="cpu").fit(X, Y)
    b = RidgeCV(ALPHAS, cv=3).fit(X, Y)
    np.testing.assert_allclose(a.cv_scores_, b.cv_scores_, atol=1e-10)
    np.testing.assert_allclose(a.coef_, b.coef_, atol=1e-8)
    np.testing.assert_array_equal(a.best_alphas_, b.best_alphas_)


def test_float32_is_close_to_float64():
    X, Y = problem(300, 20, 10, seed=6)
    a = RidgeCV(ALPHAS, cv=3).fit(X.astype(np.float32), Y.astype(np.float32))
    assert a.coef_.dtype == np.float32
    ref = RidgeCV(ALPHAS, cv=3).fit(X, Y)
    same = a.best_alphas_ == ref.best_alphas_
    assert same.mean() >= 0.8
    np.testing.assert_allclose(a.coef_[:, same], ref.coef_[:, same], atol=2e-4)


def test_single_target_vector():
    X, Y = problem(50, 4, 1)
    m = RidgeCV(ALPHAS, cv=5).fit(X, Y[:, 0])
    assert m.coef_.shape == (4,) and np.ndim(m.best_alphas_) == 0
    np.testing.assert_allclose(m.coef_, Ridge(alpha=float(m.best_alphas_)).fit(X, Y[:, 0]).coef_, atol=1e-8)


def test_sklearn_clone_and_params():
    from sklearn.base import clone

    m = RidgeCV(ALPHAS, cv=3, scoring="r2")
    c = clone(m)
    assert c.get_params()["scoring"] == "r2" and c is not m
    assert m.set_params(cv=4).cv == 4
    with pytest.raises(InvalidParameterError, match="unknown parameter"):
        m.set_params(folds=3)


def test_score_per_target():
    from berg_core.fit.stats import pearson_r

    X, Y = problem(100, 6, 5)
    m = RidgeCV(ALPHAS, cv=4).fit(X[:80], Y[:80])
    np.testing.assert_allclose(m.score(X[80:], Y[80:]), pearson_r(Y[80:], m.predict(X[80:])))


def test_errors_are_clear():
    X, Y = problem(40, 5, 3)
    with pytest.raises(InvalidParameterError, match="samples"):
        RidgeCV(ALPHAS).fit(X, Y[:30])
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(InvalidParameterError, match="NaN"):
        RidgeCV(ALPHAS).fit(bad, Y)
    with pytest.raises(InvalidParameterError, match="too few samples per fold"):
        RidgeCV(ALPHAS, cv=25).fit(X, Y)
    with pytest.raises(InvalidParameterError, match="too few samples per fold"):
        RidgeCV(ALPHAS).fit(X, Y, groups=np.r_[np.zeros(39), 1])
    with pytest.raises(InvalidParameterError, match="backend"):
        RidgeCV(ALPHAS, backend="jax").fit(X, Y)
    with pytest.raises(InvalidParameterError, match="scoring"):
        RidgeCV(ALPHAS, scoring="mse").fit(X, Y)
    with pytest.raises(InvalidParameterError, match="alpha_convention"):
        RidgeCV(ALPHAS, alpha_convention="glmnet").fit(X, Y)
    with pytest.raises(InvalidParameterError, match="alphas"):
        RidgeCV([-1.0]).fit(X, Y)
    with pytest.raises(BergError, match="not fitted"):
        RidgeCV().predict(X)


# ---------------------------------------------------------------------------------------------- banded


def spaces(n, sizes, t, seed=0):
    rng = np.random.default_rng(seed)
    Xs = [rng.standard_normal((n, k)) + 1.0 for k in sizes]
    Y = sum(x @ rng.standard_normal((x.shape[1], t)) * w for x, w in zip(Xs, [1.0, 0.1, 0.0][: len(Xs)])) + rng.standard_normal((n, t))
    return Xs, Y


@pytest.mark.parametrize("solver,n,sizes", [("primal", 120, (6, 4)), ("kernel", 40, (30, 25))])
def test_banded_ridge_matches_himalaya(solver, n, sizes):
    pytest.importorskip("himalaya")
    from himalaya.kernel_ridge import MultipleKernelRidgeCV
    from himalaya.ridge import BandedRidgeCV as HBanded
    from himalaya.scoring import correlation_score

    Xs, Y = spaces(n, sizes, 7)
    alphas = np.logspace(-2, 4, 7)
    ours = BandedRidgeCV(alphas, n_iter=12, cv=4, random_state=3, solver=solver).fit(Xs, Y)
    assert ours.solver_ == solver
    folds = make_folds(n, 4)
    Xc = [x - x.mean(0) for x in Xs]
    Yc = Y - Y.mean(0)
    params = dict(n_iter=12, concentration=[0.1, 1.0], alphas=alphas, score_func=correlation_score, progress_bar=False)
    if solver == "primal":
        ref = HBanded(groups="input", solver_params=params, cv=folds, random_state=3).fit(Xc, Yc)
        ref_coef = np.asarray(ref.coef_)
    else:
        params["diagonalize_method"] = "eigh"
        ref = MultipleKernelRidgeCV(kernels="precomputed", solver_params=params, cv=folds, random_state=3).fit(np.stack([x @ x.T for x in Xc]), Yc)
        w = np.exp(np.asarray(ref.deltas_))
        ref_coef = np.concatenate([x.T @ np.asarray(ref.dual_coef_) * w[i] for i, x in enumerate(Xc)])
    np.testing.assert_allclose(ours.deltas_, np.asarray(ref.deltas_), atol=1e-10)
    np.testing.assert_allclose(ours.coef_, ref_coef, atol=1e-8)
    np.testing.assert_allclose(ours.cv_scores_, np.asarray(ref.cv_scores_), atol=1e-10)
    # predictions: per-space parts sum (with the intercept) to the prediction of the raw features
    parts = ours.predict(Xs, split=True)
    assert parts.shape == (len(sizes), n, 7)
    np.testing.assert_allclose(parts.sum(0) + Y.mean(0), ours.predict(Xs), atol=1e-10)
    np.testing.assert_allclose(ours.predict(Xs), np.concatenate(Xs, 1) @ ours.coef_ + ours.intercept_, atol=1e-10)
    split = ours.score(Xs, Y, split=True)
    np.testing.assert_allclose(split.sum(0), ours.score(Xs, Y), atol=1e-10)


def test_banded_ridge_errors():
    pytest.importorskip("himalaya")
    Xs, Y = spaces(30, (3, 2), 2)
    with pytest.raises(InvalidParameterError, match="list of feature spaces"):
        BandedRidgeCV().fit(np.zeros((30, 5)), Y)
    with pytest.raises(InvalidParameterError, match="samples"):
        BandedRidgeCV().fit([Xs[0], Xs[1][:20]], Y)
    with pytest.raises(InvalidParameterError, match="backend"):
        BandedRidgeCV(backend="jax").fit(Xs, Y)


# ---------------------------------------------------------------------------------------------- PCA


@pytest.mark.parametrize("n,d", [(200, 10), (15, 40)])
def test_pca_matches_sklearn_up_to_sign(n, d):
    from sklearn.decomposition import PCA as SkPCA

    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) + 5
    ours = PCA(4).fit(X)
    ref = SkPCA(4, svd_solver="full").fit(X)
    signs = np.sign((ours.components_ * ref.components_).sum(1))
    np.testing.assert_allclose(ours.components_, ref.components_ * signs[:, None], atol=1e-8)
    np.testing.assert_allclose(ours.explained_variance_, ref.explained_variance_, rtol=1e-8)
    Xt = rng.standard_normal((7, d))
    np.testing.assert_allclose(ours.transform(Xt), ref.transform(Xt) * signs, atol=1e-8)


def test_pca_fit_on_training_rows_only():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((100, 6))
    X[80:] += 50  # test rows far away: they must not move the training mean
    pca = PCA(2).fit(X[:80])
    np.testing.assert_allclose(pca.mean_, X[:80].mean(0))


def test_parse_reduce():
    assert parse_reduce(None) is None and parse_reduce("none") is None
    assert parse_reduce("pca:64") == 64
    for bad in ("pca", "pca:0", "srp:5", "pca:x"):
        with pytest.raises(InvalidParameterError):
            parse_reduce(bad)
    with pytest.raises(InvalidParameterError, match="components"):
        PCA(20).fit(np.zeros((10, 5)))


# ------------------------------------------------------------------ dtype= and a single alpha (issue 9 item 10)


@pytest.mark.parametrize("n,p", SHAPES)
@pytest.mark.parametrize("alphas,convention,penalty", [([10.0], "sklearn", 10.0), (3.0, "huth", 9.0), ([0.5], "sklearn", 0.5)])
def test_single_alpha_grid_equals_sklearn_ridge(n, p, alphas, convention, penalty):
    X, Y = problem(n, p, 6, seed=4)
    m = RidgeCV(alphas, cv=3, alpha_convention=convention).fit(X, Y)
    assert m.cv_scores_.shape == (1, 6) and np.all(m.best_alphas_ == np.ravel(alphas)[0])
    np.testing.assert_array_equal(m.cv_score_, m.cv_scores_[0])
    ref = Ridge(alpha=penalty).fit(X, Y)
    np.testing.assert_allclose(m.coef_, ref.coef_.T, atol=1e-8)
    np.testing.assert_allclose(m.intercept_, ref.intercept_, atol=1e-8)
    np.testing.assert_allclose(m.cv_scores_, brute_force_scores(X, Y, [penalty], make_folds(n, 3), "correlation"), atol=1e-9)


def test_zero_alpha_alone_is_least_squares():
    X, Y = problem(200, 12, 3, seed=2)
    m = RidgeCV([0.0], cv=4).fit(X, Y)
    from sklearn.linear_model import LinearRegression

    ref = LinearRegression().fit(X, Y)
    np.testing.assert_allclose(m.coef_, ref.coef_.T, atol=1e-8)
    np.testing.assert_allclose(m.intercept_, ref.intercept_, atol=1e-8)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_dtype_option_sets_the_compute_dtype(backend):
    if backend == "torch":
        pytest.importorskip("torch")
    X, Y = problem(150, 10, 4, seed=8)
    alphas = [0.1, 10.0, 1000.0]
    # float64 data computed in float32: float32 results, close to sklearn on the same data
    lo = RidgeCV(alphas, cv=3, dtype="float32", backend=backend, device="cpu").fit(X, Y)
    assert lo.coef_.dtype == np.float32 and lo.intercept_.dtype == np.float32 and lo.predict(X).dtype == np.float64
    hi = RidgeCV(alphas, cv=3, dtype=np.float64, backend=backend, device="cpu").fit(X, Y)
    assert hi.coef_.dtype == np.float64
    same = lo.best_alphas_ == hi.best_alphas_
    assert same.sum() >= 3
    for j in np.flatnonzero(same):
        ref = Ridge(alpha=hi.best_alphas_[j]).fit(X, Y[:, j])
        np.testing.assert_allclose(hi.coef_[:, j], ref.coef_, atol=1e-8)
        np.testing.assert_allclose(lo.coef_[:, j], ref.coef_, atol=5e-4, rtol=1e-3)
    # float32 data computed in float64: equal to sklearn (float64) on the float32 values, not float32-rounded results
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    up = RidgeCV([10.0], cv=3, dtype="float64", backend=backend, device="cpu").fit(X32, Y32)
    assert up.coef_.dtype == np.float64
    ref = Ridge(alpha=10.0).fit(X32.astype(np.float64), Y32.astype(np.float64))
    np.testing.assert_allclose(up.coef_, ref.coef_.T, atol=1e-9)
    default = RidgeCV([10.0], cv=3, backend=backend, device="cpu").fit(X32, Y32)
    assert default.coef_.dtype == np.float32  # default: the input's dtype
    assert np.abs(default.coef_ - ref.coef_.T).max() > 1e-9  # so float64 above really computed in float64


@pytest.mark.parametrize("bad", ["float16", np.int32, "complex128", "nonsense"])
def test_dtype_option_refuses_other_dtypes(bad):
    X, Y = problem(40, 5, 2)
    with pytest.raises(InvalidParameterError, match="dtype"):
        RidgeCV([1.0], dtype=bad).fit(X, Y)
