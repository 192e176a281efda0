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

sklearn and himalaya are imported inside functions only (``pip install berg-core[train]``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from berg_core.errors import BergError, InvalidParameterError
from berg_core.progress import progress_bar

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
# array backends
# ------------------------------------------------------------------------------------------------
class _NumpyOps:
    name = "numpy"

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = np.dtype(dtype)
        self.eps = float(np.finfo(self.dtype).eps)

    def asarray(self, x: Any) -> np.ndarray:
        return np.ascontiguousarray(x, dtype=self.dtype)

    def index(self, idx: np.ndarray) -> np.ndarray:
        return idx

    def numpy(self, x: Any) -> np.ndarray:
        return np.asarray(x)

    def eigh(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from scipy.linalg import eigh

        return eigh(a, overwrite_a=True, check_finite=False, driver="evd")

    def sqrt(self, x: Any) -> Any:
        return np.sqrt(x)

    def maximum0(self, x: Any) -> Any:
        return np.maximum(x, 0)

    def colsum_prod(self, a: Any, b: Any) -> Any:
        """Column sums of a ∘ b: (k, m), (k, m) -> (m,)."""
        return np.einsum("ij,ij->j", a, b)


class _TorchOps:
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
        return self.torch.as_tensor(np.ascontiguousarray(x), dtype=self.dtype, device=self.device)

    def index(self, idx: np.ndarray) -> Any:
        return self.torch.as_tensor(idx, dtype=self.torch.long, device=self.device)

    def numpy(self, x: Any) -> np.ndarray:
        return x.detach().cpu().numpy() if isinstance(x, self.torch.Tensor) else np.asarray(x)

    def eigh(self, a: Any) -> tuple[Any, Any]:
        return self.torch.linalg.eigh(a)

    def sqrt(self, x: Any) -> Any:
        return self.torch.sqrt(x)

    def maximum0(self, x: Any) -> Any:
        return self.torch.clamp(x, min=0)

    def colsum_prod(self, a: Any, b: Any) -> Any:
        return (a * b).sum(0)


def _ops(backend: str, dtype: np.dtype, device: str | None) -> _NumpyOps | _TorchOps:
    if backend == "numpy":
        if device not in (None, "cpu"):
            raise InvalidParameterError(f"the numpy backend runs on the CPU; use backend='torch' for device {device!r}")
        return _NumpyOps(dtype)
    if backend == "torch":
        try:
            import torch  # noqa: F401
        except ImportError as exc:
            raise InvalidParameterError("backend 'torch' needs torch: pip install torch (or use backend='numpy')") from exc
        from berg_core.device import resolve_device

        return _TorchOps(dtype, resolve_device(device or "auto"))
    raise InvalidParameterError(f"unknown backend {backend!r}; use 'numpy' or 'torch'")


class _Params:
    """sklearn's ``get_params``/``set_params`` protocol (constructor arguments), without importing sklearn."""

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        import inspect

        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    def set_params(self, **params: Any) -> Any:
        valid = self.get_params()
        for key, value in params.items():
            if key not in valid:
                raise InvalidParameterError(f"unknown parameter {key!r} for {type(self).__name__}; valid: {', '.join(valid)}")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_params().items() if k != 'alphas')})"


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


def _keep(ops: Any, e: Any, basis: Any) -> tuple[Any, Any]:
    """Drop eigenvalues below 10·eps·max(e) (numerically zero or negative)."""
    emax = float(e.max()) if e.shape[0] else 0.0
    keep = e > 10.0 * ops.eps * max(emax, 0.0)
    if ops.name == "torch":
        idx = ops.torch.nonzero(keep).flatten()
    else:
        idx = np.flatnonzero(keep)
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


def _factor_fold(ops: Any, X: Any, G: Any, train: np.ndarray, val: np.ndarray, kind: str, center: bool) -> _Factor:
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
        A = (Xv - mu[None, :]) @ V if center else Xv @ V
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


def _fold_scores(ops: Any, f: _Factor, C: Any, ymean_tr: Any, Yv: Any, penalties: np.ndarray, scoring: str, center: bool) -> np.ndarray:
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
    return s.shape[0] - 1 - np.argmax(ok[::-1], axis=0)


class RidgeCV(_Params):
    """Ridge with one alpha per target chosen by cross-validation (sklearn-style estimator).

    Args:
        alphas: candidate alphas (any order; sorted ascending internally). Default 10^-12…10^12 (25).
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
    one, ``n_features_in_``.
    """

    def __init__(
        self,
        alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS,
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
        X = np.asarray(X)
        Y = np.asarray(Y)
        ravel = Y.ndim == 1
        if ravel:
            Y = Y[:, None]
        if X.ndim != 2 or Y.ndim != 2:
            raise InvalidParameterError(f"X must be (n_samples, n_features) and Y (n_samples, n_targets); got {X.shape} and {Y.shape}")
        if X.shape[0] != Y.shape[0]:
            raise InvalidParameterError(f"X has {X.shape[0]} samples but Y has {Y.shape[0]}; they must match")
        for name, arr in (("X", X), ("Y", Y)):
            if not np.issubdtype(arr.dtype, np.number):
                raise InvalidParameterError(f"{name} must be numeric, got dtype {arr.dtype}")
            if not np.all(np.isfinite(arr)):
                raise InvalidParameterError(f"{name} contains NaN or inf; clean or impute it first")
        if self.scoring not in ("correlation", "r2"):
            raise InvalidParameterError(f"unknown scoring {self.scoring!r}; use 'correlation' or 'r2'")
        if int(self.target_batch) < 1:
            raise InvalidParameterError(f"target_batch must be >= 1, got {self.target_batch}")
        return X, Y, ravel

    def _dtype(self, X: np.ndarray) -> np.dtype:
        if self.dtype is not None:
            try:
                dt = np.dtype(self.dtype)
            except (TypeError, ValueError):
                raise InvalidParameterError(f"dtype must be float32 or float64, got {self.dtype!r}") from None
            if dt not in (np.float32, np.float64):
                raise InvalidParameterError(f"dtype must be float32 or float64, got {dt}")
            return dt
        return X.dtype if X.dtype in (np.float32, np.float64) else np.dtype(np.float64)

    # -- estimator API ------------------------------------------------------------------------
    def fit(self, X: Any, Y: Any, groups: Sequence[Any] | np.ndarray | None = None) -> RidgeCV:
        """Fit on X (n_samples, n_features) and Y (n_samples, n_targets) or (n_samples,)."""
        X, Y, ravel = self._check(X, Y)
        alphas = np.sort(np.asarray(self.alphas, dtype=np.float64).ravel())
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
                if kind == "primal":
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

    def _fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise BergError("this RidgeCV is not fitted yet; call fit(X, Y) first")

    def predict(self, X: Any) -> np.ndarray:
        """Predictions (n_samples, n_targets) = X @ coef_ + intercept_."""
        self._fitted()
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise InvalidParameterError(f"X must have {self.n_features_in_} columns, got shape {X.shape}")
        return X @ self.coef_ + self.intercept_

    def score(self, X: Any, Y: Any) -> np.ndarray:
        """Per-target score on (X, Y) with this estimator's ``scoring`` (not averaged, unlike sklearn)."""
        from berg_core.stats import pearson_r, r2_score

        pred = self.predict(X)
        Y = np.asarray(Y)
        return pearson_r(Y, pred) if self.scoring == "correlation" else r2_score(Y, pred)


# ------------------------------------------------------------------------------------------------
# banded ridge (himalaya)
# ------------------------------------------------------------------------------------------------
def _himalaya(backend: str):
    try:
        import himalaya.backend as hb
    except ImportError as exc:
        raise InvalidParameterError(
            f"banded ridge needs himalaya: pip install 'berg-core[train]' (himalaya, packaging) ({exc})"
        ) from exc
    names = {"numpy": "numpy", "torch": "torch"}
    if backend not in names:
        raise InvalidParameterError(f"unknown backend {backend!r}; use 'numpy' or 'torch'")
    name = names[backend]
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            name = "torch_cuda"
    return hb, name


class BandedRidgeCV(_Params):
    """Banded ridge: one regularisation weight per feature space, searched by himalaya's random search.

    Wraps ``himalaya.ridge.BandedRidgeCV`` (primal, when samples ≥ features) or
    ``himalaya.kernel_ridge.MultipleKernelRidgeCV`` on linear kernels (``solver="kernel"`` or "auto"
    when features > samples): ``n_iter`` Dirichlet draws of space weights on the simplex × the alpha grid,
    best per target by CV ``scoring``. Features and targets are centred on the training rows here
    (himalaya sees zero-mean data), so per-space predictions and the intercept are available.

    Attributes after ``fit``: ``coef_`` (n_features_total, n_targets), ``coefs_`` (one block per
    space), ``intercept_``, ``deltas_`` (n_spaces, n_targets; log space weights as himalaya),
    ``best_alphas_``, ``cv_scores_`` (n_iter, n_targets), ``cv_score_`` (n_targets,), ``solver_``.
    """

    def __init__(
        self,
        alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS,
        *,
        n_iter: int = 100,
        concentration: Sequence[float] = (0.1, 1.0),
        cv: int | Iterable[tuple[Any, Any]] | Any = 5,
        scoring: Scoring = "correlation",
        solver: Literal["auto", "primal", "kernel"] = "auto",
        random_state: int | None = 0,
        target_batch: int | None = None,
        backend: Literal["numpy", "torch"] = "numpy",
        show_progress: bool = False,
    ) -> None:
        self.alphas = alphas
        self.n_iter = n_iter
        self.concentration = concentration
        self.cv = cv
        self.scoring = scoring
        self.solver = solver
        self.random_state = random_state
        self.target_batch = target_batch
        self.backend = backend
        self.show_progress = show_progress

    def _spaces(self, Xs: Sequence[Any]) -> list[np.ndarray]:
        if isinstance(Xs, np.ndarray) or not len(Xs):
            raise InvalidParameterError("banded ridge takes a list of feature spaces, each (n_samples, n_features_i)")
        out = [np.asarray(x) for x in Xs]
        for i, x in enumerate(out):
            if x.ndim != 2:
                raise InvalidParameterError(f"feature space {i} must be 2-D, got shape {x.shape}")
            if x.shape[0] != out[0].shape[0]:
                raise InvalidParameterError(f"feature space {i} has {x.shape[0]} samples, space 0 has {out[0].shape[0]}")
            if not np.all(np.isfinite(x)):
                raise InvalidParameterError(f"feature space {i} contains NaN or inf")
        return out

    def fit(self, Xs: Sequence[Any], Y: Any, groups: Sequence[Any] | np.ndarray | None = None) -> BandedRidgeCV:
        """Fit on a list of feature spaces (each (n_samples, n_features_i)) and Y (n_samples, n_targets)."""
        Xs = self._spaces(Xs)
        Y = np.asarray(Y)
        if Y.ndim == 1:
            Y = Y[:, None]
        if Y.shape[0] != Xs[0].shape[0]:
            raise InvalidParameterError(f"features have {Xs[0].shape[0]} samples but Y has {Y.shape[0]}; they must match")
        if not np.all(np.isfinite(Y)):
            raise InvalidParameterError("Y contains NaN or inf")
        dtype = Xs[0].dtype if Xs[0].dtype in (np.float32, np.float64) else np.dtype(np.float64)
        folds = make_folds(Y.shape[0], self.cv, groups)
        hb, name = _himalaya(self.backend)
        from himalaya.scoring import correlation_score, r2_score

        score_func = {"correlation": correlation_score, "r2": r2_score}.get(self.scoring)
        if score_func is None:
            raise InvalidParameterError(f"unknown scoring {self.scoring!r}; use 'correlation' or 'r2'")
        self.x_means_ = [x.mean(0) for x in Xs]
        self.y_mean_ = Y.mean(0)
        Xc = [(x - m).astype(dtype) for x, m in zip(Xs, self.x_means_)]
        Yc = (Y - self.y_mean_).astype(dtype)
        n, p = Yc.shape[0], sum(x.shape[1] for x in Xc)
        solver = self.solver if self.solver != "auto" else ("primal" if n >= p else "kernel")
        params = dict(
            n_iter=self.n_iter,
            concentration=list(self.concentration),
            alphas=np.sort(np.asarray(self.alphas, dtype=dtype)),
            score_func=score_func,
            n_targets_batch=self.target_batch,
            progress_bar=self.show_progress,
        )
        previous = hb.get_backend().name if hasattr(hb.get_backend(), "name") else None
        hb.set_backend(name, on_error="raise")
        try:
            backend = hb.get_backend()
            if solver == "primal":
                from himalaya.ridge import BandedRidgeCV as HBanded

                model = HBanded(groups="input", solver="random_search", solver_params=params, fit_intercept=False,
                                cv=folds, random_state=self.random_state)
                model.fit(Xc, Yc)
                coef = backend.to_numpy(model.coef_)
            elif solver == "kernel":
                from himalaya.kernel_ridge import MultipleKernelRidgeCV

                params["diagonalize_method"] = "eigh"
                model = MultipleKernelRidgeCV(kernels="precomputed", solver="random_search", solver_params=params,
                                              fit_intercept=False, cv=folds, random_state=self.random_state)
                model.fit(np.stack([x @ x.T for x in Xc]), Yc)
                dual = backend.to_numpy(model.dual_coef_)
                w = np.exp(backend.to_numpy(model.deltas_))
                coef = np.concatenate([x.T @ dual * w[i][None, :] for i, x in enumerate(Xc)], axis=0)
            else:
                raise InvalidParameterError(f"unknown solver {self.solver!r}; use 'auto', 'primal' or 'kernel'")
            self.deltas_ = backend.to_numpy(model.deltas_)
            self.cv_scores_ = backend.to_numpy(model.cv_scores_)
            self.best_alphas_ = backend.to_numpy(model.best_alphas_) if getattr(model, "best_alphas_", None) is not None else None
        finally:
            if previous:
                hb.set_backend(previous)
        self.solver_ = solver
        self.coef_ = np.asarray(coef, dtype=dtype)
        sizes = [x.shape[1] for x in Xc]
        edges = np.concatenate([[0], np.cumsum(sizes)])
        self.slices_ = [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]
        self.coefs_ = [self.coef_[s] for s in self.slices_]
        self.cv_score_ = self.cv_scores_.max(0)
        x_mean = np.concatenate(self.x_means_)
        self.intercept_ = (self.y_mean_ - x_mean @ self.coef_).astype(dtype)
        self.space_weights_ = np.exp(self.deltas_) / np.exp(self.deltas_).sum(0, keepdims=True)
        return self

    def predict(self, Xs: Sequence[Any], split: bool = False) -> np.ndarray:
        """(n_samples, n_targets) = X @ coef_ + intercept_; with ``split``, (n_spaces, n_samples, n_targets):
        each space's part ``(X_i − mean_i) @ coef_i`` (their sum + ``y_mean_`` is the prediction)."""
        if not hasattr(self, "coef_"):
            raise BergError("this BandedRidgeCV is not fitted yet; call fit(Xs, Y) first")
        Xs = self._spaces(Xs)
        if len(Xs) != len(self.coefs_):
            raise InvalidParameterError(f"expected {len(self.coefs_)} feature spaces, got {len(Xs)}")
        parts = np.stack([(x - m) @ c for x, m, c in zip(Xs, self.x_means_, self.coefs_)])
        return parts if split else parts.sum(0) + self.y_mean_

    def score(self, Xs: Sequence[Any], Y: Any, split: bool = False) -> np.ndarray:
        """Per-target score; with ``split``, the per-space split correlation (himalaya's product measure:
        ``corr_i = cov(Ŷ_i, Y)/(std(Ŷ)·std(Y))``, summing to the joint correlation)."""
        from berg_core.stats import pearson_r, r2_score, split_correlation

        Y = np.asarray(Y)
        if split:
            return split_correlation(Y, self.predict(Xs, split=True))
        pred = self.predict(Xs)
        return pearson_r(Y, pred) if self.scoring == "correlation" else r2_score(Y, pred)


# ------------------------------------------------------------------------------------------------
# PCA reduction
# ------------------------------------------------------------------------------------------------
class PCA:
    """Principal components fit on training rows only: ``transform(X) = (X − mean_) @ components_.T``.

    ``components_`` (n_components, n_features), unit rows, sign fixed so the largest-|loading| entry of
    each component is positive; ``explained_variance_`` (n_components,) with ddof 1, as sklearn.
    """

    def __init__(self, n_components: int) -> None:
        if int(n_components) < 1:
            raise InvalidParameterError(f"PCA needs n_components >= 1, got {n_components}")
        self.n_components = int(n_components)

    def fit(self, X: Any) -> PCA:
        from scipy.linalg import eigh, svd

        X = np.asarray(X, dtype=np.float64)
        n, d = X.shape
        k = self.n_components
        if k > min(n, d):
            raise InvalidParameterError(f"PCA to {k} components needs at least {k} training samples and features; got {n} × {d}")
        self.mean_ = X.mean(0)
        Xc = X - self.mean_
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
        self.components_ = comps * flip[:, None]
        self.explained_variance_ = np.maximum(var, 0)
        return self

    def transform(self, X: Any) -> np.ndarray:
        if not hasattr(self, "components_"):
            raise BergError("this PCA is not fitted yet; call fit(X_train) first")
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.components_.shape[1]:
            raise InvalidParameterError(f"PCA expects {self.components_.shape[1]} features, got shape {X.shape}")
        return (X - self.mean_) @ self.components_.T

    def fit_transform(self, X: Any) -> np.ndarray:
        return self.fit(X).transform(X)


def parse_reduce(text: str | None) -> int | None:
    """``"pca:N"`` -> N; ``None``/``"none"``/``"raw"`` -> None."""
    if text is None or str(text).lower() in {"", "none", "raw"}:
        return None
    kind, _, num = str(text).partition(":")
    if kind.lower() != "pca" or not num.isdigit() or int(num) < 1:
        raise InvalidParameterError(f"unknown reduction {text!r}; use 'pca:N' (N components) or 'none'")
    return int(num)
