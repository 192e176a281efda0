"""Figures and HTML reports of berg's results (``berg plot``, ``berg report``, and the defaults of search/train).

Layer: reads result files (``readers``), draws them (``plots``, matplotlib imported lazily, headless), and writes one
self-contained HTML page per run (``report``). It sits beside ``scale``, below ``cli``.

Kinds (``render``): ``encode`` (per-ROI bars, or a heatmap for many rows), ``heatmap``, ``timecourse`` (chosen columns
over time), ``profile`` (a 3-D result such as ECoG's words x electrodes x lags: per electrode the mean ± SE over the words
against lag in s, or an electrode x lag heatmap for many electrodes; the default for 3-D results with numeric lag
labels; ``--rows`` draws chosen rows instead of the mean, ``--columns`` chooses electrodes), ``search`` (histogram over the corpus with the cut-offs, and drive/baseline/suppress bars),
``search-histogram``, ``search-bars``, ``train`` (test-r histogram, per-ROI r, chosen alphas, and the r map on the
subject's reference when the folder has one), ``train-r``, ``train-rois``, ``train-alphas``, ``train-map``; for a brain
volume (``.nii.gz``/``.nii``, ``brain``): ``ortho`` (slices at the peak, nilearn), ``glass`` (max-|value| projections)
and ``timecourse`` (voxels of a 4-D file); see ``brain``. ``--rois A,B`` draws each ROI's mean over its columns (when
the result records its ROI groups). A kind with several figures written to ``OUT.png`` gives ``OUT_<name>.png`` each.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from berg_core.errors import InvalidParameterError

KINDS = ("auto", "encode", "bars", "heatmap", "timecourse", "profile", "search", "search-histogram", "search-bars",
         "train", "train-r", "train-rois", "train-alphas", "train-map", "brain", "ortho", "glass")
#: kinds that draw only a brain volume
BRAIN_KINDS = ("brain", "ortho", "glass")


def figures_for(path: str | Path, kind: str = "auto", *, columns: list[str] | None = None, tr: float | None = None,
                histogram: str | Path | None = None, noise_ceiling: str | Path | None = None, rois: list[str] | None = None,
                bg: str | Path | None = None, voxels: list[tuple[int, int, int]] | None = None,
                rows: list[str] | None = None) -> list[tuple[str, Any]]:
    """``[(name, matplotlib Figure), ...]`` of the result at ``path`` (checked before anything is drawn).

    ``rows`` (encode results): row numbers or labels to draw instead of all rows (a profile: one panel per row instead
    of the mean); ``columns``: output columns, or for a profile the electrodes (names on the 3-D result's axis 1)."""
    from berg_core.figures import plots, readers

    if kind not in KINDS:
        raise InvalidParameterError(f"--kind must be one of {', '.join(KINDS)}; got {kind!r}")
    found = readers.result_kind(path)
    if found == "volume":
        from berg_core.figures.brain import volume_figures

        if columns or rois or rows:
            raise InvalidParameterError("--columns/--rois/--rows pick parts of an encode result; for a volume choose voxels with --voxels i,j,k")
        return volume_figures(path, kind, bg=bg, voxels=voxels)
    if kind in BRAIN_KINDS or voxels or bg is not None:
        raise InvalidParameterError(f"{Path(path).name} is not a brain volume (.nii.gz or .nii); --kind brain/ortho/glass, "
                                    "--voxels and --bg are for volumes")
    base = found if kind == "auto" else kind.split("-")[0]
    base = "encode" if base in ("bars", "heatmap", "timecourse", "profile") else base
    if rows and base != "encode":
        raise InvalidParameterError("--rows picks rows of an encode result; it is not for a search result or a train folder")
    if base == "train":
        run = readers.read_train_run(path, noise_ceiling)
        figs = {"r_hist": plots.plot_train_r, "roi_r": plots.plot_train_rois, "alphas": plots.plot_train_alphas, "r_map": r_map_figure}
        wanted = {"train-r": ["r_hist"], "train-rois": ["roi_r"], "train-alphas": ["alphas"], "train-map": ["r_map"]}.get(
            kind, (["r_hist", "roi_r", "alphas"] if run.cc is not None else ["alphas"]) + (["r_map"] if run.r_map and _installed("nibabel") else []))
        return [(name, figs[name](run)) for name in wanted]
    if base == "search":
        table = readers.read_search_result(path)
        hpath = Path(histogram) if histogram else readers.histogram_path_for(Path(path))
        hist = readers.read_histogram(hpath) if hpath is not None else None
        out = []
        if kind in ("auto", "search", "search-histogram"):
            if hist is None:
                if kind == "search-histogram":
                    raise InvalidParameterError(f"no response histogram found beside {str(path)!r}; give it with --histogram FILE")
            else:
                out.append(("histogram", plots.plot_search_histogram(table, hist)))
        if kind in ("auto", "search", "search-bars"):
            out.append(("bars", plots.plot_search_bars(table, hist)))
        return out
    result = readers.read_encode_result(path)
    picked = result.row_indices(rows) if rows else None
    if kind == "profile" or (kind == "auto" and not rois and plots.profile_ready(result)):
        if rois:
            raise InvalidParameterError("--rois draws ROI means of a 2-D result; a profile picks electrodes with --columns")
        if result.axes is None or len(result.axes) != 2:
            shape = "x".join(str(k) for k in (len(result.values), *(len(v) for v in (result.axes or {"column": result.columns}).values())))
            raise InvalidParameterError(f"--kind profile draws a 3-D result (rows x electrodes x lags); {Path(path).name} is {shape}: "
                                        "use --kind bars, heatmap or timecourse")
        if not result.labelled:
            from berg_core.console import notice

            notice(f"{Path(path).name} keeps no axis labels: electrodes and lags are drawn by index; write .h5, .nc or .csv "
                   "(berg encode --output pred.h5) to keep their names and seconds")
        return [("profile", plots.plot_profile(result, lines=columns, rows=picked))]
    if picked is not None:
        result = result.pick_rows(picked)
    if rois:
        if columns:
            raise InvalidParameterError("give --columns or --rois, not both")
        result = result.roi_means(rois)
    if kind == "timecourse":
        return [("timecourse", plots.plot_timecourse(result, columns, tr=tr))]
    if columns:
        missing = [c for c in columns if c not in result.columns]
        if missing:
            raise InvalidParameterError(f"{Path(path).name} has no column(s) {missing[:3]}; its columns start {result.columns[:5]}")
        idx = [result.columns.index(c) for c in columns]
        result = readers.EncodeResult(result.path, result.values[:, idx], list(columns), result.rows, result.times)
    heat = {"bars": False, "heatmap": True}.get(kind)
    return [("heatmap" if heat or (heat is None and _many(result)) else "bars", plots.plot_encode(result, heatmap=heat))]


def r_map_figure(run: Any) -> Any:
    """The ortho view of a train folder's r map on its ``space_reference.nii.gz``."""
    from berg_core.figures.brain import plot_volume_file

    if run.r_map is None:
        raise InvalidParameterError(f"{run.path} has no r map (map_r_<suffix>.nii.gz: written for encoders with a subject space)")
    return plot_volume_file(run.r_map, bg=run.reference, title="test r")


def _many(result: Any) -> bool:
    from berg_core.figures.plots import MAX_BAR_COLUMNS, MAX_BAR_ROWS

    return bool(result.values.shape[0] > MAX_BAR_ROWS or result.values.shape[1] > MAX_BAR_COLUMNS)


def save_all(figs: list[tuple[str, Any]], output: str | Path) -> list[Path]:
    """Write the figures: one to ``output`` itself, several to ``<stem>_<name><ext>`` beside it."""
    from berg_core.figures.plots import save_figure

    output = Path(output)
    if output.suffix.lower() not in (".png", ".svg"):
        raise InvalidParameterError(f"--output must end in .png or .svg, not {output.name!r}")
    if len(figs) == 1:
        return [save_figure(figs[0][1], output)]
    return [save_figure(fig, output.with_name(f"{output.stem}_{name}{output.suffix}")) for name, fig in figs]


def report_for(path: str | Path, *, histogram: str | Path | None = None, noise_ceiling: str | Path | None = None,
               params: dict[str, Any] | None = None) -> str:
    """The HTML report of a search result CSV or a ``berg train`` folder."""
    from berg_core.figures import readers, report

    kind = readers.result_kind(path)
    if kind == "train":
        return report.train_report(readers.read_train_run(path, noise_ceiling))
    if kind == "search":
        table = readers.read_search_result(path)
        hpath = Path(histogram) if histogram else readers.histogram_path_for(Path(path))
        params = {**readers.read_sidecar(Path(path)), **(params or {})}
        return report.search_report(table, readers.read_histogram(hpath) if hpath is not None else None, params)
    raise InvalidParameterError(f"{str(path)!r} is neither a berg search result CSV nor a berg train folder; "
                                "berg report reads one of those (use berg plot for an encode result)")


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def have_matplotlib() -> bool:
    """Whether matplotlib can be imported (it comes with the ``train`` extra), without importing it."""
    return _installed("matplotlib")


def write_defaults(path: str | Path, *, params: dict[str, Any] | None = None, histogram: str | Path | None = None) -> list[Path]:
    """The default figures and report of a search result (``<stem>_<name>.png``, ``<stem>_report.html`` beside it)
    or a training folder (``fig_<name>.png``, ``report.html`` inside it); none, with a notice, without matplotlib."""
    from berg_core.figures.report import write_html

    if not have_matplotlib():
        from berg_core.console import notice

        notice("figures and report skipped: they need matplotlib (pip install 'berg-core[train]'); the results are written")
        return []
    path = Path(path)
    figs = figures_for(path, histogram=histogram)
    if path.is_dir():
        written = save_all(figs, path / "fig.png") if len(figs) > 1 else save_all(figs, path / f"fig_{figs[0][0]}.png")
        report = path / "report.html"
    else:
        written = [*(save_all(figs, path.with_suffix(".png")) if len(figs) > 1 else
                     save_all(figs, path.with_name(f"{path.stem}_{figs[0][0]}.png")))]
        report = path.with_name(f"{path.stem}_report.html")
    written.append(write_html(report_for(path, histogram=histogram, params=params), report))
    return written


__all__ = ["KINDS", "figures_for", "report_for", "save_all", "write_defaults"]
