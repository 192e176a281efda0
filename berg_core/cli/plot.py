"""``berg plot FILE... [--kind K] [--output OUT.png|.svg]``: figures of results berg wrote (headless matplotlib)."""

from __future__ import annotations

import argparse
from pathlib import Path

from berg_core.console import notice
from berg_core.errors import InvalidParameterError
from berg_core.figures import KINDS


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("plot", help="draw figures of berg results (encode, search, train, brain volumes) as PNG or SVG",
                       description="Figures from files berg wrote: an encode result .npy/.csv/.h5/.nc (per-ROI bars, a heatmap "
                                   "for many rows, or --kind timecourse of --columns or of --rois means; a 3-D result such as ECoG's words x "
                                   "electrodes x lags: --kind profile, the default, per electrode the mean ± SE over the words "
                                   "against lag in s, or an electrode x lag heatmap for more than 12 electrodes), a search result CSV "
                                   "(response histogram over the corpus with the drive/suppress cut-offs, drive vs baseline vs "
                                   "suppress bars), a berg train folder (test-r histogram, per-ROI mean r, chosen alphas, r map), "
                                   "a brain volume pred.nii.gz (--kind brain: slices at the peak voxel on the reference (nilearn, "
                                   "berg-core[maps]) and a glass view of max-|value| projections (RAS-oriented, left on the left); a 4-D file "
                                   "adds the time course of --voxels). Several figures to OUT.png give OUT_<name>.png.")
    p.add_argument("files", nargs="+", metavar="FILE", help="berg encode/search output, berg train folder, or .nii.gz volume")
    p.add_argument("--kind", choices=KINDS, default="auto", help="what to draw (default auto: from the file)")
    p.add_argument("--output", "-o", default=None, metavar="OUT",
                   help="OUT.png or OUT.svg (default: <file stem>.png beside each file; a folder's figures go inside it)")
    p.add_argument("--columns", default=None, metavar="A,B",
                   help="the output columns to draw (encode, timecourse); for a profile, the electrodes")
    p.add_argument("--rows", default=None, metavar="I,J",
                   help="the rows to draw (0-based numbers, or exact labels such as a word); a profile draws each instead of the mean")
    p.add_argument("--tr", type=float, default=None, help="seconds per row, for the time axis of --kind timecourse")
    p.add_argument("--histogram", default=None, metavar="FILE",
                   help="a search's response histogram CSV (default: <stem>_histogram.csv or <name>.shards/histogram.csv)")
    p.add_argument("--noise-ceiling", default=None, metavar="FILE.npy",
                   help="per-voxel noise ceiling (r) for a train folder (default: its noise_ceiling.npy, if any)")
    p.add_argument("--rois", default=None, metavar="A,B",
                   help="draw the mean over each ROI's columns (encode results that record their ROI groups)")
    p.add_argument("--bg", default=None, metavar="FILE.nii.gz",
                   help="background image of a volume's slices (default: the reference recorded in its JSON sidecar, else none)")
    p.add_argument("--voxels", default=None, metavar="I,J,K[;I,J,K]",
                   help="voxel indices whose time courses to draw from a 4-D volume (default: the peak of the mean map)")
    p.add_argument("--quiet", "-q", action="store_true", help="no notices on stderr; errors still print")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from berg_core.figures import figures_for, save_all
    from berg_core.figures.brain import parse_voxels

    if args.output is not None:
        if Path(args.output).suffix.lower() not in (".png", ".svg"):
            raise InvalidParameterError(f"--output must end in .png or .svg, not {args.output!r}")
        if len(args.files) > 1:
            raise InvalidParameterError("--output names one figure file; give one FILE with it (or leave --output out)")
    if args.tr is not None and not args.tr > 0:
        raise InvalidParameterError(f"--tr must be a number of seconds > 0, got {args.tr}")
    columns = [c.strip() for c in args.columns.split(",") if c.strip()] if args.columns else None
    rois = [c.strip() for c in args.rois.split(",") if c.strip()] if args.rois else None
    rows = [c.strip() for c in args.rows.split(",") if c.strip()] if args.rows else None
    voxels = parse_voxels(args.voxels) if args.voxels else None
    for file in args.files:
        figs = figures_for(file, args.kind, columns=columns, tr=args.tr, histogram=args.histogram, noise_ceiling=args.noise_ceiling,
                           rois=rois, bg=args.bg, voxels=voxels, rows=rows)
        if not figs:
            raise InvalidParameterError(f"nothing to draw for {file!r} with --kind {args.kind}")
        path = Path(file)
        stem = path.name[: -len(".gz")] if path.name.lower().endswith(".gz") else path.name
        out = Path(args.output) if args.output else (path / "fig.png" if path.is_dir() else path.with_name(Path(stem).stem + ".png"))
        for written in save_all(figs, out):
            notice(f"wrote {written}")
    return 0
