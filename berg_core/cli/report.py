"""``berg report RUN --output report.html``: one self-contained HTML page of a search result or a training run."""

from __future__ import annotations

import argparse

from berg_core.console import notice


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("report", help="write one self-contained HTML report of a search or training run",
                       description="The run's parameters, the selected sentences with all ROI values (search) or the "
                                   "scores (train), and the figures embedded as PNG: one .html file, nothing fetched.")
    p.add_argument("run", metavar="RUN", help="berg search's result CSV or berg train's --out folder")
    p.add_argument("--output", "-o", required=True, metavar="REPORT.html", help="the .html file to write")
    p.add_argument("--histogram", default=None, metavar="FILE", help="a search's response histogram CSV (default: found beside RUN)")
    p.add_argument("--noise-ceiling", default=None, metavar="FILE.npy", help="per-voxel noise ceiling (r) for a train folder")
    p.add_argument("--quiet", "-q", action="store_true", help="no notices on stderr; errors still print")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from berg_core.figures import report_for
    from berg_core.figures.report import write_html
    from berg_core.store.userfiles import check_output_path

    check_output_path(args.output, (".html", ".htm"), "report")
    write_html(report_for(args.run, histogram=args.histogram, noise_ceiling=args.noise_ceiling), args.output)
    notice(f"wrote {args.output}")
    return 0
