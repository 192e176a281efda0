"""berg_core.fit.ridge's estimators as scikit-learn estimators (issue 10 item 5): sklearn's own estimator
checks, pipelines and cross-validation compared with sklearn's Ridge/PCA, the documented backend seam,
``BandedRidgeCV(device=)``, and no sklearn import by the core.

Every check of ``check_estimator`` passes, so no expected failures are declared. Checks that need an
optional package skip themselves through sklearn (``check_array_api_input`` without array-api-strict and
``SCIPY_ARRAY_API``, the pandas part of ``check_regressor_data_not_an_array`` without pandas); pytest
reports them as skipped.
"""

import subprocess
import sys
import warnings

import numpy as np
import pytest

from berg_core.errors import BergError, InvalidParameterError
from berg_core.fit.ridge import PCA, ArrayOps, BandedRidgeCV, NotFittedError, RidgeCV, _ops, himalaya_backend

sklearn = pytest.importorskip("sklearn", minversion="1.6")  # __sklearn_tags__ is read from 1.6 on
from sklearn.base import clone  # noqa: E402
from sklearn.decomposition import PCA as SkPCA  # noqa: E402
from sklearn.linear_model import Ridge  # noqa: E402
from sklearn.metrics import r2_score  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score, cross_validate  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

ALPHAS = [0.1, 1.0, 10.0, 100.0]


def regression(n=90, p=8, t=None, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)) * np.linspace(0.5, 3.0, p) + 4.0
    W = rng.standard_normal((p,) if t is None else (p, t))
    return X, X @ W + 3.0 * rng.standard_normal((n,) if t is None else (n, t)) + 1.5


# ---------------------------------------------------------------------------------- check_estimator

# small grids and few iterations: the whole set of checks runs in about two seconds
ESTIMATORS = [
    RidgeCV([0.1, 1.0, 10.0], cv=3),
    RidgeCV([1.0], cv=3, scoring="r2", fit_intercept=False, backend="torch", device="cpu"),
    BandedRidgeCV([0.1, 1.0, 10.0], spaces=2, n_iter=4, cv=3),
    BandedRidgeCV([1.0, 10.0], spaces=1, n_iter=2, cv=3, scoring="r2"),
    PCA(),
    PCA(2),
]


with warnings.catch_warnings():
    # sklearn warns that the classes do not inherit BaseEstimator: deliberate, sklearn is optional
    warnings.filterwarnings("ignore", message=".*does not inherit from `sklearn.base.BaseEstimator`")
    CHECKS = parametrize_with_checks(ESTIMATORS)


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # himalaya's r2 on constant folds of sklearn's data
@CHECKS
def test_sklearn_estimator_checks(estimator, check):
    if "torch" in repr(estimator):
        pytest.importorskip("torch")
    if isinstance(estimator, BandedRidgeCV):
        pytest.importorskip("himalaya")
    check(estimator)


def test_sklearn_sees_the_declared_kinds():
    from sklearn.base import is_regressor
    from sklearn.utils import get_tags

    assert is_regressor(RidgeCV()) and is_regressor(BandedRidgeCV(spaces=2)) and not is_regressor(PCA())
    assert get_tags(RidgeCV()).target_tags.multi_output and get_tags(PCA()).transformer_tags is not None


# ---------------------------------------------------------------------------------- pipelines + CV


def test_pipeline_cross_val_score_equals_sklearn_ridge_single_alpha():
    X, y = regression()
    ours = cross_val_score(make_pipeline(StandardScaler(), RidgeCV([7.0], cv=3, scoring="r2")), X, y, cv=KFold(5))
    ref = cross_val_score(make_pipeline(StandardScaler(), Ridge(alpha=7.0)), X, y, cv=KFold(5))
    assert ours.shape == (5,) and np.all(np.isfinite(ours))
    np.testing.assert_allclose(ours, ref, atol=1e-10)
    # several targets: one number per fold through sklearn's r2 scorer (uniform average over targets)
    X, Y = regression(t=4, seed=1)
    ours = cross_val_score(make_pipeline(StandardScaler(), RidgeCV([7.0], cv=3)), X, Y, cv=KFold(4), scoring="r2")
    ref = cross_val_score(make_pipeline(StandardScaler(), Ridge(alpha=7.0)), X, Y, cv=KFold(4), scoring="r2")
    np.testing.assert_allclose(ours, ref, atol=1e-10)


def test_nested_cv_alpha_search_equals_sklearn_grid_search():
    """Inner CV over the grid (contiguous 3 folds, mean R²) inside an outer cross_val_score: the same
    numbers as sklearn's GridSearchCV over Ridge's alpha."""
    X, y = regression(n=120, p=30, seed=2)
    alphas = np.logspace(-2, 4, 13)
    ours = make_pipeline(StandardScaler(), RidgeCV(alphas, cv=3, scoring="r2"))
    ref = make_pipeline(StandardScaler(), GridSearchCV(Ridge(), {"alpha": alphas}, cv=KFold(3), scoring="r2"))
    res = cross_validate(ours, X, y, cv=KFold(4), return_estimator=True)
    ref_res = cross_validate(ref, X, y, cv=KFold(4), return_estimator=True)
    chosen = [est[-1].best_alphas_ for est in res["estimator"]]
    assert chosen == [est[-1].best_params_["alpha"] for est in ref_res["estimator"]]
    assert alphas[0] < min(chosen) and max(chosen) < alphas[-1]  # interior alphas, not the grid's edges
    np.testing.assert_allclose(res["test_score"], ref_res["test_score"], atol=1e-10)


def test_pca_in_a_pipeline_equals_sklearn_pca():
    X, Y = regression(n=80, p=12, t=3, seed=3)
    ours = cross_val_score(make_pipeline(PCA(4), RidgeCV([2.0], cv=3)), X, Y, cv=KFold(4), scoring="r2")
    ref = cross_val_score(make_pipeline(SkPCA(4, svd_solver="full"), Ridge(alpha=2.0)), X, Y, cv=KFold(4), scoring="r2")
    np.testing.assert_allclose(ours, ref, atol=1e-9)  # component signs differ; ridge predictions do not


def test_banded_ridge_with_one_space_in_a_pipeline_equals_sklearn_ridge():
    pytest.importorskip("himalaya")
    X, y = regression(seed=4)
    banded = BandedRidgeCV([5.0], spaces=1, n_iter=1, cv=3, scoring="r2")
    ours = cross_val_score(make_pipeline(StandardScaler(), banded), X, y, cv=KFold(3))
    ref = cross_val_score(make_pipeline(StandardScaler(), Ridge(alpha=5.0)), X, y, cv=KFold(3))
    np.testing.assert_allclose(ours, ref, atol=1e-9)


def test_banded_ridge_spaces_in_a_pipeline_equal_ridge_on_reweighted_spaces():
    """With the space weights it chose, banded ridge is Ridge(alpha=1) on each space scaled by exp(δ_i/2)
    (penalty Σ exp(−δ_i)·|w_i|²): each outer fold's score equals that sklearn Ridge's."""
    pytest.importorskip("himalaya")
    X, Y = regression(n=100, p=9, t=3, seed=5)
    X[:, 6:] *= 0.1  # a weak third space
    pipe = make_pipeline(StandardScaler(), BandedRidgeCV(np.logspace(-1, 3, 5), spaces=[4, 2, 3], n_iter=10, cv=3))
    res = cross_validate(pipe, X, Y, cv=KFold(4), scoring="r2", return_estimator=True)
    for (train, test), fitted, score in zip(KFold(4).split(X), res["estimator"], res["test_score"]):
        scaler, banded = fitted
        assert banded.n_features_in_ == 9 and len(banded.coefs_) == 3
        preds = []
        for j in range(3):  # one target at a time: each has its own space weights
            scale = np.repeat(np.exp(banded.deltas_[:, j] / 2), [4, 2, 3])
            ref = Ridge(alpha=1.0).fit(scaler.transform(X[train]) * scale, Y[train, j])
            np.testing.assert_allclose(banded.coef_[:, j], ref.coef_ * scale, atol=1e-6)
            preds.append(ref.predict(scaler.transform(X[test]) * scale))
        np.testing.assert_allclose(score, r2_score(Y[test], np.column_stack(preds)), atol=1e-8)


def test_banded_ridge_2d_x_with_spaces_equals_the_list_form():
    pytest.importorskip("himalaya")
    X, Y = regression(n=70, p=7, t=2, seed=6)
    a = BandedRidgeCV(ALPHAS, spaces=[3, 4], n_iter=6, cv=3).fit(X, Y)
    b = BandedRidgeCV(ALPHAS, n_iter=6, cv=3).fit([X[:, :3], X[:, 3:]], Y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    np.testing.assert_array_equal(a.predict(X), b.predict([X[:, :3], X[:, 3:]]))
    assert [s.stop - s.start for s in BandedRidgeCV(spaces=3).fit(X, Y).slices_] == [3, 2, 2]  # np.array_split widths
    for spaces, match in [([3, 3], "summing to the 7"), (8, r"7 feature\(s\)"), (0, "spaces must be >= 1"), ("ab", "widths")]:
        with pytest.raises(InvalidParameterError, match=match):
            BandedRidgeCV(spaces=spaces).fit(X, Y)
    with pytest.raises(InvalidParameterError, match="expected 2 feature spaces"):
        b.predict([X])


def test_score_is_a_float_for_one_target_and_per_target_for_several():
    X, Y = regression(t=3, seed=7)
    m = RidgeCV(ALPHAS, cv=3, scoring="r2").fit(X, Y[:, 0])
    s = m.score(X, Y[:, 0])
    assert isinstance(s, float)
    np.testing.assert_allclose(s, r2_score(Y[:, 0], m.predict(X)))
    assert RidgeCV(ALPHAS, cv=3).fit(X, Y).score(X, Y).shape == (3,)


def test_clone_keeps_parameters_unchanged_and_drops_the_fit():
    grid = np.array([1.0, 2.0])
    m = BandedRidgeCV(grid, spaces=[2, 3], backend="torch", device="cpu", n_iter=3)
    c = clone(m)
    assert c is not m and c.get_params()["spaces"] == [2, 3] and c.device == "cpu" and c.backend == "torch"
    np.testing.assert_array_equal(c.alphas, grid)
    assert RidgeCV().get_params()["alphas"] is None and PCA().n_components is None  # stored as given
    p = PCA(-3)  # bad values are stored, and refused by fit (sklearn's rule), one line
    with pytest.raises(InvalidParameterError, match="n_components >= 1"):
        p.fit(np.ones((5, 2)))


def test_not_fitted_is_a_berg_error_and_sklearns():
    from sklearn.exceptions import NotFittedError as SkNotFitted
    from sklearn.utils.validation import check_is_fitted

    for est, method in [(RidgeCV(), "predict"), (BandedRidgeCV(spaces=2), "predict"), (PCA(2), "transform")]:
        with pytest.raises(NotFittedError, match="not fitted yet") as info:
            getattr(est, method)(np.ones((3, 4)))
        for cls in (BergError, ValueError, AttributeError, SkNotFitted):
            assert isinstance(info.value, cls)
        with pytest.raises(SkNotFitted):
            check_is_fitted(est)
    X, y = regression()
    check_is_fitted(RidgeCV(ALPHAS).fit(X, y))


def test_bad_input_is_one_line_value_error():
    X, y = regression(n=30, p=4)
    m = RidgeCV(ALPHAS, cv=3).fit(X, y)
    cases = [
        (lambda: m.predict(X[:, :2]), "X has 2 features, but RidgeCV is expecting 4 features as input"),
        (lambda: m.predict(X[0]), "Reshape your data"),
        (lambda: RidgeCV().fit(X.astype(complex), y), "Complex data not supported"),
        (lambda: RidgeCV().fit(X, None), "requires y to be passed"),
        (lambda: RidgeCV().fit(X[:1], y[:1]), r"1 sample\(s\)"),
        (lambda: PCA().fit(np.ones((4, 0))), r"0 feature\(s\)"),
    ]
    for call, match in cases:
        with pytest.raises(InvalidParameterError, match=match) as info:
            call()
        assert isinstance(info.value, ValueError) and "\n" not in str(info.value)
    bad = X.astype(object)
    bad[0, 0] = {"a": 1}
    with pytest.raises(InvalidParameterError, match="must hold numbers only") as info:
        RidgeCV().fit(bad, y)
    assert isinstance(info.value, TypeError)  # as numpy raises it


# ---------------------------------------------------------------------------------- backend seam + device


def test_backends_implement_the_protocol():
    assert isinstance(_ops("numpy", np.dtype(np.float64), None), ArrayOps)
    pytest.importorskip("torch")
    ops = _ops("torch", np.dtype(np.float32), "cpu")
    assert isinstance(ops, ArrayOps) and ops.device == "cpu"
    mask = ops.asarray([1.0, 0.0, 2.0]) > 0.5
    np.testing.assert_array_equal(ops.numpy(ops.nonzero(mask)), [0, 2])


@pytest.fixture
def cuda_everywhere(monkeypatch):
    """A machine where torch reports CUDA (nothing runs on it: the tests check what was chosen)."""
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    return torch


def test_banded_ridge_device_cpu_stays_on_cpu_when_cuda_exists(cuda_everywhere):
    pytest.importorskip("himalaya")
    assert himalaya_backend("torch", "cpu") == ("torch", "cpu")
    assert himalaya_backend("torch", None) == ("torch_cuda", "cuda:0")  # auto (the default): CUDA when there
    assert himalaya_backend("torch", "cuda") == ("torch_cuda", "cuda:0")
    assert himalaya_backend("numpy", None) == ("numpy", None)
    X, Y = regression(n=60, p=6, t=2, seed=8)
    on_cpu = BandedRidgeCV(ALPHAS, spaces=2, n_iter=4, cv=3, backend="torch", device="cpu").fit(X, Y)
    assert on_cpu.backend_ == "torch"
    numpy = BandedRidgeCV(ALPHAS, spaces=2, n_iter=4, cv=3).fit(X, Y)
    assert numpy.backend_ == "numpy"
    np.testing.assert_allclose(on_cpu.coef_, numpy.coef_, atol=1e-8)


def test_ridge_device_cpu_stays_on_cpu_when_cuda_exists(cuda_everywhere):
    assert _ops("torch", np.dtype(np.float64), "cpu").device == "cpu"
    assert _ops("torch", np.dtype(np.float64), None).device == "cuda:0"


def test_device_errors_are_one_line():
    with pytest.raises(InvalidParameterError, match="numpy backend runs on the CPU"):
        himalaya_backend("numpy", "cuda")
    with pytest.raises(InvalidParameterError, match="unknown backend"):
        himalaya_backend("jax", None)
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        X, Y = regression(n=40, p=4, t=2)
        with pytest.raises(InvalidParameterError, match="CUDA is not available"):
            BandedRidgeCV(spaces=2, backend="torch", device="cuda").fit(X, Y)


# ---------------------------------------------------------------------------------- sklearn stays optional


def test_the_core_estimators_never_import_sklearn():
    code = (
        "import sys, numpy as np\n"
        "from berg_core.fit.ridge import PCA, RidgeCV\n"
        "rng = np.random.default_rng(0); X = rng.standard_normal((40, 5)); y = X @ np.ones(5)\n"
        "m = RidgeCV([1.0], cv=4).fit(X, y); m.predict(X); m.score(X, y); PCA(2).fit_transform(X)\n"
        "try:\n    RidgeCV().predict(X)\nexcept ValueError:\n    pass\n"
        "print(sorted({k.split('.')[0] for k in sys.modules} & {'sklearn', 'torch', 'himalaya'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_berg_train_banded_with_device_cpu_stays_on_cpu_when_cuda_exists(tmp_path, cuda_everywhere):
    """``berg train --backend torch --device cpu`` with two feature spaces: banded ridge on the CPU
    (it used to take himalaya's torch_cuda whenever torch reported CUDA)."""
    pytest.importorskip("himalaya")
    pytest.importorskip("matplotlib")
    from berg_core.fit.train import TrainConfig, train

    X, Y = regression(n=60, p=6, t=3, seed=9)
    np.save(tmp_path / "F.npy", X[:, :4])
    np.save(tmp_path / "G.npy", X[:, 4:])
    np.save(tmp_path / "Y.npy", Y)
    res = train(TrainConfig(features=[str(tmp_path / "F.npy"), str(tmp_path / "G.npy")], responses=str(tmp_path / "Y.npy"),
                            out=str(tmp_path / "o"), test="48:60", folds=3, alphas=ALPHAS, n_iter=3, permutations=10,
                            perm_block=2, backend="torch", device="cpu"))
    ref = BandedRidgeCV(ALPHAS, n_iter=3, cv=3, scoring="r2").fit([X[:48, :4], X[:48, 4:]], Y[:48])  # numpy backend; r2: berg train's default
    np.testing.assert_allclose(res.coef, ref.coef_, atol=1e-6)
