"""Native banded ridge: random search over per-space scalings on top of ``RidgeCV``'s factor-once solver.

Banded ridge fits, per target, ``||Y − Σ_i X_i w_i||² + Σ_i ||w_i||² / exp(δ_i)`` with one log
weight ``δ_i = log(γ_i / α)`` per feature space. The random search (himalaya's
``solve_group_ridge_random_search``) draws space weights ``γ`` on the simplex (Dirichlet draws,
concentrations cycled; the first draw is the uniform one), and for each draw fits plain ridge on the
scaled features ``Z = [√γ_1 X_1, …, √γ_k X_k]`` over the alpha grid with CV; per target it keeps the
draw whose best CV score beats the current one by more than the dtype's epsilon.

Here each draw is solved once per fold with ``RidgeCV``'s machinery (``berg_core.fit.ridge``): the Gram
matrix of ``Z`` is ``S G S`` (primal, ``S = diag(√γ)`` per column, ``G = XᵀX`` computed once) or
``Σ γ_i K_i`` (kernel form, ``K_i = X_i X_iᵀ`` computed once), so a draw costs one eigendecomposition
per fold plus, per alpha, a diagonal rescale and one small GEMM, instead of himalaya's
(n_val × n_train) resolution matrix per alpha. Weights are refit once per draw that some target kept.
Alpha selection reproduces himalaya's (mean over folds plus ``1e-10·log α``, first maximum), so on
the same draws the results equal himalaya's to rounding (tests/core/test_banded.py).

Inputs are centred on all training rows by the caller (``fit_intercept=False`` inside the folds, as
berg's wrapper of himalaya does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from berg_core.console import progress_bar
from berg_core.errors import InvalidParameterError
from berg_core.fit.ridge import Folds, _factor_fold, _fold_scores, _keep, _ops, _project


def dirichlet_draws(n_iter: int, n_spaces: int, concentration: Sequence[float] | float = (0.1, 1.0),
                    random_state: int | None = 0) -> np.ndarray:
    """Space weights (n_iter, n_spaces) on the simplex, the same sequence as himalaya's random search.

    ``np.random.RandomState(random_state)`` draws ``ceil(n_iter / len(concentration))`` Dirichlet samples
    per concentration (``inf``: uniform weights); the draws alternate between concentrations; the first
    draw is replaced by the uniform weights ``1/n_spaces``.
    """
    if isinstance(n_iter, bool) or not isinstance(n_iter, (int, np.integer)) or n_iter < 1:
        raise InvalidParameterError(f"n_iter must be a whole number >= 1 (random-search draws), got {n_iter!r}")
    conc = np.atleast_1d(np.asarray(concentration, dtype=np.float64))
    if conc.size == 0 or np.any(~(conc > 0)):
        raise InvalidParameterError(f"concentration must be positive numbers, got {concentration!r}")
    rng = np.random.RandomState(random_state)
    per = int(np.ceil(n_iter / conc.size))
    blocks = [np.full((per, n_spaces), 1.0 / n_spaces) if c == np.inf else rng.dirichlet([c] * n_spaces, per) for c in conc]
    gammas = np.swapaxes(np.stack(blocks), 0, 1).reshape(conc.size * per, n_spaces)[:n_iter].copy()
    gammas[0] = 1.0 / n_spaces
    return gammas


@dataclass
class BandedFit:
    """Result of ``banded_random_search`` (t = targets, k = spaces, p = features of all spaces)."""

    deltas: np.ndarray  #: (k, t) log space weights, ``log(γ_best / α_best)``
    coef: np.ndarray  #: (p, t) weights on the unscaled (centred) features
    cv_scores: np.ndarray  #: (n_iter, t) mean CV score of each draw at its best alpha (+ 1e-10·log α)
    best_alphas: np.ndarray  #: (t,) the alpha of the kept draw
    best_draw: np.ndarray  #: (t,) index of the kept draw


def banded_random_search(
    Xs: Sequence[np.ndarray],
    Y: np.ndarray,
    alphas: np.ndarray,
    gammas: np.ndarray,
    folds: Folds,
    *,
    scoring: str = "correlation",
    kind: str = "primal",
    backend: str = "numpy",
    device: str | None = None,
    target_batch: int | None = None,
    show_progress: bool = False,
) -> BandedFit:
    """Random search of banded ridge on centred spaces ``Xs`` (each (n, p_i)) and centred ``Y`` (n, t).

    ``alphas`` (n_alphas,) ascending; ``gammas`` (n_iter, k) from ``dirichlet_draws``; ``folds`` from
    ``make_folds``; ``kind``: ``"primal"`` (Gram p × p) or ``"kernel"`` (n × n). Runs on ``backend``/``device``
    in the dtype of ``Xs[0]``, except that the primal form always computes in float64: it factors XᵀX,
    whose float32 eigenvalues lose the directions a small alpha needs (himalaya takes the SVD of X instead).
    """
    dtype = np.dtype(np.float64 if kind == "primal" else Xs[0].dtype)
    ops = _ops(backend, dtype, device)
    widths = [x.shape[1] for x in Xs]
    edges = np.concatenate([[0], np.cumsum(widths)])
    n, t = Y.shape
    p = int(edges[-1])
    alphas = np.asarray(alphas, dtype=np.float64)
    eps = float(np.finfo(Xs[0].dtype).eps)  # a draw must beat the current best by more (himalaya, in the input dtype)
    with np.errstate(divide="ignore"):
        slope = np.log(alphas) * 1e-10  # himalaya: prefer larger alphas on ties
    X = ops.asarray(np.concatenate(Xs, axis=1))
    batch = t if not target_batch else int(target_batch)
    batches = [slice(s, min(s + batch, t)) for s in range(0, t, batch)]
    Ybs = [ops.asarray(Y[:, sl]) for sl in batches]
    G: Any = None  # primal: XᵀX (p, p) of all rows
    XtY: list[Any] | None = None  # primal: Xᵀ Y per target batch (p, batch)
    kernels: list[Any] = []  # kernel form: X_i X_iᵀ (n, n) per space
    if kind == "primal":
        G = X.T @ X
        XtY = [X.T @ yb for yb in Ybs]
    else:
        kernels = [X[:, int(a):int(b)] @ X[:, int(a):int(b)].T for a, b in zip(edges[:-1], edges[1:])]

    def scaled(gamma: np.ndarray) -> tuple[Any, Any, Any]:
        """(Z, Gram of Z, √γ per column) for one draw."""
        s_np = np.repeat(np.sqrt(gamma), widths).astype(dtype)
        s = ops.asarray(s_np)
        Z = X * s[None, :]
        if kind == "primal":
            return Z, G * s[:, None] * s[None, :], s
        K = kernels[0] * float(gamma[0])
        for g, Ki in zip(gamma[1:], kernels[1:]):
            K = K + Ki * float(g)
        return Z, K, s

    n_iter = gammas.shape[0]
    cv_scores = np.zeros((n_iter, t))
    best = np.full(t, -np.inf)
    best_draw = np.zeros(t, dtype=np.intp)
    best_alpha_idx = np.zeros(t, dtype=np.intp)
    bar = progress_bar(show=show_progress, total=n_iter, desc="banded ridge draws", unit="draw")
    try:
        for ii, gamma in enumerate(gammas):
            Z, Gz, s = scaled(gamma)
            scores = np.zeros((len(alphas), t))
            for train, val in folds:
                f = _factor_fold(ops, Z, Gz, train, val, kind, False)
                for b, sl in enumerate(batches):
                    xty = None if XtY is None else XtY[b] * s[:, None]
                    C, ymean_tr, Yv = _project(f, Z, Ybs[b], xty, False)
                    scores[:, sl] += _fold_scores(ops, f, C, ymean_tr, Yv, alphas, scoring, False)
                del f
            scores = scores / len(folds) + slope[:, None]
            arg = np.argmax(scores, axis=0)
            draw_scores = scores[arg, np.arange(t)]
            cv_scores[ii] = draw_scores
            better = draw_scores > best + eps
            best[better] = draw_scores[better]
            best_draw[better] = ii
            best_alpha_idx[better] = arg[better]
            bar.update(1)
        # refit: one factorization per kept draw, for the targets that kept it
        coef = np.zeros((p, t), dtype=dtype)
        for ii in np.unique(best_draw):
            cols = np.flatnonzero(best_draw == ii)
            Z, Gz, s = scaled(gammas[ii])
            e, basis = ops.eigh((Gz + Gz.T) / 2)
            e, basis = _keep(ops, e, basis)
            for start in range(0, cols.size, batch):
                sub = cols[start:start + batch]
                lam = ops.asarray(alphas[best_alpha_idx[sub]])
                Ysub = ops.asarray(Y[:, sub])
                if kind == "primal":
                    W = basis @ ((basis.T @ (Z.T @ Ysub)) / (e[:, None] + lam[None, :]))
                else:
                    W = Z.T @ (basis @ ((basis.T @ Ysub) / (e[:, None] + lam[None, :])))
                coef[:, sub] = ops.numpy(W * s[:, None])
    finally:
        bar.close()
    best_gammas = gammas[best_draw].T
    best_alphas = alphas[best_alpha_idx]
    return BandedFit(deltas=np.log(best_gammas / best_alphas[None, :]), coef=coef, cv_scores=cv_scores, best_alphas=best_alphas,
                     best_draw=best_draw)
