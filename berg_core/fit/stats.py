"""Statistics for encoding models: correlations, permutation tests, FDR, noise ceilings.

Shapes: responses and predictions are (n_samples, n_voxels); every function works column-wise and
returns one value per voxel (float64).

Permutation tests (``block_permutation_test``): the rows of the predictions are shuffled in contiguous
blocks, so the null keeps their autocorrelation. A block shorter than the correlation length of the
data makes the test liberal (measured on simulated AR(1) noise with block 10: P(p < 0.05) = 0.11 at
AR 0.9, 0.23 at AR 0.98); ``block=None`` picks the block from the autocorrelation of the residuals
(``auto_block``), and a given block shorter than their correlation length warns
(``PermutationBlockWarning``). ``mode="voxel"`` (default): each voxel against its own null;
``mode="pooled"`` (drama2brain): one null pooled over voxels, miscalibrated when voxels differ in
autocorrelation (too liberal for the smooth ones, too conservative for the rough ones).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np

from berg_core.console import progress_bar
from berg_core.errors import InvalidParameterError


def _pair(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(y_true, dtype=np.float64)
    b = np.asarray(y_pred, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if b.ndim == 1:
        b = b[:, None]
    if a.shape != b.shape:
        raise InvalidParameterError(f"responses {a.shape} and predictions {b.shape} must have the same shape")
    if a.shape[0] < 2:
        raise InvalidParameterError(f"need at least 2 samples to correlate, got {a.shape[0]}")
    return a, b


def _unit(x: np.ndarray) -> np.ndarray:
    """Columns centred and scaled to unit norm (a zero column stays zero)."""
    xc: np.ndarray = x - x.mean(0)
    norm = np.sqrt((xc * xc).sum(0))
    return xc / np.where(norm > 0, norm, 1.0)


def pearson_r(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Pearson correlation per column, (n_voxels,); a constant column gives 0."""
    a, b = _pair(y_true, y_pred)
    r: np.ndarray = (_unit(a) * _unit(b)).sum(0)
    return r


def r2_score(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Coefficient of determination per column, 1 − SSE/SST (SST about the column mean); constant column gives 0."""
    a, b = _pair(y_true, y_pred)
    sst = ((a - a.mean(0)) ** 2).sum(0)
    sse = ((a - b) ** 2).sum(0)
    return np.where(sst > 0, 1.0 - sse / np.where(sst > 0, sst, 1.0), 0.0)


def split_correlation(y_true: np.ndarray, parts: np.ndarray) -> np.ndarray:
    """Per-space share of the joint correlation (n_spaces, n_voxels), summing to r(y, Σ parts).

    ``parts`` (n_spaces, n_samples, n_voxels): ``r_i = cov(part_i, y) / (std(Σ parts)·std(y))``
    (himalaya's ``correlation_score_split``, the product measure).
    """
    y = np.asarray(y_true, dtype=np.float64)
    parts = np.asarray(parts, dtype=np.float64)
    if parts.ndim != 3 or parts.shape[1:] != y.shape:
        raise InvalidParameterError(f"parts must be (n_spaces, {y.shape[0]}, {y.shape[1]}), got {parts.shape}")
    yc = y - y.mean(0)
    pc = parts - parts.mean(1, keepdims=True)
    total = pc.sum(0)
    sy = np.sqrt((yc * yc).mean(0))
    sp = np.sqrt((total * total).mean(0))
    den = sy * sp
    cov = (pc * yc[None]).mean(1)
    return np.where(den > 0, cov / np.where(den > 0, den, 1.0), 0.0)


class PermutationBlockWarning(UserWarning):
    """A permutation block shorter than the residuals' correlation length: the p-values may be liberal."""


def autocorrelation(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Sample autocorrelation (max_lag + 1, n_columns) of each column of ``x`` (n_samples, n_columns) at lags
    0..max_lag (biased estimator, lag 0 = 1; a constant column gives 0 beyond lag 0)."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    n = a.shape[0]
    max_lag = int(min(max_lag, n - 1))
    ac = a - a.mean(0)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    f = np.fft.rfft(ac, n=size, axis=0)
    acov = np.fft.irfft(f * np.conj(f), n=size, axis=0)[: max_lag + 1]
    var = acov[0]
    out = np.where(var > 0, acov / np.where(var > 0, var, 1.0), 0.0)
    out[0] = 1.0
    return out


def correlation_length(residuals: np.ndarray, *, threshold: float | None = None, quantile: float = 0.9) -> int:
    """Correlation length in samples of ``residuals`` (n_samples, n_voxels): the lag at which the
    autocorrelation falls below ``threshold`` (default ``max(0.05, 2/sqrt(n))``, above the estimator's noise).

    Per voxel from its lag-1 autocorrelation ρ as an AR(1) decay, ``log(threshold)/log(ρ)`` (the lag-1
    estimate is precise where the tail of a sample autocorrelation is not), the ``quantile`` over voxels;
    and at least the first lag where the autocorrelation averaged over voxels falls below ``threshold``
    (which catches slower-than-exponential decay). White noise gives 1; AR(1) 0.9 with n = 1,000 about 27.
    """
    a = np.asarray(residuals, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    n = a.shape[0]
    if n < 3:
        return 1
    thr = max(0.05, 2.0 / np.sqrt(n)) if threshold is None else float(threshold)
    acf = autocorrelation(a, n // 2)
    rho = np.clip(acf[1], 0.0, 1.0 - 1e-12)
    with np.errstate(divide="ignore"):
        per_voxel = np.where(rho > thr, np.log(thr) / np.log(rho), 1.0)
    below = acf[1:].mean(1) < thr
    mean_crossing = int(np.argmax(below)) + 1 if below.any() else acf.shape[0]
    return max(1, int(np.ceil(np.quantile(per_voxel, quantile))), mean_crossing)


#: the automatic block spans this many correlation lengths
BLOCK_FACTOR = 3
#: ... and leaves at least this many blocks
MIN_BLOCKS = 8


def auto_block(residuals: np.ndarray) -> int:
    """Block length (samples) for a block permutation of ``residuals``' rows (n_samples, n_voxels):
    ``BLOCK_FACTOR`` × ``correlation_length``, at most n_samples / ``MIN_BLOCKS`` (with a
    ``PermutationBlockWarning`` when that cap binds: the test set is short for this autocorrelation)."""
    n = np.asarray(residuals).shape[0]
    length = correlation_length(residuals)
    cap = max(1, n // MIN_BLOCKS)
    if BLOCK_FACTOR * length > cap:
        warnings.warn(f"the residuals stay correlated over {length} samples but the {n} test samples allow blocks of at most {cap}: "
                      f"permutation p-values may be liberal; hold out a longer test set", PermutationBlockWarning, stacklevel=3)
    return int(min(BLOCK_FACTOR * length, cap))


def permutation_block(y_true: np.ndarray, y_pred: np.ndarray, block: int | None = None) -> int:
    """The block length to use: ``auto_block`` of the residuals ``y_true − y_pred`` when ``block`` is None;
    else ``block``, with a ``PermutationBlockWarning`` when it is shorter than their correlation length."""
    a, b = _pair(y_true, y_pred)
    if block is None:
        return auto_block(a - b)
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1:
        raise InvalidParameterError(f"permutation block must be a whole number >= 1 of samples (or None: from the data), got {block!r}")
    length = correlation_length(a - b)
    if block < length:
        warnings.warn(f"permutation block {block} is shorter than the residuals' correlation length ({length} samples): p-values may be "
                      f"liberal; leave the block unset to pick it from the data", PermutationBlockWarning, stacklevel=3)
    return int(block)


def block_permutation(n_samples: int, block: int, rng: np.random.Generator) -> np.ndarray:
    """Row order with contiguous blocks of ``block`` rows shuffled (the last block may be shorter)."""
    if block < 1:
        raise InvalidParameterError(f"permutation block must be >= 1 sample, got {block}")
    starts = np.arange(0, n_samples, block)
    return np.concatenate([np.arange(s, min(s + block, n_samples)) for s in rng.permutation(starts)])


def permutation_null(
    y_true: np.ndarray, y_pred: np.ndarray, *, n_permutations: int = 1000, block: int = 10, seed: int = 0, show_progress: bool = False
) -> np.ndarray:
    """Correlations (n_permutations, n_voxels) of ``y_true`` with block-permuted rows of ``y_pred``."""
    a, b = _pair(y_true, y_pred)
    if n_permutations < 1:
        raise InvalidParameterError(f"n_permutations must be >= 1, got {n_permutations}")
    n = a.shape[0]
    if n < 2 * block:
        raise InvalidParameterError(f"block permutation needs at least 2 blocks: {n} test samples with blocks of {block}")
    ua, ub = _unit(a), _unit(b)
    rng = np.random.default_rng(seed)
    null = np.empty((n_permutations, a.shape[1]), dtype=np.float64)
    bar = progress_bar(show=show_progress, total=n_permutations, desc="permutations", unit="perm")
    try:
        for i in range(n_permutations):
            null[i] = np.einsum("ij,ij->j", ua, ub[block_permutation(n, block, rng)])
            bar.update(1)
    finally:
        bar.close()
    return null


def permutation_pvalues(r: np.ndarray, null: np.ndarray, *, mode: Literal["pooled", "voxel"] = "voxel") -> np.ndarray:
    """One-sided empirical p-values (H1: r > 0) from a permutation null (n_permutations, n_voxels).

    ``mode="voxel"``: p_v = (k_v + 1)/(N + 1), k_v = #{permutations with r ≥ r_v for voxel v}.
    ``mode="pooled"`` (drama2brain): the null correlations of all voxels are pooled into one
    distribution of M = N·n_voxels values and p_v = (k + 1)/(M + 1), k = #{pooled values ≥ r_v}.
    """
    r = np.asarray(r, dtype=np.float64).ravel()
    null = np.asarray(null, dtype=np.float64)
    if null.ndim != 2 or null.shape[1] != r.shape[0]:
        raise InvalidParameterError(f"null must be (n_permutations, {r.shape[0]}), got {null.shape}")
    if mode == "voxel":
        k = (null >= r[None, :]).sum(0)
        p: np.ndarray = (k + 1.0) / (null.shape[0] + 1.0)
        return p
    if mode == "pooled":
        pooled = np.sort(null.ravel())
        k = pooled.size - np.searchsorted(pooled, r, side="left")
        return (k + 1.0) / (pooled.size + 1.0)
    raise InvalidParameterError(f"unknown permutation mode {mode!r}; use 'pooled' or 'voxel'")


def block_permutation_test(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    n_permutations: int = 1000,
    block: int | None = None,
    mode: Literal["pooled", "voxel"] = "voxel",
    seed: int = 0,
    show_progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(r, p): per-voxel test correlation and its block-permutation p-value (see ``permutation_pvalues``);
    ``block=None``: from the data (``permutation_block``)."""
    r = pearson_r(y_true, y_pred)
    block = permutation_block(y_true, y_pred, block)
    null = permutation_null(y_true, y_pred, n_permutations=n_permutations, block=block, seed=seed, show_progress=show_progress)
    return r, permutation_pvalues(r, null, mode=mode)


def fdr_bh(pvalues: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values: p_adj(i) = min_{j ≥ i} m·p_(j)/j, capped at 1, input order.

    A voxel is significant at FDR level q when ``fdr_bh(p) <= q``. NaN p-values stay NaN and do not
    count in m.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    flat = p.ravel()
    ok = np.flatnonzero(np.isfinite(flat))
    if ok.size == 0:
        return out
    if np.any(flat[ok] < 0) or np.any(flat[ok] > 1):
        raise InvalidParameterError("p-values must lie in [0, 1]")
    m = ok.size
    order = np.argsort(flat[ok], kind="stable")
    ranked = flat[ok][order] * m / np.arange(1, m + 1)
    adjusted = np.minimum(np.minimum.accumulate(ranked[::-1])[::-1], 1.0)
    res = np.empty(m)
    res[order] = adjusted
    out_flat = out.ravel()
    out_flat[ok] = res
    return out_flat.reshape(p.shape)


@dataclass(frozen=True)
class NoiseCeiling:
    """Schoppe et al. (2016) noise ceiling per voxel: ``ccmax``, ``signal_power``, ``response_power``."""

    ccmax: np.ndarray
    signal_power: np.ndarray
    response_power: np.ndarray


def noise_ceiling(repeats: np.ndarray, *, drop_first: int = 0, floor: float | None = None, sp_floor: float = 1e-10) -> NoiseCeiling:
    """Noise ceiling from repeated presentations ``repeats`` (N repeats, T samples, V voxels).

    After dropping the first ``drop_first`` samples (LeBel: 40 TRs): NP = mean over repeats of each
    repeat's temporal variance (ddof 0); SP = (N·var(mean over repeats) − NP)/(N − 1), floored at
    ``sp_floor``; CCmax = 1/sqrt(1 + (NP/SP − 1)/N), floored at ``floor`` when given (BERG: 0.25).
    """
    x = np.asarray(repeats, dtype=np.float64)
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3:
        raise InvalidParameterError(f"repeats must be (n_repeats, n_samples, n_voxels), got shape {x.shape}")
    x = x[:, drop_first:]
    n_rep, n_t = x.shape[:2]
    if n_rep < 2 or n_t < 2:
        raise InvalidParameterError(f"noise ceiling needs >= 2 repeats and >= 2 samples after dropping {drop_first}; got {n_rep} × {n_t}")
    if not np.all(np.isfinite(x)):
        raise InvalidParameterError("repeats contain NaN or inf")
    response_power = x.var(axis=1).mean(0)
    signal_power = np.maximum((n_rep * x.mean(0).var(axis=0) - response_power) / (n_rep - 1), sp_floor)
    ccmax = 1.0 / np.sqrt(1.0 + (response_power / signal_power - 1.0) / n_rep)
    if floor is not None:
        ccmax = np.maximum(ccmax, floor)
    return NoiseCeiling(ccmax=ccmax, signal_power=signal_power, response_power=response_power)


def cc_norm(r: np.ndarray, ccmax: np.ndarray) -> np.ndarray:
    """Normalised correlation r / CCmax per voxel."""
    r = np.asarray(r, dtype=np.float64)
    ccmax = np.asarray(ccmax, dtype=np.float64)
    if np.any(ccmax <= 0):
        raise InvalidParameterError("CCmax must be > 0 (use a floor)")
    normalised: np.ndarray = r / ccmax
    return normalised
