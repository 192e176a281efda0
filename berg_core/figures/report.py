"""One self-contained HTML report of a search or training run: parameters, the selected sentences, the figures.

The figures are embedded as base64 PNG (``<img src="data:image/png;base64,...">``); there is no script, no
stylesheet or image fetched from anywhere. Every string from a file or the user is escaped (``html.escape``).
"""

from __future__ import annotations

import base64
import datetime as _dt
import io
import json
from html import escape
from pathlib import Path
from typing import Any

from berg_core.figures import plots
from berg_core.figures.readers import HistogramTable, SearchTable, TrainRun

STYLE = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}table{border-collapse:collapse;font-size:13px}"
         "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}th{background:#eee}"
         "td.num{text-align:right;font-family:monospace}img{max-width:100%;border:1px solid #ddd;margin:.5em 0}")


def png_data_uri(fig: Any) -> str:
    """The figure as a ``data:image/png;base64,...`` URI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


#: a parameter's text is cut to this many characters in the report (e.g. a sidecar's list of 95,556 voxel names)
MAX_PARAM_CHARS = 2000
#: the selected-sentences table shows at most this many rows and output columns (the result CSV has them all)
MAX_TABLE_ROWS = 5000
MAX_TABLE_COLUMNS = 100


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    if len(text) > MAX_PARAM_CHARS:
        text = f"{text[:MAX_PARAM_CHARS]} … ({len(text):,} characters in all)"
    return escape(text)


def _params_table(params: dict[str, Any]) -> str:
    rows = "".join(f"<tr><th>{escape(str(k))}</th><td>{_text(v)}</td></tr>" for k, v in params.items())
    return f"<table>{rows}</table>"


def _page(title: str, body: list[str]) -> str:
    from berg_core import __version__

    stamp = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + escape(title) + "</title>"
            f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>"
            f"<p>Written by berg {escape(__version__)} on {escape(stamp)}.</p>" + "".join(body) + "</body></html>\n")


def _figures(figs: list[tuple[str, Any]]) -> list[str]:
    return ["<h2>Figures</h2>"] + [f"<figure><img alt=\"{escape(name)}\" src=\"{png_data_uri(fig)}\">"
                                   f"<figcaption>{escape(name)}</figcaption></figure>" for name, fig in figs]


def search_report(table: SearchTable, hist: HistogramTable | None, params: dict[str, Any] | None = None) -> str:
    """The HTML of a search run: ``params``, every kept sentence with all its ROI values, the figures."""
    info = {"result": str(table.path), "ROIs ranked": table.rois, "top-k": table.k, "outputs": len(table.columns),
            "histogram": str(hist.path) if hist is not None else "none found (figures without it)"}
    info.update(params or {})
    ncol, nrow = min(len(table.columns), MAX_TABLE_COLUMNS), min(len(table.hits), MAX_TABLE_ROWS)
    head = "".join(f"<th>{escape(c)}</th>" for c in ["ROI", "direction", "rank", "line", "sentence", *table.columns[:ncol]])
    rows = "".join("<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in (roi, direction, rank, line, sentence))
                   + "".join(f"<td class=\"num\">{float(v):.4g}</td>" for v in resp[:ncol]) + "</tr>"
                   for roi, direction, rank, sentence, resp, line in table.hits[:nrow])
    cut = (f"<p>Shown: the first {nrow} of {len(table.hits)} rows and {ncol} of {len(table.columns)} output columns; "
           f"{escape(table.path.name)} has them all.</p>" if (ncol, nrow) != (len(table.columns), len(table.hits)) else "")
    figs = [("drive vs suppress" + (" vs baseline" if hist is not None else ""), plots.plot_search_bars(table, hist))]
    if hist is not None:
        figs.insert(0, ("responses over the corpus", plots.plot_search_histogram(table, hist)))
    body = ["<h2>Parameters</h2>", _params_table(info), *_figures(figs),
            "<h2>Selected sentences</h2>", cut, f"<table><tr>{head}</tr>{rows}</table>"]
    return _page(f"berg search: {table.path.name}", body)


def train_report(run: TrainRun) -> str:
    """The HTML of a training run: its parameters and scores (summary.json), per-ROI means, the figures."""
    summary = run.summary
    training: dict[str, Any] = summary["training"] if isinstance(summary.get("training"), dict) else {}
    info = {"folder": str(run.path), "model id": summary.get("model_id"), "feature spaces": summary.get("feature_spaces"),
            "voxels": summary.get("n_voxels"), **{k: v for k, v in training.items() if k != "alphas"},
            "alpha grid": f"{len(run.grid)} values, {run.grid.min():.3g} … {run.grid.max():.3g}" if len(run.grid) else "none"}
    scores: dict[str, Any] = summary["scores"] if isinstance(summary.get("scores"), dict) else {}
    body = ["<h2>Parameters</h2>", _params_table(info), "<h2>Scores</h2>", _params_table(scores)]
    figs = []
    if run.cc is not None:
        means = plots.roi_means(run)
        norm = plots.roi_cc_norm(run)
        rows = "".join(f"<tr><td>{escape(name)}</td><td class=\"num\">{r:.4f}</td><td class=\"num\">"
                       f"{'' if c is None else f'{c:.4f}'}</td><td class=\"num\">{'' if name not in norm else f'{norm[name]:.4f}'}"
                       "</td></tr>" for name, (r, c) in means.items())
        body += ["<h2>Per ROI</h2>", "<table><tr><th>ROI</th><th>mean test r</th><th>noise ceiling</th>"
                 f"<th>mean cc_norm</th></tr>{rows}</table>"]
        figs += [("test-r histogram", plots.plot_train_r(run)), ("per-ROI mean test r", plots.plot_train_rois(run))]
    figs.append(("chosen alphas", plots.plot_train_alphas(run)))
    if run.r_map is not None:
        from berg_core.figures import r_map_figure

        figs.append(("test r map on the subject's reference", r_map_figure(run)))
    body += _figures(figs)
    return _page(f"berg train: {run.path.name}", body)


def write_html(text: str, path: str | Path) -> Path:
    """Write the report atomically (a ``.html`` file)."""
    from berg_core.errors import InvalidParameterError, ResourceError
    from berg_core.store.cache import atomic_path

    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise InvalidParameterError(f"the report is an .html file; give --output ending in .html, not {path.name!r}")
    try:
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    except OSError as exc:
        if isinstance(exc, ResourceError):
            raise
        raise ResourceError(f"cannot write {str(path)!r}: {exc.strerror or exc}; nothing was written") from exc
    return path
