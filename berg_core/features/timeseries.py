"""Signal steps shared by encoders and training: Lanczos resampling, time delays, z-scoring.

One implementation, used by berg_lebel (inference) and ``berg train`` (training).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from berg_core.errors import InvalidParameterError

#: below this |u| the Lanczos kernel is 1 to double precision (1 − L(u) ≈ π²(1 + 1/a²)u²/6 < 1e-16)
_KERNEL_ONE = 1e-9


def lanczos_kernel(u: np.ndarray, window: int = 3) -> np.ndarray:
    """L(u) = a·sin(πu)·sin(πu/a)/(π²u²), L(0) = 1, L = 0 for |u| >= a (a = ``window``), elementwise.

    |u| < 1e-9 gives exactly 1 (the formula's limit): the quotient would underflow to 0/0 = NaN for
    |u| < ~1e-154 (e.g. onsets 1e-170 s apart from a TR time).
    """
    u = np.asarray(u, dtype=np.float64)
    out = np.zeros_like(u)
    inside = np.abs(u) < window
    ui = u[inside]
    with np.errstate(invalid="ignore", divide="ignore", under="ignore"):
        vals = window * np.sin(np.pi * ui) * np.sin(np.pi * ui / window) / (np.pi**2 * ui**2)
    vals[np.abs(ui) < _KERNEL_ONE] = 1.0
    out[inside] = vals
    return out


def lanczos_matrix(times_in: np.ndarray, times_out: np.ndarray, *, tr: float, window: int = 3) -> Any:
    """Sparse (n_out, n_in) CSR matrix K with K[k, j] = L((t_out[k] − t_in[j]) / tr).

    ``K @ X`` resamples impulses X (n_in, d) at ``times_in`` (s) onto ``times_out`` (s); a weighted
    sum, not normalised. Only pairs with |t_out − t_in| < window·tr are stored, found by binary search
    on sorted ``times_in``, so cost is O(n_out · nnz_per_row) rather than O(n_out · n_in).
    """
    from scipy import sparse

    times_in = np.asarray(times_in, dtype=np.float64)
    times_out = np.asarray(times_out, dtype=np.float64)
    order = np.argsort(times_in, kind="stable")
    sorted_in = times_in[order]
    span = window * tr
    lo = np.searchsorted(sorted_in, times_out - span, side="right")
    hi = np.searchsorted(sorted_in, times_out + span, side="left")
    counts = hi - lo
    rows = np.repeat(np.arange(len(times_out)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    cols_sorted = np.repeat(lo, counts) + offsets
    cols = order[cols_sorted]
    vals = lanczos_kernel((times_out[rows] - times_in[cols]) / tr, window)
    keep = vals != 0
    return sparse.csr_matrix((vals[keep], (rows[keep], cols[keep])), shape=(len(times_out), len(times_in)))


def lanczos_resample(features: np.ndarray, times_in: np.ndarray, times_out: np.ndarray, *, tr: float, window: int = 3,
                     dtype: np.dtype | type = np.float64) -> np.ndarray:
    """Resample ``features`` (n_in, d) at ``times_in`` onto ``times_out``: (n_out, d) in ``dtype`` (float64 by
    default; float32 halves the time of the sparse product, as BERG's own float32 accumulation)."""
    features = np.asarray(features)
    if features.shape[0] != len(times_in):
        raise InvalidParameterError(f"{features.shape[0]} feature rows but {len(times_in)} times")
    kernel = lanczos_matrix(times_in, times_out, tr=tr, window=window).astype(dtype, copy=False)
    return np.asarray(kernel @ features.astype(dtype, copy=False))


def tr_grid(onsets: np.ndarray, *, tr: float = 2.0, extra_trs: int = 4) -> np.ndarray:
    """BERG's TR times: t_k = t0 + k·tr, k < ceil((onsets[-1] + extra_trs·tr − t0)/tr), t0 = onsets[0]."""
    onsets = np.asarray(onsets, dtype=np.float64)
    t0 = onsets[0]
    n_tr = int(np.ceil((onsets[-1] + extra_trs * tr - t0) / tr))
    grid: np.ndarray = t0 + np.arange(n_tr) * tr
    return grid


def zscore(x: np.ndarray, *, axis: int = 0, eps: float = 1e-10) -> np.ndarray:
    """(x − mean)/std along ``axis`` with the population std (ddof 0); std < ``eps`` is replaced by 1."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=axis, keepdims=True)
    std = x.std(axis=axis, keepdims=True)
    std = np.where(std < eps, 1.0, std)
    out: np.ndarray = (x - mean) / std
    return out


def delay(x: np.ndarray, delays: Sequence[int], *, mode: Literal["fir", "mean"] = "fir") -> np.ndarray:
    """Time-delayed copies of ``x`` (n_samples, d), zero-padded (a positive delay shifts rows down).

    ``mode="fir"``: stacked delay-major, (n, len(delays)·d), column i·d + j = feature j delayed by
    ``delays[i]`` (the LeBel/HuthLab convention). ``mode="mean"``: the average of the delayed copies,
    (n, d) (drama2brain's convention).
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise InvalidParameterError(f"delay expects (n_samples, n_features), got shape {x.shape}")
    delays = [int(d) for d in delays]
    if not delays:
        raise InvalidParameterError("give at least one delay")
    n, d = x.shape
    if mode == "fir":
        out = np.zeros((n, len(delays) * d), dtype=x.dtype)
        for i, lag in enumerate(delays):
            _shift_into(out[:, i * d : (i + 1) * d], x, lag)
        return out
    if mode == "mean":
        out = np.zeros((n, d), dtype=np.result_type(x.dtype, np.float32))
        for lag in delays:
            shifted = np.zeros_like(out)
            _shift_into(shifted, x, lag)
            out += shifted
        return out / len(delays)
    raise InvalidParameterError(f"unknown delay mode {mode!r}; use 'fir' or 'mean'")


def _shift_into(dest: np.ndarray, x: np.ndarray, lag: int) -> None:
    n = x.shape[0]
    if abs(lag) >= n:
        return
    if lag >= 0:
        dest[lag:] = x[: n - lag]
    else:
        dest[: n + lag] = x[-lag:]
