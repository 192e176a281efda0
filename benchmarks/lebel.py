"""fmri-lebel2023-opt_1_3b: BERG-style vs berg, side by side in one run, with ratios.

(a) weights: BERG-style load of a synthetic full-size pickled weights file (8192 x 95,556 float64, written
    to --tmp in BERG's exact format) then slicing a 2,000-voxel ROI, vs berg's one-time conversion to a
    column-chunked float32 HDF5 and its subset read. Seconds and peak RSS (ru_maxrss of a separate child
    process per path). Target: berg's subset-read peak RSS <= 5 % of BERG's.
(b) Lanczos resampling of a 3,000-word story (2048-d): BERG's double loop over (TR, word) vs berg's sparse
    matrix product (target >= 50x).
(c) a random-init OPT of OPT-1.3B's real shape (24 blocks, 2048-d, 32 heads, 8192 FFN), a 1,500-word story:
    one window at a time through the full depth with output_hidden_states (BERG-style) vs berg (blocks
    1..18 only, windows batched); and encoding the story for 8 subjects with and without the feature cache.

Full size needs ~7 GB RAM and ~7 GB of disk in --tmp: run it under the shared lock:

    flock /tmp/berg-heavy.lock /work/venv/bin/python benchmarks/lebel.py
    python benchmarks/lebel.py --smoke            # small sizes, a minute
    python benchmarks/lebel.py --parts a,b        # only some parts

Everything runs offline (the OPT is random, its tokenizer is trained on the spot). Temporary files are
deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()


# ------------------------------------------------------------------------------------------ helpers


def peak_rss_mb() -> float:
    """This process's peak resident set size in MB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(mode: str, **kwargs) -> dict:
    """Run ``mode`` in a fresh Python process; return its JSON result (adds its peak RSS)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, str(HERE), "--child", mode, json.dumps(kwargs)], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"child {mode} failed (exit {proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def roi_columns(n_voxels: int, size: int, seed: int = 0, scattered: bool = False) -> np.ndarray:
    """A 2,000-voxel ROI: runs of ~12 consecutive voxel ids inside a local span (a blob in a volume's
    flattened order), or ``scattered`` = uniformly random voxels (worst case for chunked reads)."""
    rng = np.random.default_rng(seed)
    if scattered:
        return np.sort(rng.choice(n_voxels, size, replace=False))
    span = min(n_voxels, max(size * 15, 1))
    lo = int(rng.integers(0, n_voxels - span + 1))
    cols: set[int] = set()
    while len(cols) < size:
        start = int(rng.integers(lo, lo + span - 12)) if span > 12 else lo
        cols.update(range(start, min(n_voxels, start + int(rng.integers(8, 17)))))
    return np.sort(np.fromiter(cols, dtype=np.int64))[:size]


def fmt_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ children


def child_berg_style(path: str, roi: list[int]) -> dict:
    t = time.perf_counter()
    data = np.load(path, allow_pickle=True).item()  # what BERG does (plain unpickler)
    w = data["ridge_weights"][:, roi]
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "shape": list(w.shape), "checksum": float(w[:, :50].astype(np.float64).sum())}


def child_convert(path: str, dest: str, fallback: bool) -> dict:
    import berg_core.store.pickled_arrays as pa
    from berg_core.store.h5matrix import write_matrix
    from berg_lebel.weights import weights_source

    if fallback:
        def refuse(*a, **k):
            raise pa.LazyLoadUnsupported("benchmark: force the allow-list unpickler path")

        pa.load_npy_lazily = refuse
    base = peak_rss_mb()
    t = time.perf_counter()
    write_matrix(dest, weights_source(Path(path)))
    return {"seconds": time.perf_counter() - t, "rss_before_mb": base}


def child_subset(dest: str, roi: list[int], fancy: bool) -> dict:
    import h5py

    from berg_core.store.h5matrix import read_columns

    base = peak_rss_mb()
    t = time.perf_counter()
    if fancy:
        with h5py.File(dest, "r") as fh:
            w = fh["matrix"][:, np.asarray(roi)]
    else:
        w = read_columns(dest, roi)
    return {"seconds": time.perf_counter() - t, "rss_before_mb": base, "shape": list(w.shape),
            "checksum": float(w[:, :50].astype(np.float64).sum())}


def child_opt_build(folder: str, hidden: int, layers: int, heads: int, vocab: int) -> dict:
    import torch
    from transformers import OPTConfig, OPTForCausalLM

    from berg_core.testing.hf import train_tokenizer

    t = time.perf_counter()
    tok = train_tokenizer(folder, vocab_size=vocab, opt_style=True)
    torch.manual_seed(0)
    # OPT-1.3B's vocabulary size (the tokenizer uses the first ids only), so the LM head costs what it costs there
    config = OPTConfig(vocab_size=max(len(tok), 50272), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, ffn_dim=4 * hidden,
                       max_position_embeddings=2048, word_embed_proj_dim=hidden, pad_token_id=tok.pad_token_id,
                       bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    OPTForCausalLM(config).eval().save_pretrained(folder)
    return {"seconds": time.perf_counter() - t}


def child_opt_baseline(folder: str, words: list[str], layer: int, out: str) -> dict:
    """BERG-style: each context window alone through the full causal LM with output_hidden_states."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from berg_core.features.words import context_windows, expand_to_all_words, is_real_word, word_token_ids

    t = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    mask = np.array([is_real_word(w) for w in words])
    real = [w for w, m in zip(words, mask) if m]
    tokens = word_token_ids(tok, real)
    feats = np.zeros((len(real), model.config.hidden_size), dtype=np.float32)
    for w in context_windows(len(real)):
        ids = [tok.bos_token_id] + [x for ts in tokens[w.start:w.stop] for x in ts]
        ends = np.cumsum([len(ts) for ts in tokens[w.start:w.stop]])
        with torch.no_grad():
            hidden = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[layer][0]
        for i in range(w.assign_from, w.stop):
            feats[i] = hidden[ends[i - w.start]].numpy()  # index: BOS offset 1 + end - 1
    seconds = time.perf_counter() - t
    np.save(out, expand_to_all_words(feats, mask))
    return {"seconds": seconds, "load_seconds": load_s}


def child_opt_berg(folder: str, words: list[str], layer: int, out: str, batch_size: int) -> dict:
    from transformers import AutoConfig, AutoModel, AutoTokenizer  # noqa: F401 - lazy imports resolved before the timer, as in the baseline

    from berg_core.features.backbones import load_backbone
    from berg_core.features.words import word_features

    t = time.perf_counter()
    backbone = load_backbone(folder, layer=layer)
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    feats = word_features(backbone, words, batch_size=batch_size)
    seconds = time.perf_counter() - t
    np.save(out, feats)
    return {"seconds": seconds, "load_seconds": load_s}


def child_subjects(folder: str, berg_dir: str, cache: str, story: dict, subjects: list[str], layer: int, feature_cache: bool) -> dict:
    os.environ["BERG_CACHE_DIR"] = cache
    os.environ["BERG_DIR"] = berg_dir
    from berg_core import BERG

    berg = BERG(berg_dir)
    for s in subjects:  # weights conversion is a one-time cost: do it before timing
        berg.get_encoding_model("fmri-lebel2023-opt_1_3b", subject=s, device="cpu", backbone=folder, layer=layer, progress=False).close()
    t = time.perf_counter()
    per = []
    for s in subjects:
        t1 = time.perf_counter()
        with berg.get_encoding_model("fmri-lebel2023-opt_1_3b", subject=s, device="cpu", backbone=folder, layer=layer,
                                     feature_cache=feature_cache, progress=False) as model:
            model.encode(story)
        per.append(time.perf_counter() - t1)
    return {"seconds": time.perf_counter() - t, "per_subject": per}


CHILDREN = {"berg_style": child_berg_style, "convert": child_convert, "subset": child_subset, "opt_build": child_opt_build,
            "opt_baseline": child_opt_baseline, "opt_berg": child_opt_berg, "subjects": child_subjects}


# ------------------------------------------------------------------------------------------ parts


def part_a(args, tmp: Path) -> list[str]:
    from berg_lebel.testing import write_streamed_weights_npy

    src = tmp / "weights_UTS03.npy"
    dest = tmp / "weights_UTS03.h5"
    n_rows, n_vox = args.rows, args.voxels
    print(f"(a) writing a synthetic {n_rows} x {n_vox} float64 weights file ({n_rows * n_vox * 8 / 1e9:.2f} GB) ...", flush=True)
    t = time.perf_counter()

    def rows(r0: int, r1: int) -> np.ndarray:
        return np.random.default_rng(r0).standard_normal((r1 - r0, n_vox))

    write_streamed_weights_npy(src, (n_rows, n_vox), rows, rows_per_block=64)
    print(f"    written in {time.perf_counter() - t:.1f} s ({src.stat().st_size / 1e9:.2f} GB)", flush=True)
    roi = roi_columns(n_vox, args.roi).tolist()
    scattered = roi_columns(n_vox, args.roi, scattered=True).tolist()
    res = {}
    res["berg_style"] = child("berg_style", path=str(src), roi=roi)
    print(f"    BERG-style load+slice: {res['berg_style']['seconds']:.1f} s, peak {res['berg_style']['peak_rss_mb']:.0f} MB", flush=True)
    res["convert"] = child("convert", path=str(src), dest=str(dest), fallback=False)
    print(f"    berg conversion (streamed): {res['convert']['seconds']:.1f} s, peak {res['convert']['peak_rss_mb']:.0f} MB", flush=True)
    if args.fallback:
        fb = tmp / "fallback.h5"
        res["convert_fallback"] = child("convert", path=str(src), dest=str(fb), fallback=True)
        fb.unlink()
    res["subset"] = child("subset", dest=str(dest), roi=roi, fancy=False)
    res["subset_fancy"] = child("subset", dest=str(dest), roi=roi, fancy=True)
    res["subset_scattered"] = child("subset", dest=str(dest), roi=scattered, fancy=False)
    assert res["subset"]["shape"] == res["berg_style"]["shape"]
    same = abs(res["subset"]["checksum"] - res["berg_style"]["checksum"]) <= 1e-3 * max(1.0, abs(res["berg_style"]["checksum"]))
    src_mb = src.stat().st_size / 2**20
    bs = res["berg_style"]
    rows_out = [["path", "seconds", "peak RSS (MB)", "RSS vs BERG", "time vs BERG"]]
    rows_out.append([f"BERG-style: np.load(allow_pickle) + W[:, roi] ({args.roi} voxels)", f"{bs['seconds']:.2f}",
                     f"{bs['peak_rss_mb']:.0f}", "1", "1"])
    for key, label in [("subset", f"berg: read {args.roi} ROI columns from the HDF5 (chunk spans)"),
                       ("subset_fancy", "  same, h5py fancy indexing (alternative, not used)"),
                       ("subset_scattered", f"berg: {args.roi} scattered voxels (worst case)")]:
        r = res[key]
        rows_out.append([label, f"{r['seconds']:.3f}", f"{r['peak_rss_mb']:.0f}", f"{r['peak_rss_mb'] / bs['peak_rss_mb']:.1%}",
                         f"{bs['seconds'] / r['seconds']:.1f}x faster"])
    for key, label in [("convert", "berg one-time conversion, streamed (default)"),
                       ("convert_fallback", "berg one-time conversion, allow-list unpickler fallback")]:
        if key in res:
            r = res[key]
            rows_out.append([label, f"{r['seconds']:.1f}", f"{r['peak_rss_mb']:.0f}",
                             f"{r['peak_rss_mb'] / bs['peak_rss_mb']:.1%} ({r['peak_rss_mb'] / src_mb:.2f}x source)", ""])
    src.unlink()
    dest.unlink()
    out = [f"(a) weights, {n_rows} x {n_vox} float64 source ({src_mb:.0f} MB); subset equals BERG's slice: {same}",
           fmt_table(rows_out),
           f"    target: berg subset peak RSS <= 5% of BERG's -> {res['subset']['peak_rss_mb'] / bs['peak_rss_mb']:.1%}"]
    return out


def part_b(args) -> list[str]:
    from berg_core.features.timeseries import lanczos_resample, tr_grid

    rng = np.random.default_rng(0)
    n, d = args.lanczos_words, args.hidden
    onsets = np.cumsum(rng.choice([0.0, 0.2, 0.3, 0.35, 0.5], n)) + 1.0
    feats = rng.standard_normal((n, d)).astype(np.float32)
    times = tr_grid(onsets, tr=2.0)

    def berg_style() -> np.ndarray:
        """BERG's loop: for every (TR, word) pair, numpy-scalar kernel math; float32 accumulation."""
        out = np.zeros((len(times), d), dtype=np.float32)
        a, cutoff = 3, 0.5 / 2.0
        for k, t in enumerate(times):
            for j, o in enumerate(onsets):
                delta = (t - o) * 2 * cutoff
                if abs(delta) < a:
                    if abs(delta) < 1e-10:
                        kernel = 1.0
                    else:
                        kernel = np.sin(np.pi * delta) / (np.pi * delta) * np.sin(np.pi * delta / a) / (np.pi * delta / a)
                    out[k] += feats[j] * kernel
        return out

    t = time.perf_counter()
    ref = berg_style()
    t_ref = time.perf_counter() - t
    lanczos_resample(feats[:10], onsets[:10], times[:2], tr=2.0)  # import scipy.sparse outside the timing
    reps = 5
    timing = {}
    for dt in (np.float32, np.float64):
        t = time.perf_counter()
        for _ in range(reps):
            got = lanczos_resample(feats, onsets, times, tr=2.0, dtype=dt)
        timing[dt] = ((time.perf_counter() - t) / reps, float(np.abs(got - ref).max()))
    t32, d32 = timing[np.float32]
    t64, d64 = timing[np.float64]
    rows = [["path", "seconds", "speed-up", "max abs diff vs BERG-style"], ["BERG-style double loop (TR x word)", f"{t_ref:.3f}", "1", "-"],
            ["berg: sparse Lanczos matrix @ features, float32 (encoder default)", f"{t32:.4f}", f"{t_ref / t32:.0f}x", f"{d32:.1e}"],
            ["berg: same in float64", f"{t64:.4f}", f"{t_ref / t64:.0f}x", f"{d64:.1e}"]]
    return [f"(b) Lanczos, {n} words x {d} features -> {len(times)} TRs (target >= 50x)", fmt_table(rows)]


def part_c(args, tmp: Path) -> list[str]:
    from berg_core.features.words import context_windows, is_real_word, word_token_ids
    from berg_core.testing.hf import CORPUS
    from berg_lebel.testing import make_berg_tree

    folder = tmp / "opt-random"
    print(f"(c) building a random OPT ({args.layers} blocks, {args.hidden}-d, {args.heads} heads) ...", flush=True)
    build = child("opt_build", folder=str(folder), hidden=args.hidden, layers=args.layers, heads=args.heads, vocab=args.vocab)
    print(f"    built in {build['seconds']:.0f} s", flush=True)
    rng = np.random.default_rng(0)
    vocab = sorted({w.strip(".,!?") for line in CORPUS for w in line.split()} - {""})
    words = [str(w) for w in rng.choice(vocab, args.words)]
    story = {"words": words, "word_onsets": (np.cumsum(rng.choice([0.2, 0.3, 0.4], args.words))).tolist()}
    layer = args.layer
    base = child("opt_baseline", folder=str(folder), words=words, layer=layer, out=str(tmp / "base.npy"))
    print(f"    BERG-style windows: {base['seconds']:.1f} s", flush=True)
    ours = child("opt_berg", folder=str(folder), words=words, layer=layer, out=str(tmp / "ours.npy"), batch_size=args.batch_size)
    print(f"    berg windows: {ours['seconds']:.1f} s", flush=True)
    diff = float(np.abs(np.load(tmp / "base.npy") - np.load(tmp / "ours.npy")).max())
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    real = [w for w in words if is_real_word(w)]
    lens = [len(t) for t in word_token_ids(tok, real)]
    windows = context_windows(len(real))
    window_tokens = sum(1 + sum(lens[w.start:w.stop]) for w in windows)
    per_word_tokens = sum(1 + sum(lens[w.start:i + 1]) for w in windows for i in range(w.assign_from, w.stop))
    out = [f"(c) random OPT-1.3B shape ({args.layers} blocks, {args.hidden}-d, {args.heads} heads), {args.words}-word story "
           f"({len(windows)} windows, {np.mean(lens):.2f} tokens/word), layer {layer}; max |diff| berg vs full model = {diff:.1e}",
           fmt_table([["path", "model load (s)", "features (s)", "speed-up"],
                      [f"BERG-style: 1 window per pass, causal LM (all {args.layers} blocks + LM head), output_hidden_states", f"{base['load_seconds']:.1f}",
                       f"{base['seconds']:.1f}", "1"],
                      [f"berg: blocks 1-{layer} only, windows batched ({args.batch_size})", f"{ours['load_seconds']:.1f}",
                       f"{ours['seconds']:.1f}", f"{base['seconds'] / ours['seconds']:.2f}x"]]),
           f"    tokens through the model: {window_tokens} with windows vs {per_word_tokens} if every word ran its own "
           f"incremental context ({per_word_tokens / window_tokens:.0f}x more; counted, not timed)"]
    if args.subjects:
        subjects = [f"UTS0{i}" for i in range(1, args.subjects + 1)]
        berg_dir = tmp / "berg"
        make_berg_tree(berg_dir, subjects, hidden=args.hidden, n_voxels=args.subject_voxels, seed=1)
        runs = {}
        for flag in (False, True):
            runs[flag] = child("subjects", folder=str(folder), berg_dir=str(berg_dir), cache=str(tmp / f"cache-{flag}"), story=story,
                               subjects=subjects, layer=layer, feature_cache=flag)
            print(f"    {len(subjects)} subjects, feature_cache={flag}: {runs[flag]['seconds']:.1f} s", flush=True)
        off, on = runs[False], runs[True]
        out += [f"    encoding the story for {len(subjects)} subjects ({args.subject_voxels} voxels each; load + encode per subject)",
                fmt_table([["path", "total (s)", "first subject (s)", "other subjects (s, mean)", "speed-up"],
                           ["feature_cache=False (OPT loaded and run per subject)", f"{off['seconds']:.1f}",
                            f"{off['per_subject'][0]:.1f}", f"{np.mean(off['per_subject'][1:]):.1f}", "1"],
                           ["berg default: feature cache (OPT runs once)", f"{on['seconds']:.1f}", f"{on['per_subject'][0]:.1f}",
                            f"{np.mean(on['per_subject'][1:]):.2f}", f"{off['seconds'] / on['seconds']:.1f}x"]])]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    p.add_argument("--parts", default="a,b,c")
    p.add_argument("--smoke", action="store_true", help="small sizes (a quick check that everything runs)")
    p.add_argument("--tmp", default=tempfile.gettempdir(), help="folder for the synthetic files (needs ~7 GB at full size)")
    p.add_argument("--rows", type=int, default=8192)
    p.add_argument("--voxels", type=int, default=95556)
    p.add_argument("--roi", type=int, default=2000)
    p.add_argument("--fallback", action="store_true", help="also time the conversion through the allow-list unpickler (1x source RAM)")
    p.add_argument("--lanczos-words", type=int, default=3000)
    p.add_argument("--hidden", type=int, default=2048)
    p.add_argument("--layers", type=int, default=24)
    p.add_argument("--heads", type=int, default=32)
    p.add_argument("--layer", type=int, default=18)
    p.add_argument("--vocab", type=int, default=2000, help="tokenizer vocabulary (trained on the spot)")
    p.add_argument("--words", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--subjects", type=int, default=8)
    p.add_argument("--subject-voxels", type=int, default=2000)
    args = p.parse_args(argv)
    if args.child:
        mode, kwargs = args.child
        result = CHILDREN[mode](**json.loads(kwargs))
        result["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(result))
        return 0
    if args.smoke:
        args.rows, args.voxels, args.roi, args.lanczos_words = 512, 6000, 200, 600
        args.hidden, args.layers, args.heads, args.layer, args.words, args.subjects, args.subject_voxels = 64, 4, 4, 3, 700, 3, 100
    parts = set(args.parts.split(","))
    tmp = Path(tempfile.mkdtemp(prefix="berg-bench-lebel-", dir=args.tmp))
    report = [f"benchmarks/lebel.py ({os.cpu_count()} CPUs; torch threads default){' --smoke' if args.smoke else ''}"]
    try:
        if "b" in parts:
            report += part_b(args)
        if "a" in parts:
            report += part_a(args, tmp)
        if "c" in parts:
            report += part_c(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n" + "\n\n".join(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
