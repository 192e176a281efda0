"""``berg train --features F.npy [F2.h5 ...] --responses R.npy --out DIR [...]``: fit an encoding model."""

from __future__ import annotations

import argparse

from berg_core.cli.common import add_progress_options
from berg_core.console import notice
from berg_core.errors import InvalidParameterError
from berg_core.scale.grid import add_grid_options, run_grid


def _alphas(text: str) -> list[float]:
    """``"1e-2,1,100"`` or ``"logspace:-12:12:25"``."""
    import numpy as np

    if text.startswith("logspace:"):
        try:
            lo, hi, num = text.split(":")[1:]
            return list(np.logspace(float(lo), float(hi), int(num)))
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"--alphas {text!r}: use logspace:LO:HI:NUM (exponents) or a comma list") from exc
    try:
        return [float(v) for v in text.replace(",", " ").split()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--alphas {text!r}: not numbers") from exc


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "train",
        help="fit a ridge encoding model (features -> fMRI responses) and write an encoder folder",
        description="Fit per-voxel ridge (one feature space) or banded ridge (several) with CV-chosen alphas, score it on "
        "held-out rows with permutation tests + FDR, and write drama2brain-style outputs plus a trained-encoder folder "
        "(berg_encoder.json + weights.h5) that `berg encode DIR` can run when --backbone/--layer are given. "
        "drama2brain's choices: --scoring correlation --perm-mode pooled --perm-block 10 --delay-mode mean; "
        "HuthLab's: --scoring correlation --alpha-convention huth --delay-mode fir (K-fold CV instead of its bootstrap chunks).",
    )
    g = p.add_argument_group("data")
    g.add_argument("--features", nargs="+", required=True, metavar="FILE",
                   help="one .npy/.h5 per feature space (samples × features); FILE.h5:DATASET picks a dataset")
    g.add_argument("--feature-names", nargs="+", default=None, metavar="NAME", help="names of the feature spaces (default: file stems)")
    g.add_argument("--responses", required=True, metavar="FILE", help=".npy/.h5 responses (samples × voxels)")
    g.add_argument("--test", default=None, metavar="FILE|START:STOP",
                   help="held-out rows: START:STOP (slice, e.g. 800:1000, or --test=-200: for the last 200) or a file of row indices / a 0/1 mask")
    g.add_argument("--out", required=True, metavar="DIR", help="output folder (created; an existing one needs --overwrite)")
    g.add_argument("--overwrite", "--force", dest="overwrite", action="store_true",
                   help="replace an existing --out folder written by berg train (swapped in only once the new one is complete)")
    g = p.add_argument_group("features")
    g.add_argument("--delays", nargs="+", type=int, default=[], metavar="D", help="time delays in samples, e.g. 1 2 3 4 (or 8 9 10)")
    g.add_argument("--delay-mode", choices=["fir", "mean"], default="fir",
                   help="fir: stack delayed copies delay-major (LeBel); mean: average them (drama2brain)")
    g.add_argument("--segments", default=None, metavar="FILE",
                   help="label per sample (story/run): delays are zero-padded at each segment start instead of crossing it")
    g.add_argument("--reduce", default=None, metavar="pca:N", help="PCA to N components per space, fit on training rows only")
    g = p.add_argument_group("ridge")
    cv = g.add_mutually_exclusive_group()
    cv.add_argument("--folds", type=int, default=5, metavar="K", help="K contiguous CV folds (default 5)")
    cv.add_argument("--cv-groups", default=None, metavar="FILE", help="group label per sample (e.g. run): one CV fold per group")
    g.add_argument("--alphas", type=_alphas, default=None, metavar="LIST",
                   help="alpha grid: comma list or logspace:LO:HI:NUM (default logspace:-12:12:25); penalty λ = α (sklearn)")
    g.add_argument("--alpha-convention", choices=["sklearn", "huth"], default="sklearn",
                   help="penalty from alpha: sklearn (λ = α, also himalaya, drama2brain) or huth (λ = α², HuthLab's ridge_utils)")
    g.add_argument("--scoring", choices=["r2", "correlation"], default="r2",
                   help="CV score that picks alphas (default r2: lands near the optimal penalty; correlation ignores the scale "
                   "of the predictions and often picks a far too small or large alpha; drama2brain and HuthLab use correlation)")
    g.add_argument("--ridge", choices=["auto", "mono", "banded"], default="auto", help="auto: banded when several feature spaces")
    g.add_argument("--n-iter", type=int, default=100, help="banded ridge: random-search draws of space weights")
    g.add_argument("--banded-engine", choices=["berg", "himalaya"], default="berg",
                   help="banded ridge solver: berg (native, default) or himalaya (same draws, same results, slower)")
    g.add_argument("--backend", default="numpy", help="numpy or torch (torch uses CUDA when present)")
    g.add_argument("--device", default=None, help="torch device (cpu, cuda, auto)")
    g.add_argument("--dtype", choices=["auto", "float32", "float64"], default="auto", help="compute precision (auto: float32 if inputs are)")
    g.add_argument("--target-batch", type=int, default=2048, metavar="N", help="voxels per batch (bounds memory)")
    g = p.add_argument_group("significance")
    g.add_argument("--permutations", type=int, default=1000, metavar="N", help="block permutations of the test rows (0: none)")
    g.add_argument("--perm-block", type=int, default=None, metavar="B",
                   help="permutation block length in samples (default: from the data, 3 × the correlation length of the test "
                   "residuals; a given block shorter than that length warns: its p-values are liberal); drama2brain: 10")
    g.add_argument("--perm-mode", choices=["voxel", "pooled"], default="voxel",
                   help="voxel (default): p = (k+1)/(N+1) against each voxel's own null; pooled: one null from all voxels "
                   "(drama2brain) - miscalibrated when voxels differ in autocorrelation (liberal for smooth, conservative for rough ones)")
    g.add_argument("--fdr-q", type=float, default=0.05, help="FDR level reported in the summary (and of map_significant_*.nii.gz)")
    g.add_argument("--noise-ceiling", default=None, metavar="FILE.npy",
                   help="CCmax per response column, in (0, 1]: writes noise_ceiling.npy and cc_norm_*.npy (test r / CCmax)")
    g.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("subject space (brain maps)")
    g.add_argument("--space-mask", default=None, metavar="MASK.nii.gz",
                   help="NIfTI mask whose nonzero voxels are the response columns, in pycortex order (get_fdata().T != 0, "
                   "C-order); with --space-reference: writes map_r/map_cc_norm/map_significant_*.nii.gz and lets "
                   "`berg encode DIR --output pred.nii.gz` write volumes (4-D: one volume per TR, the TR in the header, or per sentence for a "
                   "sentence encoder, whose 4th axis has no time unit)")
    g.add_argument("--space-reference", default=None, metavar="REF.nii.gz", help="NIfTI on the mask's grid whose affine the maps get")
    g.add_argument("--space-name", default=None, metavar="NAME", help="name of the space recorded in the card (e.g. UTS03)")
    g = p.add_argument_group("encoder card (to make the folder runnable by `berg encode`)")
    g.add_argument("--model-id", default=None, help="model id (default trained-<out folder name>)")
    g.add_argument("--description", default=None)
    g.add_argument("--stimulus", choices=["sentences", "timed_words"], default="sentences",
                   help="what the encoder takes: sentences (one feature row per sentence) or timed words (TR series)")
    g.add_argument("--backbone", nargs="+", default=[], metavar="NAME", help="HF backbone (hub id or local folder), one or one per space")
    g.add_argument("--layer", nargs="+", type=int, default=[], metavar="L", help="block whose output the features are, one or per space")
    g.add_argument("--pooling", choices=["last", "mean"], default="last", help="sentence features: last token or token mean")
    g.add_argument("--tr", type=float, default=None, help="timed words: seconds per response sample")
    g.add_argument("--output-names", default=None, metavar="FILE", help="text file: one name per response column")
    g.add_argument("--rois", default=None, metavar="FILE", help="JSON {roi: [column indices] or 0/1 mask}")
    g.add_argument("--card", default=None, metavar="FILE", help="text/markdown model card to embed")
    p.add_argument("--no-plots", dest="plots", action="store_false",
                   help="skip the default figures and report (fig_*.png, report.html in --out)")
    add_progress_options(p)
    add_grid_options(p)  # --grid FILE + the executor flags (berg_core.scale.grid)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    if args.grid or args.executor != "local":
        return run_grid(args)

    from berg_core.fit.train import TrainConfig, read_text_file, train

    card_text = None
    if args.card:
        if not Path(args.card).is_file():
            raise InvalidParameterError(f"--card file {args.card!r} not found")
        card_text = read_text_file(args.card, "--card")
    cfg = TrainConfig(
        features=list(args.features), responses=args.responses, out=args.out, feature_names=args.feature_names, test=args.test,
        delays=list(args.delays), delay_mode=args.delay_mode, segments=args.segments, reduce=args.reduce, cv_groups=args.cv_groups, folds=args.folds,
        alphas=args.alphas, alpha_convention=args.alpha_convention, scoring=args.scoring, ridge=args.ridge, n_iter=args.n_iter, banded_engine=args.banded_engine,
        permutations=args.permutations,
        perm_block=args.perm_block, perm_mode=args.perm_mode, fdr_q=args.fdr_q, backend=args.backend, device=args.device,
        dtype=args.dtype, target_batch=args.target_batch, seed=args.seed, show_progress=args.progress, overwrite=args.overwrite,
        model_id=args.model_id, description=args.description, stimulus=args.stimulus, backbone=list(args.backbone),
        layer=list(args.layer), pooling=args.pooling, tr=args.tr, output_names=args.output_names, rois=args.rois, card_text=card_text,
        space_mask=args.space_mask, space_reference=args.space_reference, space_name=args.space_name, noise_ceiling=args.noise_ceiling,
    )
    result = train(cfg)
    scores = result.summary["scores"]
    line = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in scores.items())
    notice(f"trained {result.summary['model_id']} ({result.summary['n_voxels']} voxels): {line}")
    notice(f"wrote {result.out} (suffix {result.suffix}); run it with: berg encode {result.out} ...")
    if args.plots:
        from berg_core.figures import write_defaults

        if written := write_defaults(result.out):
            notice(f"figures and report: {', '.join(str(p) for p in written)}")
    return 0
