"""Figures of berg's results, headless (matplotlib's object API: ``Figure`` + Agg/SVG canvases, never pyplot).

Every ``plot_*`` function returns the ``matplotlib.figure.Figure`` so callers (and tests) can read back what was drawn
(bar heights, histogram counts, the x of a cut-off line); ``save_figure`` writes it as PNG or SVG. matplotlib is
imported inside the functions (``berg list`` must not import it).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from berg_core.errors import InvalidParameterError, ResourceError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from berg_core.figures.readers import EncodeResult, HistogramTable, SearchTable, TrainRun

#: encode results with more rows than this (or more than ``MAX_BAR_COLUMNS`` columns) are drawn as a heatmap
MAX_BAR_ROWS = 6
MAX_BAR_COLUMNS = 40
#: search histograms: one panel per ranked ROI, at most this many
MAX_PANELS = 12
#: a histogram panel shows at most this many bars (fixed bins merged by a whole factor beyond it)
MAX_BARS = 400
COLORS = {"drive": "#cc3311", "baseline": "#888888", "suppress": "#0077bb"}
BASELINE_SEED = 0


def _figure(width: float, height: float, layout: Literal["constrained", "compressed", "tight"] | None = "constrained") -> Figure:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise InvalidParameterError(f"figures need matplotlib: pip install 'berg-core[train]' ({exc})") from exc
    return Figure(figsize=(width, height), dpi=100, layout=layout)


def _short(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as ``.png`` or ``.svg`` (by extension), atomically."""
    from berg_core.store.cache import atomic_path

    path = Path(path)
    ext = path.suffix.lower()
    if ext not in (".png", ".svg"):
        raise InvalidParameterError(f"figures are written as .png or .svg, not {path.name!r}")
    try:
        with atomic_path(path) as tmp, tmp.open("wb") as fh:
            fig.savefig(fh, format=ext[1:])
    except OSError as exc:
        if isinstance(exc, ResourceError):
            raise
        raise ResourceError(f"cannot write {str(path)!r}: {getattr(exc, 'strerror', None) or exc}; nothing was written") from exc
    return path


# ------------------------------------------------------------------------------------- encode results


def plot_encode(result: EncodeResult, *, heatmap: bool | None = None) -> Figure:
    """Per-ROI bars (one bar per row and column) for a few rows; a rows × columns heatmap for many."""
    n, c = result.values.shape
    if heatmap is None:
        heatmap = n > MAX_BAR_ROWS or c > MAX_BAR_COLUMNS
    if heatmap:
        fig = _figure(min(4 + 0.25 * c, 16), min(2.5 + 0.22 * n, 14))
        ax = fig.add_subplot(1, 1, 1)
        finite = np.abs(result.values[np.isfinite(result.values)])
        lim = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        image = ax.imshow(result.values, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
        fig.colorbar(image, ax=ax, label="predicted response")
        if c <= 60:
            ax.set_xticks(range(c), [_short(s, 20) for s in result.columns], rotation=60, ha="right", fontsize=7)
        if n <= 60:
            ax.set_yticks(range(n), [_short(s) for s in result.rows], fontsize=7)
        ax.set_xlabel("output")
        ax.set_ylabel("stimulus")
    else:
        fig = _figure(min(4 + 0.5 * c * max(n, 1) ** 0.5, 16), 4)
        ax = fig.add_subplot(1, 1, 1)
        width = 0.8 / n
        x = np.arange(c)
        for i in range(n):
            ax.bar(x - 0.4 + width * (i + 0.5), result.values[i], width=width, label=_short(result.rows[i], 50))
        ax.set_xticks(x, [_short(s, 20) for s in result.columns], rotation=45 if c > 4 else 0, ha="right" if c > 4 else "center")
        ax.axhline(0, color="k", linewidth=0.6)
        ax.set_ylabel("predicted response")
        if n > 1 or result.rows[0] != "row 0":
            ax.legend(fontsize=7)
    ax.set_title(f"{result.path.name}: {n} × {c}")
    return fig


def plot_timecourse(result: EncodeResult, columns: list[str] | None = None, *, tr: float | None = None) -> Figure:
    """The time course of ``columns`` (default: the first 5) of a timed-words result; x in s from ``tr`` or the file's time column."""
    names = columns or result.columns[:5]
    missing = [c for c in names if c not in result.columns]
    if missing:
        raise InvalidParameterError(f"{result.path.name} has no column(s) {missing[:3]}; its columns start {result.columns[:5]}")
    n = result.values.shape[0]
    x = np.arange(n) * tr if tr else (result.times if result.times is not None else np.arange(n))
    seconds = bool(tr) or result.times is not None
    fig = _figure(8, 3.5)
    ax = fig.add_subplot(1, 1, 1)
    for name in names:
        ax.plot(x, result.values[:, result.columns.index(name)], label=_short(name, 30), linewidth=1.2)
    ax.set_xlabel("time (s)" if seconds else "sample (TR)")
    ax.set_ylabel("predicted response")
    ax.set_title(f"{result.path.name}: time course")
    ax.legend(fontsize=7)
    return fig


# ------------------------------------------------------------------------------------- lag profiles (N-D results)

#: a profile draws one line per electrode up to this many; more are an electrode x lag heatmap
MAX_PROFILE_LINES = 12
#: ``--rows``: at most this many rows, one panel each
MAX_PROFILE_PANELS = 6
#: a lag label: a number with an optional time unit, e.g. ``"-2.00000s"``, ``"+0.03125s"``, ``"250ms"``, ``"3"``
_LAG = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*(s|sec|ms)?\s*$")


def lag_values(labels: list[str]) -> tuple[np.ndarray, bool] | None:
    """The labels of a lag axis as numbers: ``(values, in_seconds)``; seconds when every label carries a time unit
    (``s``/``sec``, or ``ms`` converted to s), plain numbers (e.g. index labels) when none does; None when a label is not
    a number or the units are mixed."""
    found = [_LAG.match(label) for label in labels]
    if not labels or any(m is None for m in found):
        return None
    units = {m.group(2) for m in found if m is not None}
    if None in units and len(units) > 1:
        return None
    values = np.array([float(m.group(1)) * (1e-3 if m.group(2) == "ms" else 1.0) for m in found if m is not None])
    return values, None not in units


def profile_ready(result: EncodeResult) -> bool:
    """Whether ``result`` is drawn as a lag profile by default: 3-D (rows x lines x lags) with a numeric last axis."""
    return result.axes is not None and len(result.axes) == 2 and lag_values(list(result.axes.values())[1]) is not None


def _edges(x: np.ndarray) -> np.ndarray:
    """Cell edges around the sorted centres ``x`` (midpoints; the outer cells as wide as their neighbour)."""
    if len(x) == 1:
        return np.array([x[0] - 0.5, x[0] + 0.5])
    mid = (x[1:] + x[:-1]) / 2
    return np.concatenate([[2 * x[0] - mid[0]], mid, [2 * x[-1] - mid[-1]]])


def plot_profile(result: EncodeResult, *, lines: list[str] | None = None, rows: list[int] | None = None,
                 heatmap: bool | None = None) -> Figure:
    """The lag profile of a 3-D result ``(n_rows, n_lines, n_lags)`` (ECoG: words x electrodes x lags).

    Without ``rows``: per electrode (``lines``: names on axis 1, default all, in the file's order) the mean over the rows
    against lag, with a ±SE band (``std(ddof=1) / sqrt(n_rows)``), x in s when the lag labels carry a unit (``"-2.00000s"``)
    and word onset (0 s) marked; more than ``MAX_PROFILE_LINES`` electrodes (or ``heatmap``): an electrode x lag heatmap
    of the row means, electrodes top to bottom. With ``rows`` (row numbers): one panel per row, its own values, no band.
    """
    assert result.axes is not None
    line_axis, lag_axis = list(result.axes)
    names, lags = result.axes[line_axis], result.axes[lag_axis]
    cube = result.cube()
    if lines:
        missing = [name for name in lines if name not in names]
        if missing:
            raise InvalidParameterError(f"{result.path.name} has no {line_axis}(s) {missing[:3]}; its {line_axis}s start {names[:8]} "
                                        f"(--columns picks {line_axis}s of a lag profile)")
        pick = [names.index(name) for name in lines]
        cube, names = cube[:, pick], list(lines)
    parsed = lag_values(lags)
    x, seconds = parsed if parsed is not None else (np.arange(len(lags), dtype=np.float64), False)
    order = np.argsort(x, kind="stable")
    x, cube = x[order], cube[:, :, order]
    n = len(cube)
    heat = len(names) > MAX_PROFILE_LINES if heatmap is None else heatmap
    if rows is None:
        se = cube.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 and not heat else None
        panels = [(f"mean{' ± SE' if se is not None else ''} over {n} {'words' if n != 1 else 'word'}", cube.mean(axis=0), se)]
    else:
        if len(rows) > MAX_PROFILE_PANELS:
            raise InvalidParameterError(f"--rows chose {len(rows)} rows; a profile draws at most {MAX_PROFILE_PANELS} (one panel "
                                        "each): give fewer row numbers")
        panels = [(f"row {i}: {_short(result.rows[i], 50)}", cube[i], None) for i in rows]
    per = min(2.4 + 0.16 * len(names), 9.0) if heat else 3.8
    fig = _figure(9 if heat else 8, min(per * len(panels), 28))
    if not result.labelled:
        xlabel = f"lag (index: {result.path.suffix} keeps no labels; write .h5, .nc or .csv for seconds and names)"
    elif seconds:
        xlabel = "lag (s)"
    else:
        xlabel = lag_axis
    for p, (title, values, band) in enumerate(panels):
        ax = fig.add_subplot(len(panels), 1, p + 1)
        if heat:
            _profile_heatmap(fig, ax, x, values, names)
            ax.set_ylabel(line_axis)
        else:
            for e, name in enumerate(names):
                (line,) = ax.plot(x, values[e], label=_short(name, 30), linewidth=1.3)
                if band is not None:
                    ax.fill_between(x, values[e] - band[e], values[e] + band[e], color=line.get_color(), alpha=0.2, linewidth=0)
            ax.axhline(0, color="#888888", linewidth=0.5)
            ax.set_ylabel("predicted response" + (" (mean ± SE)" if band is not None else ""))
            ax.legend(fontsize=7, ncol=2 if len(names) > 6 else 1, title=line_axis if result.labelled else f"{line_axis} (index)",
                      title_fontsize=7)
        if seconds and x[0] <= 0 <= x[-1]:
            ax.axvline(0.0, color="k", linestyle="--", linewidth=0.8)
            ax.annotate("word onset", (0.0, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -10),
                        textcoords="offset points", fontsize=7)
        if parsed is None:
            ax.set_xticks(x, [_short(s, 12) for s in np.asarray(lags)[order]], rotation=60 if len(lags) > 8 else 0, fontsize=7)
        ax.set_xlabel(xlabel)
        ax.set_title(f"{result.path.name}: {title}", fontsize=9)
    return fig


def _profile_heatmap(fig: Figure, ax: Axes, x: np.ndarray, values: np.ndarray, names: list[str]) -> None:
    """Electrodes (rows, top to bottom in the given order) x lags (x in the lags' units), diverging colours around 0
    when the values take both signs."""
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if lo < 0 < hi:
        lim = max(-lo, hi)
        cmap, vmin, vmax = "RdBu_r", -lim, lim
    else:
        cmap, vmin, vmax = "viridis", lo, hi
    mesh = ax.pcolormesh(_edges(x), np.arange(len(names) + 1) - 0.5, values, cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_ylim(len(names) - 0.5, -0.5)
    step = max(1, -(-len(names) // 60))
    ticks = list(range(0, len(names), step))
    ax.set_yticks(ticks, [_short(names[i], 16) for i in ticks], fontsize=6 if len(names) > 30 else 7)
    fig.colorbar(mesh, ax=ax, label="predicted response")


# ------------------------------------------------------------------------------------- search results


def cutoffs(table: SearchTable, roi: str) -> tuple[float, float]:
    """``(drive, suppress)`` cut-offs of ``roi``: the weakest kept drive response and the weakest kept suppress one."""
    return float(table.values(roi, "drive").min()), float(table.values(roi, "suppress").max())


def plot_search_histogram(table: SearchTable, hist: HistogramTable) -> Figure:
    """Per ROI: the fixed-bin histogram of the predicted responses over the corpus, drive/suppress cut-offs marked."""
    ranked = [r for r in table.rois if r in hist.bins]
    rois = ranked[:MAX_PANELS]
    if not rois:
        raise InvalidParameterError(f"the histogram {hist.path} has none of the ROIs of {table.path.name} ({table.rois[:3]}); "
                                    "give the histogram written by the same search")
    cols = min(len(rois), 3)
    rows = -(-len(rois) // cols)
    fig = _figure(4.2 * cols, 3.2 * rows)
    for i, roi in enumerate(rois):
        ax = fig.add_subplot(rows, cols, i + 1)
        starts, ends, counts = display_bins(*hist.bins[roi])
        ax.bar(starts, counts, width=ends - starts, align="edge", color="#bbbbbb", edgecolor="none", label="corpus")
        drive, suppress = cutoffs(table, roi)
        ax.axvline(drive, color=COLORS["drive"], linestyle="--", label=f"drive ≥ {drive:.3g}")
        ax.axvline(suppress, color=COLORS["suppress"], linestyle="--", label=f"suppress ≤ {suppress:.3g}")
        ax.set_title(_short(roi, 40), fontsize=9)
        ax.set_xlabel("predicted response")
        ax.set_ylabel("sentences")
        ax.legend(fontsize=6)
    more = f"; the first {len(rois)} of {len(ranked)} ROIs" if len(ranked) > len(rois) else ""
    fig.suptitle(f"{table.path.name}: responses over the corpus ({int(sum(hist.bins[rois[0]][2]))} sentences{more})")
    return fig


def display_bins(starts: np.ndarray, ends: np.ndarray, counts: np.ndarray, max_bars: int = MAX_BARS) -> tuple[np.ndarray, ...]:
    """The non-empty fixed bins, merged ``f`` at a time (exact sums) when they span more than ``max_bars`` bins."""
    width = float(np.median(ends - starts))
    index = np.round(starts / width).astype(np.int64)
    factor = int(-(-(index.max() - index.min() + 1) // max_bars))
    if factor <= 1:
        return starts, ends, counts
    groups, inverse = np.unique(index // factor, return_inverse=True)
    merged = np.bincount(inverse, weights=counts).astype(np.int64)
    return groups * factor * width, (groups + 1) * factor * width, merged


def baseline_sample(hist: HistogramTable, roi: str, size: int, seed: int = BASELINE_SEED) -> np.ndarray:
    """A random sample of ``size`` corpus responses of ``roi`` drawn from its histogram (seeded; uniform within a bin).

    The histogram holds every sentence's response to within one bin width, so this is a random baseline sample of the
    corpus without a second pass over it.
    """
    starts, ends, counts = hist.bins[roi]
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(counts), size=size, p=counts / counts.sum())
    return np.asarray(starts[picks] + rng.random(size) * (ends[picks] - starts[picks]), dtype=np.float64)


def baseline_size(hist: HistogramTable, roi: str, k: int) -> int:
    """Sentences in the random baseline sample: ``max(k, 100)``, at most the corpus size."""
    return int(min(max(k, 100), hist.bins[roi][2].sum()))


def _se(values: np.ndarray) -> float:
    return float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


def plot_search_bars(table: SearchTable, hist: HistogramTable | None = None) -> Figure:
    """Per ROI: mean ± SE of the drive, (random baseline,) and suppress sentences' responses in that ROI."""
    groups = ["drive", "baseline", "suppress"] if hist is not None else ["drive", "suppress"]
    rois = table.rois[:MAX_BAR_COLUMNS]
    fig = _figure(min(3 + 1.2 * len(rois), 16), 4)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(rois))
    width = 0.8 / len(groups)
    for g, group in enumerate(groups):
        means, ses = [], []
        n_of = {"drive": table.k, "suppress": table.k}
        for roi in rois:
            if group == "baseline":
                vals = baseline_sample(hist, roi, baseline_size(hist, roi, table.k)) if hist is not None and roi in hist.bins else np.array([np.nan])
            else:
                vals = table.values(roi, group)
            n_of[group] = len(vals)
            means.append(float(np.mean(vals)))
            ses.append(_se(vals))
        ax.bar(x - 0.4 + width * (g + 0.5), means, width=width, yerr=ses, capsize=3, color=COLORS[group],
               label=f"{group} (n={n_of[group]}{', random, from the histogram' if group == 'baseline' else ''})")
    ax.set_xticks(x, [_short(r, 20) for r in rois], rotation=45 if len(rois) > 4 else 0, ha="right" if len(rois) > 4 else "center")
    ax.axhline(0, color="k", linewidth=0.6)
    ax.set_ylabel("predicted response (mean ± SE)")
    more = f" (the first {len(rois)} of {len(table.rois)} ROIs)" if len(table.rois) > len(rois) else ""
    ax.set_title(f"{table.path.name}: drive vs suppress" + (" vs baseline" if hist is not None else "") + more)
    ax.legend(fontsize=7)
    return fig


# ------------------------------------------------------------------------------------- training runs


def plot_train_r(run: TrainRun) -> Figure:
    """Histogram of the test correlations (50 bins), the mean marked."""
    if run.cc is None:
        raise InvalidParameterError(f"{run.path} has no test correlations (trained without --test rows); nothing to plot")
    cc = run.cc[np.isfinite(run.cc)]
    fig = _figure(6, 3.8)
    ax = fig.add_subplot(1, 1, 1)
    ax.hist(cc, bins=50, color="#4477aa")
    ax.axvline(float(np.mean(cc)), color="k", linestyle="--", linewidth=1, label=f"mean {np.mean(cc):.3f}")
    ax.set_xlabel("Pearson r (test)")
    ax.set_ylabel("voxels")
    ax.set_title(f"test correlation ({len(cc)} voxels)")
    ax.legend(fontsize=8)
    return fig


def roi_means(run: TrainRun) -> dict[str, tuple[float, float | None]]:
    """Per ROI (or ``all voxels``): ``(mean test r, mean noise ceiling or None)``."""
    assert run.cc is not None
    groups = run.rois or {"all voxels": list(range(len(run.cc)))}
    return {name: (float(np.nanmean(run.cc[idx])), float(np.nanmean(run.noise_ceiling[idx])) if run.noise_ceiling is not None else None)
            for name, idx in groups.items()}


def roi_cc_norm(run: TrainRun) -> dict[str, float]:
    """Per ROI (or ``all voxels``): the mean normalised correlation (``cc_norm_<suffix>.npy``), or {} without that file."""
    if run.cc_norm is None:
        return {}
    groups = run.rois or {"all voxels": list(range(len(run.cc_norm)))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an ROI of voxels without a ceiling
        return {name: float(np.nanmean(run.cc_norm[idx])) for name, idx in groups.items()}


def plot_train_rois(run: TrainRun) -> Figure:
    """Per ROI: mean test r (bars), and the mean noise ceiling (a black tick) where one is available."""
    if run.cc is None:
        raise InvalidParameterError(f"{run.path} has no test correlations (trained without --test rows); nothing to plot")
    means = roi_means(run)
    names = list(means)
    fig = _figure(min(3 + 0.6 * len(names), 16), 4)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(names))
    ax.bar(x, [means[n][0] for n in names], color="#4477aa", label="mean test r")
    if run.noise_ceiling is not None:
        ax.scatter(x, np.array([np.nan if means[n][1] is None else means[n][1] for n in names], dtype=np.float64), marker="_", s=600, color="k", zorder=3, label="noise ceiling")
    ax.set_xticks(x, [_short(n, 20) for n in names], rotation=45 if len(names) > 4 else 0, ha="right" if len(names) > 4 else "center")
    ax.axhline(0, color="k", linewidth=0.6)
    ax.set_ylabel("Pearson r (test)")
    ax.set_title("per-ROI mean test r" + ("" if run.noise_ceiling is not None else " (no noise ceiling given)"))
    ax.legend(fontsize=8)
    return fig


def plot_train_alphas(run: TrainRun) -> Figure:
    """Histogram of the chosen alphas over the grid (one bar per grid value, log x), the grid's edges marked."""
    grid = np.sort(run.grid[np.isfinite(run.grid) & (run.grid > 0)])
    chosen = run.alphas[np.isfinite(run.alphas)]
    fig = _figure(6, 3.8)
    ax = fig.add_subplot(1, 1, 1)
    if len(grid) and len(chosen):
        values, counts = np.unique(chosen, return_counts=True)
        on_grid = np.isclose(values[:, None], grid[None, :], rtol=1e-6).any(axis=1)
        ax.bar(values, counts, width=values * 0.25, color="#4477aa", label="chosen (per voxel)")
        if not on_grid.all():
            ax.text(0.02, 0.95, f"{int(counts[~on_grid].sum())} voxels off the grid (banded)", transform=ax.transAxes, fontsize=7, va="top")
        ax.axvline(grid[0], color="#cc3311", linestyle="--", label=f"grid min {grid[0]:.3g}")
        ax.axvline(grid[-1], color="#cc3311", linestyle=":", label=f"grid max {grid[-1]:.3g}")
        ax.set_xscale("log")
        edge = int(counts[np.isclose(values, grid[0]) | np.isclose(values, grid[-1])].sum())
        ax.set_title(f"chosen alphas ({len(chosen)} voxels; {edge} at a grid edge)")
    else:
        ax.set_title("chosen alphas: none recorded")
    ax.set_xlabel("alpha")
    ax.set_ylabel("voxels")
    ax.legend(fontsize=7)
    return fig


def figure_data(fig: Any) -> list[dict[str, Any]]:
    """What a figure shows, per axes: bar heights and x, line x positions (for tests and reports)."""
    out = []
    for ax in fig.axes:
        bars = [p for p in ax.patches if p.__class__.__name__ == "Rectangle"]
        out.append({"title": ax.get_title(), "bar_x": [b.get_x() for b in bars], "bar_height": [b.get_height() for b in bars],
                    "vlines": [float(line.get_xdata()[0]) for line in ax.get_lines() if len(set(np.atleast_1d(line.get_xdata()))) == 1]})
    return out
