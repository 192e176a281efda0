"""Ridge regression for encoding models: ``RidgeCV`` (one alpha per target), banded ridge, PCA.

``RidgeCV`` minimises, per target ``t``, ``||y_t − X w_t − b_t||² + λ_t ||w_t||²`` with ``λ_t`` picked by
K-fold or grouped cross-validation from a grid. ``alpha_convention="sklearn"``: ``λ = α`` (sklearn's
``Ridge(alpha=α)``, himalaya); ``"huth"``: ``λ = α²`` (HuthLab's ridge_utils, whose weights are
``V diag(s/(s²+α²)) Uᵀ Y``).

Algorithm (per fold, features centred on the training rows when ``fit_intercept``):

1. factor once: the eigendecomposition of the smaller Gram matrix, ``XᵀX = V E Vᵀ`` (p ≤ n) or
   ``XXᵀ = U E Uᵀ`` (p > n, kernel form); eigenvalues below ``10·eps·max(E)`` are dropped (numerically
   zero directions). The full-data Gram is computed once and each fold's is derived from it.
2. project the training targets once: ``C = Vᵀ Xᵀ Y`` (primal) or ``C = Uᵀ Y`` (kernel), (rank, targets).
3. per alpha only a diagonal rescale and one GEMM: validation predictions are ``A diag(1/(E+λ)) C`` with
   ``A = X_val V`` (primal) or ``A = K_val,train U`` (kernel). When the rank is smaller than the number
   of validation rows the scores are computed from ``AᵀA`` (rank × rank) instead of the predictions
   (an r × r × targets GEMM rather than n_val × r × targets).
4. score per target (Pearson correlation or R²), averaged over folds; best alpha per target, ties →
   the larger alpha.
5. refit on all rows with two GEMMs: ``W = V (C / (E + λ_t))`` (primal) or ``W = Xᵀ U (C / (E + λ_t))``.

Targets go in batches of ``target_batch`` columns, so memory is bounded by the factorizations plus
one batch. The same code runs on numpy or torch tensors (``backend="torch"``, CPU or CUDA).

``coef_`` layout: (n_features, n_targets), rows in the column order of ``X`` (with several feature
spaces concatenated, space after space; with FIR delays, delay-major inside each space), as in
himalaya; sklearn's ``Ridge.coef_`` is its transpose.

The three estimators follow scikit-learn's conventions without importing it: ``__init__`` stores
its arguments unchanged (``get_params``/``set_params``/``clone`` work), fitted attributes end with
``_``, ``n_features_in_`` is set by ``fit``, bad input is a one-line ``InvalidParameterError`` (a
``ValueError``), and ``__sklearn_tags__`` declares them to sklearn, so they pass
``sklearn.utils.estimator_checks.check_estimator`` and work in ``make_pipeline``/``cross_val_score``
(tests/core/test_ridge_sklearn.py runs every check; none is excused).

sklearn and himalaya are imported inside functions only (``pip install berg-core[train]``).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import numpy as np

from berg_core.console import progress_bar
from berg_core.errors import BergError, InvalidParameterError

#: drama2brain's grid: 25 alphas 10^-12 … 10^12
DEFAULT_ALPHAS: np.ndarray = np.logspace(-12, 12, 25)

Scoring = Literal["correlation", "r2"]
Folds = list[tuple[np.ndarray, np.ndarray]]


# ------------------------------------------------------------------------------------------------
# cross-validation folds
# ------------------------------------------------------------------------------------------------
def make_folds(n_samples: int, cv: int | Iterable[tuple[Any, Any]] | Any = 5, groups: Sequence[Any] | np.ndarray | None = None) -> Folds:
    """(train, validation) index pairs.

    ``groups`` given: one fold per distinct label (leave-one-group-out, e.g. one fold per run), in
    sorted label order. Else ``cv`` = K: K contiguous folds without shuffling (sklearn ``KFold``);
    or an iterable of (train, val) pairs; or an object with ``split(X)`` (a sklearn splitter).
    Every validation fold needs at least 2 rows and every training fold at least 2.
    """
    if groups is not None:
        groups = np.asarray(groups)
        if groups.ndim != 1 or len(groups) != n_samples:
            raise InvalidParameterError(f"CV groups must be one label per sample ({n_samples}), got shape {groups.shape}")
        labels = np.unique(groups)
        if len(labels) < 2:
            raise InvalidParameterError(f"CV groups need at least 2 distinct labels, got {len(labels)}")
        folds = [(np.flatnonzero(groups != g), np.flatnonzero(groups == g)) for g in labels]
    elif isinstance(cv, (int, np.integer)):
        k = int(cv)
        if k < 2:
            raise InvalidParameterError(f"need at least 2 CV folds, got {k}")
        if n_samples < 2 * k:
            raise InvalidParameterError(f"too few samples per fold: {n_samples} samples for {k} folds (need at least 2 per fold)")
        # sklearn KFold sizes: the first n % k folds get one extra row
        sizes = np.full(k, n_samples // k)
        sizes[: n_samples % k] += 1
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        idx = np.arange(n_samples)
        folds = [(np.concatenate([idx[: bounds[i]], idx[bounds[i + 1] :]]), idx[bounds[i] : bounds[i + 1]]) for i in range(k)]
    else:
        split = getattr(cv, "split", None)
        pairs = split(np.zeros((n_samples, 1))) if callable(split) else cv
        folds = [(np.asarray(tr, dtype=np.intp), np.asarray(va, dtype=np.intp)) for tr, va in pairs]
        if not folds:
            raise InvalidParameterError("the CV splitter produced no folds")
    for i, (tr, va) in enumerate(folds):
        if len(va) < 2 or len(tr) < 2:
            raise InvalidParameterError(
                f"too few samples per fold: fold {i} has {len(tr)} training and {len(va)} validation rows (need at least 2 each)"
            )
    return folds


# ------------------------------------------------------------------------------------------------
# array backends: the seam between the ridge algorithm and numpy / torch
# ------------------------------------------------------------------------------------------------
@runtime_checkable
class ArrayOps(Protocol):
    """What ``RidgeCV``'s algorithm needs from an array library: the ridge backend seam.

    Arrays are the backend's own type (``np.ndarray`` for ``"numpy"``, ``torch.Tensor`` for ``"torch"``),
    all in one compute dtype (float32 or float64) and, for torch, on one device. Beyond these
    operations the algorithm uses only what both types share: ``@``, ``.T``, ``[rows]``/``[:, cols]``
    indexing with the output of ``index``/``nonzero``, ``.sum(axis)``, ``.mean(axis)``, ``.shape`` and
    broadcasting arithmetic. A new backend (e.g. cupy) implements this Protocol and a branch in ``_ops``.
    """

    name: str  #: ``"numpy"`` or ``"torch"``
    eps: float  #: machine epsilon of the compute dtype (sets the rank cut-off of ``eigh``)

    def asarray(self, x: Any) -> Any:
        """``x`` (any array-like) as a backend array in the compute dtype, on the backend's device."""
        ...

    def index(self, idx: np.ndarray) -> Any:
        """Integer row indices (k,) from numpy, usable to index backend arrays."""
        ...

    def nonzero(self, mask: Any) -> Any:
        """Indices (k,) where the boolean backend vector ``mask`` is true."""
        ...

    def numpy(self, x: Any) -> np.ndarray:
        """A backend array copied back to a numpy array on the CPU (same dtype)."""
        ...

    def eigh(self, a: Any) -> tuple[Any, Any]:
        """Eigenvalues (m,), ascending, and eigenvectors (m, m) (columns) of a symmetric (m, m) matrix."""
        ...

    def sqrt(self, x: Any) -> Any:
        """Element-wise square root."""
        ...

    def maximum0(self, x: Any) -> Any:
        """Element-wise ``max(x, 0)``."""
        ...

    def colsum_prod(self, a: Any, b: Any) -> Any:
        """Column sums of the element-wise product: (k, m), (k, m) -> (m,)."""
        ...


class _NumpyOps:
    """``ArrayOps`` on numpy arrays (LAPACK ``evd`` eigensolver through scipy)."""

    name = "numpy"

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = np.dtype(dtype)
        self.eps = float(np.finfo(self.dtype).eps)

    def asarray(self, x: Any) -> np.ndarray:
        return np.ascontiguousarray(x, dtype=self.dtype)

    def index(self, idx: np.ndarray) -> np.ndarray:
        return idx

    def nonzero(self, mask: Any) -> np.ndarray:
        return np.flatnonzero(mask)

    def numpy(self, x: Any) -> np.ndarray:
        return np.asarray(x)

    def eigh(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from scipy.linalg import eigh

        e, v = eigh(a, overwrite_a=True, check_finite=False, driver="evd")
        return e, v

    def sqrt(self, x: Any) -> Any:
        return np.sqrt(x)

    def maximum0(self, x: Any) -> Any:
        return np.maximum(x, 0)

    def colsum_prod(self, a: Any, b: Any) -> Any:
        return np.einsum("ij,ij->j", a, b)


class _TorchOps:
    """``ArrayOps`` on torch tensors on one device (``"cpu"``, ``"cuda:N"``, ``"mps"``)."""

    name = "torch"

    def __init__(self, dtype: np.dtype, device: str) -> None:
        import torch

        self.torch = torch
        self.np_dtype = np.dtype(dtype)
        self.dtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[self.np_dtype]
        self.device = device
        self.eps = float(np.finfo(self.np_dtype).eps)

    def asarray(self, x: Any) -> Any:
        if isinstance(x, self.torch.Tensor):
            return x.to(device=self.device, dtype=self.dtype)
        arr = np.ascontiguousarray(x)
        if not arr.flags.writeable:  # torch wants writable memory (a read-only memmap, say)
            arr = arr.copy()
        return self.torch.as_tensor(arr, dtype=self.dtype, device=self.device)

    def index(self, idx: np.ndarray) -> Any:
        return self.torch.as_tensor(idx, dtype=self.torch.long, device=self.device)

    def nonzero(self, mask: Any) -> Any:
        return self.torch.nonzero(mask).flatten()

    def numpy(self, x: Any) -> np.ndarray:
        return x.detach().cpu().numpy() if isinstance(x, self.torch.Tensor) else np.asarray(x)

    def eigh(self, a: Any) -> tuple[Any, Any]:
        e, v = self.torch.linalg.eigh(a)
        return e, v

    def sqrt(self, x: Any) -> Any:
        return self.torch.sqrt(x)

    def maximum0(self, x: Any) -> Any:
        return self.torch.clamp(x, min=0)

    def colsum_prod(self, a: Any, b: Any) -> Any:
        return (a * b).sum(0)


def _torch_device(backend: str, device: str | None) -> str | None:
    """The torch device string for ``backend="torch"`` (``resolve_device``: ``None`` means ``"auto"``);
    ``None`` for ``"numpy"``, which runs on the CPU only."""
    if backend == "numpy":
        if device not in (None, "cpu"):
            raise InvalidParameterError(f"the numpy backend runs on the CPU; use backend='torch' for device {device!r}")
        return None
    if backend == "torch":
        try:
            import torch  # noqa: F401
        except ImportError as exc:
            raise InvalidParameterError("backend 'torch' needs torch: pip install torch (or use backend='numpy')") from exc
        from berg_core.device import resolve_device

        return resolve_device(device or "auto")
    raise InvalidParameterError(f"unknown backend {backend!r}; use 'numpy' or 'torch'")


def _ops(backend: str, dtype: np.dtype, device: str | None) -> ArrayOps:
    torch_device = _torch_device(backend, device)
    return _NumpyOps(dtype) if torch_device is None else _TorchOps(dtype, torch_device)


# ------------------------------------------------------------------------------------------------
# scikit-learn conventions, without sklearn
# ------------------------------------------------------------------------------------------------
class NotFittedError(BergError, ValueError, AttributeError):
    """An estimator was used before ``fit`` (a ``ValueError`` and ``AttributeError``, as sklearn's).

    When sklearn is already imported, the instance raised is also a
    ``sklearn.exceptions.NotFittedError``, so sklearn's own code recognises it.
    """


@functools.cache
def _with_sklearn_not_fitted(sklearn_error: type) -> type[NotFittedError]:
    cls = type("NotFittedError", (NotFittedError, sklearn_error), {"__module__": __name__, "__doc__": NotFittedError.__doc__})
    assert issubclass(cls, NotFittedError)
    return cls


def _not_fitted(estimator: Any, how: str) -> NotFittedError:
    cls = NotFittedError
    sklearn_exceptions = sys.modules.get("sklearn.exceptions")  # never imported here: sklearn is optional
    if sklearn_exceptions is not None:
        cls = _with_sklearn_not_fitted(sklearn_exceptions.NotFittedError)
    return cls(f"this {type(estimator).__name__} is not fitted yet; call {how} first")


class NonNumericInputError(InvalidParameterError, TypeError):
    """An input array holds values that are not numbers (also a ``TypeError``, as numpy raises)."""


def _dense_array(X: Any, what: str, owner: str) -> np.ndarray:
    """``X`` as a dense numpy array, object and bool arrays converted to float64 (sparse or non-numeric: one line)."""
    if hasattr(X, "tocsr") or hasattr(X, "toarray"):
        raise InvalidParameterError(f"{what} is a sparse matrix; {owner} takes dense arrays: pass {what}.toarray()")
    try:
        arr = np.asarray(X)
        return arr.astype(np.float64) if arr.dtype == object or arr.dtype == bool else arr
    except (TypeError, ValueError) as exc:
        raise NonNumericInputError(f"{what} must hold numbers only: {exc}") from None


def _check_matrix(X: Any, what: str, owner: str, min_samples: int = 1, n_features: int | None = None) -> np.ndarray:
    """``X`` as a finite real 2-D numpy array (n_samples, n_features): numeric dtypes kept as they
    are, object and bool arrays converted to float64. One-line ``InvalidParameterError`` otherwise
    (messages worded so sklearn's estimator checks recognise them).

    ``n_features``: the width seen by ``fit`` (checked when not ``None``).
    """
    if X is None:
        raise InvalidParameterError(f"{owner} requires {what} to be passed, but {what} is None")
    arr = _dense_array(X, what, owner)
    if np.iscomplexobj(arr):
        raise InvalidParameterError(f"{what} is complex: Complex data not supported; pass real numbers")
    if not np.issubdtype(arr.dtype, np.number):
        raise NonNumericInputError(f"{what} must be numeric, got dtype {arr.dtype}")
    if arr.ndim == 1:
        raise InvalidParameterError(
            f"{what} must be 2-D (n_samples, n_features), got a 1-D array of shape {arr.shape}; Reshape your data: "
            f"{what}.reshape(-1, 1) for one feature or {what}.reshape(1, -1) for one sample"
        )
    if arr.ndim != 2:
        raise InvalidParameterError(f"{what} must be 2-D (n_samples, n_features), got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise InvalidParameterError(f"{what} has 0 feature(s) (shape={arr.shape}) while a minimum of 1 is required.")
    if arr.shape[0] < min_samples:
        raise InvalidParameterError(
            f"{what} has {arr.shape[0]} sample(s) (shape={arr.shape}) while a minimum of {min_samples} is required; pass more rows"
        )
    if n_features is not None and arr.shape[1] != n_features:
        raise InvalidParameterError(f"{what} has {arr.shape[1]} features, but {owner} is expecting {n_features} features as input")
    if not np.all(np.isfinite(arr)):
        raise InvalidParameterError(f"{what} contains NaN or inf; clean or impute it first")
    return arr


def _check_targets(Y: Any, owner: str, n_samples: int) -> tuple[np.ndarray, bool]:
    """Targets as a finite real (n_samples, n_targets) array, and whether they came 1-D (n_samples,)."""
    if Y is None:
        raise InvalidParameterError(f"{owner} requires y to be passed, but the target y is None")
    Y = _dense_array(Y, "Y", owner)
    if np.iscomplexobj(Y) or not np.issubdtype(Y.dtype, np.number):
        raise NonNumericInputError(f"Y must hold real numbers, got dtype {Y.dtype}")
    ravel = Y.ndim == 1
    if ravel:
        Y = Y[:, None]
    if Y.ndim != 2 or Y.shape[1] == 0:
        raise InvalidParameterError(f"Y must be (n_samples,) or (n_samples, n_targets) with at least one target; got shape {Y.shape}")
    if Y.shape[0] != n_samples:
        raise InvalidParameterError(f"X has {n_samples} samples but Y has {Y.shape[0]}; they must match")
    if not np.all(np.isfinite(Y)):
        raise InvalidParameterError("Y contains NaN or inf; clean or impute it first")
    return Y, ravel


class _Estimator:
    """sklearn's estimator protocol without sklearn: ``get_params``/``set_params`` over the
    constructor's arguments (so ``sklearn.base.clone`` works), ``__sklearn_is_fitted__`` and
    ``__sklearn_tags__`` (read by sklearn >= 1.6, which is imported only when sklearn asks)."""

    _kind: ClassVar[Literal["regressor", "transformer"]]
    _fitted_attribute: ClassVar[str]
    _fit_call: ClassVar[str]

    @classmethod
    def _param_names(cls) -> list[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor arguments, as stored (no nested estimators, so ``deep`` changes nothing)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Any:
        """Set constructor arguments (checked when ``fit`` runs, as sklearn); returns ``self``."""
        valid = self._param_names()
        for key, value in params.items():
            if key not in valid:
                raise InvalidParameterError(f"unknown parameter {key!r} for {type(self).__name__}; valid: {', '.join(valid)}")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_params().items() if k != 'alphas')})"

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, self._fitted_attribute)

    def _check_fitted(self) -> None:
        if not self.__sklearn_is_fitted__():
            raise _not_fitted(self, self._fit_call)

    def __sklearn_tags__(self) -> Any:
        """sklearn's tags: a regressor (one or several targets, y required) or a transformer; dense input."""
        from sklearn.utils import RegressorTags, Tags, TargetTags, TransformerTags

        regressor = self._kind == "regressor"
        return Tags(
            estimator_type=self._kind,
            target_tags=TargetTags(required=regressor, single_output=True, multi_output=regressor),
            regressor_tags=RegressorTags() if regressor else None,
            transformer_tags=None if regressor else TransformerTags(),
        )


class _Regressor(_Estimator):
    """What RidgeCV and BandedRidgeCV share as scikit-learn estimators: fitted ``coef_`` by ``fit(X, y)``."""

    _kind = "regressor"
    _fitted_attribute = "coef_"
    _fit_call = "fit(X, y)"


# ------------------------------------------------------------------------------------------------
# the factor-once ridge
# ------------------------------------------------------------------------------------------------
@dataclass
class _Factor:
    """One fold's factorization: eigenvalues ``e`` (r,), ``basis`` (V (p, r) or U (n_train, r)), ``A``."""

    kind: str  # "primal" | "kernel"
    e: Any
    basis: Any
    train: Any
    val: Any
    A: Any = None  # (n_val, r) validation design in the eigenbasis
    gram: Any = None  # AᵀA (r, r) when r < n_val
    asum: Any = None  # Aᵀ1 (r,)
    Xv: Any = None  # primal: validation rows (n_val, p)
    mu: Any = None  # primal: training-row feature mean (p,)


def _keep(ops: ArrayOps, e: Any, basis: Any) -> tuple[Any, Any]:
    """Drop eigenvalues below 10·eps·max(e) (numerically zero or negative)."""
    emax = float(e.max()) if e.shape[0] else 0.0
    idx = ops.nonzero(e > 10.0 * ops.eps * max(emax, 0.0))
    return e[idx], basis[:, idx]


def _center_kernel(Ktt: Any, Kvt: Any | None, center: bool) -> tuple[Any, Any | None]:
    """Kernels of train-mean-centred features from uncentred ones (see module docstring)."""
    if not center:
        return Ktt, Kvt
    col = Ktt.mean(0)
    tot = col.mean()
    Ktt_c = Ktt - Ktt.mean(1)[:, None] - col[None, :] + tot
    Kvt_c = None if Kvt is None else Kvt - Kvt.mean(1)[:, None] - col[None, :] + tot
    return Ktt_c, Kvt_c


def _factor_fold(ops: ArrayOps, X: Any, G: Any, train: np.ndarray, val: np.ndarray, kind: str, center: bool) -> _Factor:
    """Factor the training rows once. ``G`` is XᵀX (primal) or XXᵀ (kernel) of all rows."""
    tr, va = ops.index(train), ops.index(val)
    if kind == "primal":
        Xv = X[va]
        Gtr = G - Xv.T @ Xv
        mu = None
        if center:
            mu = X[tr].mean(0)
            Gtr = Gtr - len(train) * (mu[:, None] * mu[None, :])
        e, V = ops.eigh((Gtr + Gtr.T) / 2)
        e, V = _keep(ops, e, V)
        A = Xv @ V if mu is None else (Xv - mu[None, :]) @ V
        f = _Factor("primal", e, V, tr, va, A=A, Xv=Xv, mu=mu)
    else:
        Ktt = G[tr][:, tr]
        Kvt = G[va][:, tr]
        Ktt, Kvt = _center_kernel(Ktt, Kvt, center)
        e, U = ops.eigh((Ktt + Ktt.T) / 2)
        e, U = _keep(ops, e, U)
        f = _Factor("kernel", e, U, tr, va, A=Kvt @ U)
    if f.A.shape[1] < len(val):
        f.gram = f.A.T @ f.A
    f.asum = f.A.sum(0)
    return f


def _project(f: _Factor, X: Any, Yb: Any, XtY: Any, center: bool) -> tuple[Any, Any, Any]:
    """(C, y_train_mean, Y_val): training targets projected on the fold's eigenbasis, (r, t).

    Primal: ``C = Vᵀ X_trᵀ Y_tr`` from the all-rows ``XtY`` (p, t) minus the validation rows' part.
    """
    Yv = Yb[f.val]
    n_tr = Yb.shape[0] - Yv.shape[0]
    ymean = (Yb.sum(0) - Yv.sum(0)) / n_tr
    if f.kind == "primal":
        M = XtY - f.Xv.T @ Yv
        if center:
            M = M - n_tr * (f.mu[:, None] * ymean[None, :])
        return f.basis.T @ M, ymean, Yv
    Ytr = Yb[f.train]
    if center:
        Ytr = Ytr - ymean[None, :]
    return f.basis.T @ Ytr, ymean, Yv


def _fold_scores(ops: ArrayOps, f: _Factor, C: Any, ymean_tr: Any, Yv: Any, penalties: np.ndarray, scoring: str, center: bool) -> np.ndarray:
    """Validation scores (n_alphas, t) of one fold for one target batch."""
    n_val = Yv.shape[0]
    yv_mean = Yv.mean(0)
    yc = Yv - yv_mean[None, :]
    yy = (yc * yc).sum(0)
    offset = (yv_mean - ymean_tr) if center else yv_mean
    B = f.A.T @ yc if f.gram is not None else None
    out = np.empty((len(penalties), C.shape[1]))
    for i, lam in enumerate(penalties):
        d = 1.0 / (f.e + float(lam))
        if f.gram is not None:  # scores from AᵀA: r × r × t
            Z = C * d[:, None]
            py = ops.colsum_prod(B, Z)
            pp = ops.colsum_prod(Z, f.gram @ Z)
            ps = f.asum @ Z
        else:  # explicit predictions: n_val × r × t
            P = (f.A * d[None, :]) @ C
            py = ops.colsum_prod(P, yc)
            pp = ops.colsum_prod(P, P)
            ps = P.sum(0)
        if scoring == "correlation":
            var_p = ops.maximum0(pp - ps * ps / n_val)
            den = ops.sqrt(var_p * yy)
            score = ops.numpy(py).astype(np.float64)
            den_np = ops.numpy(den).astype(np.float64)
            tiny = den_np <= 1e-300
            score = np.where(tiny, 0.0, score / np.where(tiny, 1.0, den_np))
        else:  # R² = 1 − SSE/SST, predictions = P + train mean (intercept)
            sse = yy + n_val * offset * offset + pp - 2 * py - 2 * offset * ps
            sse_np = ops.numpy(sse).astype(np.float64)
            yy_np = ops.numpy(yy).astype(np.float64)
            tiny = yy_np <= 1e-300
            score = np.where(tiny, 0.0, 1.0 - sse_np / np.where(tiny, 1.0, yy_np))
        out[i] = score
    return out


def select_alphas(scores: np.ndarray) -> np.ndarray:
    """Index of the best alpha per target from (n_alphas, t) scores on an ascending grid; ties → larger alpha.

    NaN scores never win. Scores within 8 ulps of the best count as ties (rounding-robust).
    """
    s = np.where(np.isfinite(scores), scores, -np.inf)
    best = s.max(0)
    tol = 8 * np.finfo(np.float64).eps * np.maximum(1.0, np.abs(np.where(np.isfinite(best), best, 0.0)))
    ok = s >= (best - tol)[None, :]
    best_index: np.ndarray = s.shape[0] - 1 - np.argmax(ok[::-1], axis=0)
    return best_index


class RidgeCV(_Regressor):
    """Ridge with one alpha per target chosen by cross-validation (a scikit-learn compatible regressor).

    Args:
        alphas: candidate alphas (any order; sorted ascending internally). ``None``: ``DEFAULT_ALPHAS``,
            10^-12…10^12 (25).
        cv: number of contiguous folds, an iterable of (train, val) index pairs, or a sklearn splitter;
            ``groups`` passed to ``fit`` override it (one fold per group).
        scoring: ``"correlation"`` (Pearson r, drama2brain) or ``"r2"``.
        fit_intercept: centre features and targets on the training rows (as sklearn).
        alpha_convention: ``"sklearn"`` (penalty λ = α) or ``"huth"`` (λ = α²).
        target_batch: targets per batch (bounds memory: the batch's Y and projections).
        backend: ``"numpy"`` or ``"torch"``; ``device`` for torch (``"cpu"``, ``"cuda"``, ``"auto"``).
        dtype: compute dtype (float32/float64); default the input's if floating, else float64.
        show_progress: a progress bar over folds × target batches.

    Attributes after ``fit``: ``coef_`` (n_features, n_targets), ``intercept_`` (n_targets,),
    ``best_alphas_`` (n_targets,) in the chosen convention, ``cv_scores_`` (n_alphas, n_targets)
    mean CV score per alpha (alphas ascending, as ``alphas_``), ``cv_score_`` (n_targets,) the best
    one, ``n_features_in_``. Fitted on a 1-D ``y`` (n_samples,), the per-target attributes and
    ``predict`` drop the target axis, as sklearn's ``Ridge``.
    """

    def __init__(
        self,
        alphas: Sequence[float] | np.ndarray | float | None = None,
        *,
        cv: int | Iterable[tuple[Any, Any]] | Any = 5,
        scoring: Scoring = "correlation",
        fit_intercept: bool = True,
        alpha_convention: Literal["sklearn", "huth"] = "sklearn",
        target_batch: int = 2048,
        backend: Literal["numpy", "torch"] = "numpy",
        device: str | None = None,
        dtype: Any = None,
        show_progress: bool = False,
    ) -> None:
        self.alphas = alphas
        self.cv = cv
        self.scoring = scoring
        self.fit_intercept = fit_intercept
        self.alpha_convention = alpha_convention
        self.target_batch = target_batch
        self.backend = backend
        self.device = device
        self.dtype = dtype
        self.show_progress = show_progress

    # -- helpers ------------------------------------------------------------------------------
    def _penalties(self, alphas: np.ndarray) -> np.ndarray:
        if self.alpha_convention == "sklearn":
            return alphas
        if self.alpha_convention == "huth":
            return alphas**2
        raise InvalidParameterError(f"unknown alpha_convention {self.alpha_convention!r}; use 'sklearn' or 'huth'")

    def _check(self, X: Any, Y: Any) -> tuple[np.ndarray, np.ndarray, bool]:
        X = _check_matrix(X, "X", "RidgeCV", min_samples=2)
        Y, ravel = _check_targets(Y, "RidgeCV", X.shape[0])
        if self.scoring not in ("correlation", "r2"):
            raise InvalidParameterError(f"unknown scoring {self.scoring!r}; use 'correlation' or 'r2'")
        if int(self.target_batch) < 1:
            raise InvalidParameterError(f"target_batch must be >= 1, got {self.target_batch}")
        return X, Y, ravel

    def _dtype(self, X: np.ndarray) -> np.dtype:
        if self.dtype is not None:
            try:
                dt: np.dtype = np.dtype(self.dtype)
            except (TypeError, ValueError):
                raise InvalidParameterError(f"dtype must be float32 or float64, got {self.dtype!r}") from None
            if dt not in (np.float32, np.float64):
                raise InvalidParameterError(f"dtype must be float32 or float64, got {dt}")
            return dt
        return X.dtype if X.dtype in (np.float32, np.float64) else np.dtype(np.float64)

    # -- estimator API ------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, groups: Sequence[Any] | np.ndarray | None = None) -> RidgeCV:
        """Fit on X (n_samples, n_features) and y (n_samples, n_targets) or (n_samples,); ``groups``: one
        CV label per sample (leave-one-group-out, overriding ``cv``)."""
        X, Y, ravel = self._check(X, y)
        alphas = np.sort(np.asarray(DEFAULT_ALPHAS if self.alphas is None else self.alphas, dtype=np.float64).ravel())
        if alphas.size == 0 or np.any(alphas < 0) or not np.all(np.isfinite(alphas)):
            raise InvalidParameterError("alphas must be a non-empty list of finite non-negative numbers")
        penalties = self._penalties(alphas)
        folds = make_folds(X.shape[0], self.cv, groups)
        dtype = self._dtype(X)
        ops = _ops(self.backend, dtype, self.device)
        center = bool(self.fit_intercept)
        n, p = X.shape
        n_targets = Y.shape[1]

        x_mean = X.mean(0, dtype=np.float64)
        y_mean = Y.mean(0, dtype=np.float64)
        # centre on all rows once for numerical stability; each fold re-centres on its training rows
        Xd = ops.asarray(X - x_mean.astype(dtype) if center else X)
        y_shift = y_mean.astype(dtype) if center else np.zeros(n_targets, dtype=dtype)

        def y_batch(sl: slice) -> Any:
            """Targets ``sl`` centred on all rows, on the backend (Y itself is never copied whole)."""
            return ops.asarray(np.asarray(Y[:, sl], dtype=dtype) - y_shift[sl])

        batch = int(self.target_batch)
        batches = [slice(s, min(s + batch, n_targets)) for s in range(0, n_targets, batch)]
        n_train_max = max(len(tr) for tr, _ in folds)
        kind = "primal" if p <= n_train_max else "kernel"
        G = Xd.T @ Xd if kind == "primal" else Xd @ Xd.T
        # primal: Xᵀ Y of all rows once per batch (p × t, at most the size of Y); folds subtract their part
        XtY = [ops.numpy(Xd.T @ y_batch(sl)) for sl in batches] if kind == "primal" else None
        scores = np.zeros((len(alphas), n_targets))
        bar = progress_bar(show=self.show_progress, total=(len(folds) + 1) * len(batches), desc="ridge CV", unit="batch")
        try:
            for train, val in folds:
                f = _factor_fold(ops, Xd, G, train, val, kind, center)
                for b, sl in enumerate(batches):
                    Yb = y_batch(sl)
                    C, ymean_tr, Yv = _project(f, Xd, Yb, None if XtY is None else ops.asarray(XtY[b]), center)
                    scores[:, sl] += _fold_scores(ops, f, C, ymean_tr, Yv, penalties, self.scoring, center)
                    bar.update(1)
                del f
            scores /= len(folds)
            best = select_alphas(scores)
            # refit on all rows: factor once, two GEMMs per batch
            e, basis = ops.eigh((G + G.T) / 2)
            e, basis = _keep(ops, e, basis)
            coef = np.empty((p, n_targets), dtype=dtype)
            for b, sl in enumerate(batches):
                lam = ops.asarray(penalties[best[sl]])
                if XtY is not None:  # primal
                    C = basis.T @ ops.asarray(XtY[b])
                    W = basis @ (C / (e[:, None] + lam[None, :]))
                else:
                    C = basis.T @ y_batch(sl)
                    W = Xd.T @ (basis @ (C / (e[:, None] + lam[None, :])))
                coef[:, sl] = ops.numpy(W)
                bar.update(1)
        finally:
            bar.close()
        self.alphas_ = alphas
        self.cv_scores_ = scores
        self.best_alphas_ = alphas[best]
        self.best_penalties_ = penalties[best]
        self.cv_score_ = scores[best, np.arange(n_targets)]
        self.coef_ = coef
        self.intercept_ = (y_mean - x_mean @ coef.astype(np.float64)).astype(dtype) if center else np.zeros(n_targets, dtype=dtype)
        self.n_features_in_ = p
        self.solver_ = kind
        if ravel:
            self.coef_ = self.coef_[:, 0]
            self.intercept_ = self.intercept_[0]
            self.best_alphas_ = self.best_alphas_[0]
            self.cv_score_ = self.cv_score_[0]
            self.cv_scores_ = self.cv_scores_[:, 0]
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predictions (n_samples, n_targets) = X @ coef_ + intercept_ ((n_samples,) after a 1-D fit)."""
        self._check_fitted()
        X = _check_matrix(X, "X", "RidgeCV", min_samples=0, n_features=self.n_features_in_)
        predictions: np.ndarray = X @ self.coef_ + self.intercept_
        return predictions

    def score(self, X: Any, y: Any) -> np.ndarray | float:
        """Score of the predictions on (X, Y) with this estimator's ``scoring``: one number (a float)
        for a 1-D ``Y``, as sklearn; per target (n_targets,) for a 2-D ``Y``, not averaged (pass
        ``scoring="r2"`` to sklearn's ``cross_val_score`` for one number over several targets)."""
        return _score(self.scoring, y, self.predict(X))


# ------------------------------------------------------------------------------------------------
# banded ridge (himalaya)
# ------------------------------------------------------------------------------------------------
def _score(scoring: str, Y: Any, pred: np.ndarray) -> np.ndarray | float:
    """``scoring`` ("correlation" or "r2") of ``pred`` against ``Y``: a float for a 1-D ``Y``, else per target."""
    from berg_core.fit.stats import pearson_r, r2_score

    Y = np.asarray(Y)
    per_target = (pearson_r if scoring == "correlation" else r2_score)(Y, pred)
    return float(per_target[0]) if Y.ndim == 1 else per_target


#: torch device kind -> himalaya backend name
_HIMALAYA_TORCH = {"cpu": "torch", "cuda": "torch_cuda", "mps": "torch_mps"}


def himalaya_backend(backend: str, device: str | None) -> tuple[str, str | None]:
    """himalaya's backend name for berg's ``backend`` and ``device``, and the torch device (``None`` for numpy).

    ``("numpy", None|"cpu")`` -> ``("numpy", None)``; ``("torch", "cpu")`` -> ``("torch", "cpu")`` even when
    CUDA exists; ``("torch", None|"auto")`` -> CUDA when available, else MPS, else CPU (``resolve_device``).
    """
    torch_device = _torch_device(backend, device)
    if torch_device is None:
        return "numpy", None
    return _HIMALAYA_TORCH[torch_device.split(":")[0]], torch_device


def _on_device(torch_device: str | None) -> contextlib.AbstractContextManager[Any]:
    """Make ``cuda:N`` the current CUDA device (himalaya's ``torch_cuda`` allocates on the current one)."""
    if torch_device is not None and torch_device.startswith("cuda"):
        import torch

        device: contextlib.AbstractContextManager[Any] = torch.cuda.device(torch_device)
        return device
    return contextlib.nullcontext()


def _himalaya() -> Any:
    try:
        import himalaya.backend as hb
    except ImportError as exc:
        raise InvalidParameterError(
            f"banded ridge needs himalaya: pip install 'berg-core[train]' (himalaya, packaging) ({exc})"
        ) from exc
    return hb


def _space_slices(spaces: Any, n_features: int) -> list[slice]:
    """Column slices of the feature spaces in a 2-D X: ``spaces`` is their number (near-equal
    contiguous blocks, as ``np.array_split``) or the width of each, summing to ``n_features``."""
    if isinstance(spaces, (int, np.integer)) and not isinstance(spaces, bool):
        k = int(spaces)
        if k < 1:
            raise InvalidParameterError(f"spaces must be >= 1 (the number of feature spaces) or their widths, got {k}")
        if n_features < k:
            raise InvalidParameterError(
                f"X has {n_features} feature(s) but spaces={k} asks for {k} feature spaces of at least one column each"
            )
        widths = [len(block) for block in np.array_split(np.arange(n_features), k)]
    else:
        try:
            widths = [int(w) for w in spaces]
        except (TypeError, ValueError):
            raise InvalidParameterError(f"spaces must be the number of feature spaces or a list of their widths, got {spaces!r}") from None
        if not widths or min(widths) < 1 or sum(widths) != n_features:
            raise InvalidParameterError(f"spaces={widths} must be positive widths summing to the {n_features} feature(s) of X")
    edges = np.concatenate([[0], np.cumsum(widths)])
    return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


class BandedRidgeCV(_Regressor):
    """Banded ridge: one regularisation weight per feature space, searched by random search (himalaya's algorithm).

    ``n_iter`` Dirichlet draws of space weights on the simplex × the alpha grid, best per target by CV
    ``scoring``; primal form when samples ≥ features, kernel form (linear kernels) when features >
    samples (``solver="auto"``), or as ``solver`` says. ``engine="berg"`` (default) solves each draw with
    ``RidgeCV``'s factor-once machinery (``berg_core.fit.banded``); ``engine="himalaya"`` wraps
    ``himalaya.ridge.BandedRidgeCV`` / ``himalaya.kernel_ridge.MultipleKernelRidgeCV``. On the same draws
    (``random_state``) both give the same deltas, scores and weights to rounding. Features and targets
    are centred on the training rows here (the solver sees zero-mean data), so per-space predictions and
    the intercept are available.

    The feature spaces: with ``spaces=None`` (default) ``fit``/``predict`` take a list of arrays, each
    (n_samples, n_features_i); with ``spaces`` set they take one 2-D X (n_samples, n_features), split
    into contiguous column blocks: ``spaces`` is their number (near-equal widths) or each one's width
    (this form works in ``sklearn.pipeline`` and ``cross_val_score``).

    ``backend="torch"`` runs on torch (himalaya's torch backend with ``engine="himalaya"``) on ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:N"``,
    ``"mps"``; ``None``/``"auto"``: CUDA when available); ``backend="numpy"`` runs on the CPU.

    Attributes after ``fit``: ``coef_`` (n_features_total, n_targets), ``coefs_`` (one block per
    space), ``intercept_``, ``deltas_`` (n_spaces, n_targets; log space weights as himalaya),
    ``best_alphas_``, ``cv_scores_`` (n_iter, n_targets), ``cv_score_`` (n_targets,), ``solver_``,
    ``backend_`` (the backend used, in himalaya's names), ``n_features_in_``. Fitted on a 1-D ``y`` the target
    axis is dropped, as in ``RidgeCV``.
    """

    def __init__(
        self,
        alphas: Sequence[float] | np.ndarray | float | None = None,
        *,
        spaces: int | Sequence[int] | None = None,
        n_iter: int = 100,
        concentration: Sequence[float] = (0.1, 1.0),
        cv: int | Iterable[tuple[Any, Any]] | Any = 5,
        scoring: Scoring = "correlation",
        solver: Literal["auto", "primal", "kernel"] = "auto",
        random_state: int | None = 0,
        target_batch: int | None = None,
        backend: Literal["numpy", "torch"] = "numpy",
        device: str | None = None,
        show_progress: bool = False,
        engine: Literal["berg", "himalaya"] = "berg",
    ) -> None:
        self.alphas = alphas
        self.spaces = spaces
        self.engine = engine
        self.n_iter = n_iter
        self.concentration = concentration
        self.cv = cv
        self.scoring = scoring
        self.solver = solver
        self.random_state = random_state
        self.target_batch = target_batch
        self.backend = backend
        self.device = device
        self.show_progress = show_progress

    def _split(self, X: Any, fitted: bool) -> list[np.ndarray]:
        """The feature spaces of X as validated 2-D arrays (after ``fit``: checked against its widths)."""
        min_samples = 0 if fitted else 2
        if self.spaces is not None:
            X = _check_matrix(X, "X", "BandedRidgeCV", min_samples, self.n_features_in_ if fitted else None)
            slices = self.slices_ if fitted else _space_slices(self.spaces, X.shape[1])
            return [X[:, s] for s in slices]
        if isinstance(X, np.ndarray) or not isinstance(X, (list, tuple)) or not X:
            raise InvalidParameterError(
                "banded ridge takes a list of feature spaces, each (n_samples, n_features_i), "
                "or one 2-D X with spaces= (their number or widths)"
            )
        if fitted and len(X) != len(self.slices_):
            raise InvalidParameterError(f"expected {len(self.slices_)} feature spaces, got {len(X)}")
        out = [
            _check_matrix(x, f"feature space {i}", "BandedRidgeCV", min_samples, (self.slices_[i].stop - self.slices_[i].start) if fitted else None)
            for i, x in enumerate(X)
        ]
        for i, x in enumerate(out):
            if x.shape[0] != out[0].shape[0]:
                raise InvalidParameterError(f"feature space {i} has {x.shape[0]} samples, space 0 has {out[0].shape[0]}")
        return out

    def fit(self, X: Any, y: Any, groups: Sequence[Any] | np.ndarray | None = None) -> BandedRidgeCV:
        """Fit on the feature spaces X (see the class docstring) and Y (n_samples, n_targets) or (n_samples,)."""
        Xs = self._split(X, fitted=False)
        Y, ravel = _check_targets(y, "BandedRidgeCV", Xs[0].shape[0])
        if self.scoring not in ("correlation", "r2"):
            raise InvalidParameterError(f"unknown scoring {self.scoring!r}; use 'correlation' or 'r2'")
        if self.solver not in ("auto", "primal", "kernel"):
            raise InvalidParameterError(f"unknown solver {self.solver!r}; use 'auto', 'primal' or 'kernel'")
        if self.engine not in ("berg", "himalaya"):
            raise InvalidParameterError(f"unknown banded ridge engine {self.engine!r}; use 'berg' (native) or 'himalaya'")
        dtype = Xs[0].dtype if Xs[0].dtype in (np.float32, np.float64) else np.dtype(np.float64)
        folds = make_folds(Y.shape[0], self.cv, groups)
        x_means = [x.mean(0) for x in Xs]
        y_mean = Y.mean(0)
        Xc = [(x - m).astype(dtype) for x, m in zip(Xs, x_means)]
        Yc = (Y - y_mean).astype(dtype)
        n, p = Yc.shape[0], sum(x.shape[1] for x in Xc)
        solver = self.solver if self.solver != "auto" else ("primal" if n >= p else "kernel")
        alphas = np.sort(np.asarray(DEFAULT_ALPHAS if self.alphas is None else self.alphas, dtype=dtype).ravel())
        if alphas.size == 0 or np.any(alphas <= 0) or not np.all(np.isfinite(alphas)):
            raise InvalidParameterError("alphas must be a non-empty list of finite positive numbers")
        best_alphas: np.ndarray | None  # None: a himalaya model without best_alphas_
        if self.engine == "berg":
            from berg_core.fit.banded import banded_random_search, dirichlet_draws

            gammas = dirichlet_draws(self.n_iter, len(Xc), self.concentration, self.random_state)
            res = banded_random_search(Xc, Yc, alphas, gammas, folds, scoring=self.scoring, kind=solver, backend=self.backend,
                                       device=self.device, target_batch=self.target_batch, show_progress=self.show_progress)
            name = himalaya_backend(self.backend, self.device)[0]
            coef, deltas, cv_scores, best_alphas = res.coef, res.deltas, res.cv_scores, res.best_alphas
        else:
            name, coef, deltas, cv_scores, best_alphas = self._fit_himalaya(Xc, Yc, alphas, folds, solver)
        self._set_fitted(Xc, x_means, y_mean, coef, deltas, cv_scores, best_alphas, dtype, solver, name, ravel)
        return self

    def _fit_himalaya(self, Xc: list[np.ndarray], Yc: np.ndarray, alphas: np.ndarray, folds: Folds,
                      solver: str) -> tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """himalaya's random search on centred spaces: (backend name, coef, deltas, cv_scores, best_alphas)."""
        name, torch_device = himalaya_backend(self.backend, self.device)
        hb = _himalaya()
        from himalaya.scoring import correlation_score, r2_score

        score_func = {"correlation": correlation_score, "r2": r2_score}[self.scoring]
        params = dict(
            n_iter=self.n_iter,
            concentration=list(self.concentration),
            alphas=alphas,
            score_func=score_func,
            n_targets_batch=self.target_batch,
            progress_bar=self.show_progress,
        )
        previous = hb.get_backend().name if hasattr(hb.get_backend(), "name") else None
        hb.set_backend(name, on_error="raise")
        try:
            backend = hb.get_backend()
            with _on_device(torch_device):
                if solver == "primal":
                    from himalaya.ridge import BandedRidgeCV as HBanded

                    model = HBanded(groups="input", solver="random_search", solver_params=params, fit_intercept=False,
                                    cv=folds, random_state=self.random_state)
                    model.fit(Xc, Yc)
                    coef = backend.to_numpy(model.coef_)
                else:
                    from himalaya.kernel_ridge import MultipleKernelRidgeCV

                    params["diagonalize_method"] = "eigh"
                    model = MultipleKernelRidgeCV(kernels="precomputed", solver="random_search", solver_params=params,
                                                  fit_intercept=False, cv=folds, random_state=self.random_state)
                    model.fit(np.stack([x @ x.T for x in Xc]), Yc)
                    dual = backend.to_numpy(model.dual_coef_)
                    w = np.exp(backend.to_numpy(model.deltas_))
                    coef = np.concatenate([x.T @ dual * w[i][None, :] for i, x in enumerate(Xc)], axis=0)
            deltas = backend.to_numpy(model.deltas_)
            cv_scores = backend.to_numpy(model.cv_scores_)
            best_alphas = backend.to_numpy(model.best_alphas_) if getattr(model, "best_alphas_", None) is not None else None
        finally:
            if previous:
                hb.set_backend(previous)
        return name, coef, deltas, cv_scores, best_alphas

    def _set_fitted(self, Xc: list[np.ndarray], x_means: list[np.ndarray], y_mean: np.ndarray, coef: np.ndarray, deltas: np.ndarray,
                    cv_scores: np.ndarray, best_alphas: np.ndarray | None, dtype: np.dtype, solver: str, name: str, ravel: bool) -> None:
        """The fitted attributes of the class docstring, from either engine's results."""
        p = sum(x.shape[1] for x in Xc)
        coef = np.asarray(coef, dtype=dtype)
        edges = np.concatenate([[0], np.cumsum([x.shape[1] for x in Xc])])
        slices = [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]
        intercept = (y_mean - np.concatenate(x_means) @ coef).astype(dtype)
        space_weights = np.exp(deltas) / np.exp(deltas).sum(0, keepdims=True)
        if ravel:  # one target given as (n_samples,): drop the target axis, as RidgeCV
            coef, intercept, y_mean = coef[:, 0], intercept[0], y_mean[0]
            deltas, cv_scores, space_weights = deltas[:, 0], cv_scores[:, 0], space_weights[:, 0]
            best_alphas = None if best_alphas is None else best_alphas[0]
        self.solver_ = solver
        self.backend_ = name
        self.x_means_ = x_means
        self.y_mean_ = y_mean
        self.slices_ = slices
        self.deltas_ = deltas
        self.cv_scores_ = cv_scores
        self.cv_score_ = cv_scores.max(0)
        self.best_alphas_ = best_alphas
        self.space_weights_ = space_weights
        self.intercept_ = intercept
        self.coefs_ = [coef[s] for s in slices]
        self.n_features_in_ = p
        self.coef_ = coef

    def predict(self, X: Any, split: bool = False) -> np.ndarray:
        """(n_samples, n_targets) = X @ coef_ + intercept_; with ``split``, (n_spaces, n_samples, n_targets):
        each space's part ``(X_i − mean_i) @ coef_i`` (their sum + ``y_mean_`` is the prediction)."""
        self._check_fitted()
        Xs = self._split(X, fitted=True)
        parts = np.stack([(x - m) @ c for x, m, c in zip(Xs, self.x_means_, self.coefs_)])
        return parts if split else parts.sum(0) + self.y_mean_

    def score(self, X: Any, y: Any, split: bool = False) -> np.ndarray | float:
        """Score with this estimator's ``scoring``, as ``RidgeCV.score`` (a float for a 1-D ``Y``); with
        ``split``, the per-space split correlation (himalaya's product measure:
        ``corr_i = cov(Ŷ_i, Y)/(std(Ŷ)·std(Y))``, summing to the joint correlation)."""
        from berg_core.fit.stats import split_correlation

        if split:
            return split_correlation(np.asarray(y), self.predict(X, split=True))
        return _score(self.scoring, y, self.predict(X))


# ------------------------------------------------------------------------------------------------
# PCA reduction
# ------------------------------------------------------------------------------------------------
class PCA(_Estimator):
    """Principal components fit on training rows only: ``transform(X) = (X − mean_) @ components_.T``.

    ``n_components``: how many (``None``: min(n_samples, n_features)), checked by ``fit``.
    ``components_`` (n_components, n_features), unit rows, sign fixed so the largest-|loading| entry of
    each component is positive; ``explained_variance_`` (n_components,) with ddof 1, as sklearn;
    ``n_components_``, ``n_features_in_``. Computed in float64.
    """

    _kind = "transformer"
    _fitted_attribute = "components_"
    _fit_call = "fit(X_train)"

    def __init__(self, n_components: int | None = None) -> None:
        self.n_components = n_components

    def fit(self, X: Any, y: Any = None) -> PCA:
        """Fit on X (n_samples, n_features); ``y`` is ignored (sklearn's transformer convention)."""
        from scipy.linalg import eigh, svd

        X = _check_matrix(X, "X", "PCA").astype(np.float64, copy=False)
        n, d = X.shape
        k = self.n_components
        if k is None:
            k = min(n, d)
        elif isinstance(k, bool) or not isinstance(k, (int, float, np.integer, np.floating)) or not float(k).is_integer() or k < 1:
            raise InvalidParameterError(f"PCA needs n_components >= 1 (a whole number) or None, got {k!r}")
        k = int(k)
        if k > min(n, d):
            raise InvalidParameterError(f"PCA to {k} components needs at least {k} training samples and features; got {n} × {d}")
        mean = X.mean(0)
        Xc = X - mean
        if n >= 2 * d:  # covariance eigendecomposition: d × d
            evals, evecs = eigh(Xc.T @ Xc, subset_by_index=(d - k, d - 1))
            order = np.argsort(evals)[::-1]
            comps = evecs[:, order].T
            var = evals[order] / max(n - 1, 1)
        else:
            _, s, vt = svd(Xc, full_matrices=False, check_finite=False)
            comps = vt[:k]
            var = s[:k] ** 2 / max(n - 1, 1)
        flip = np.sign(comps[np.arange(k), np.argmax(np.abs(comps), axis=1)])
        flip[flip == 0] = 1
        self.mean_ = mean
        self.explained_variance_ = np.maximum(var, 0)
        self.n_components_ = k
        self.n_features_in_ = d
        self.components_ = comps * flip[:, None]
        return self

    def transform(self, X: Any) -> np.ndarray:
        """(n_samples, n_components) = (X − mean_) @ components_.T."""
        self._check_fitted()
        X = _check_matrix(X, "X", "PCA", min_samples=0, n_features=self.n_features_in_)
        scores: np.ndarray = (X - self.mean_) @ self.components_.T
        return scores

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        """``fit(X).transform(X)``."""
        return self.fit(X).transform(X)


def parse_reduce(text: str | None) -> int | None:
    """``"pca:N"`` -> N; ``None``/``"none"``/``"raw"`` -> None."""
    if text is None or str(text).lower() in {"", "none", "raw"}:
        return None
    kind, _, num = str(text).partition(":")
    if kind.lower() != "pca" or not num.isdigit() or int(num) < 1:
        raise InvalidParameterError(f"unknown reduction {text!r}; use 'pca:N' (N components) or 'none'")
    return int(num)
