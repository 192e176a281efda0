"""ecog-zada2025-gpt2_xl: BERG's way vs berg's way of computing the same word features, side by side.

One random-init GPT-2 (default: GPT-2 base's shape, 12 blocks, 768-d, read after block 6 = half way, as the real
model reads block 24 of 48; ``--xl``: GPT-2 XL's real shape, 48 blocks, 1600-d, block 24; built from a config,
nothing downloaded) serves every path, so the numbers differ only by how they run it. Every token of a synthetic
transcript is read in BERG's 33-token window (32 predecessors, left-padded with id 0):

* BERG-style: 4 windows per forward pass through **all** blocks with ``output_hidden_states=True`` under
  ``no_grad``, ``hidden_states[layer][:, -1]`` copied to numpy (``zada2025_gpt2_xl.py`` @ 1cb3cf1);
* berg, 4 at a time: the plugin's ``window_features`` on a ``Backbone`` holding only blocks 1..layer (the same weight
  tensors, ``ln_f`` replaced by the identity: what ``load_backbone(layer=...)`` builds), 4 windows per pass;
* berg, batched: the same with ``--batch`` (64) windows per pass (the plugin's default).

The paths take turns on chunks of ``--chunk`` tokens so load on a shared machine hits them alike; CPU time is
printed next to wall time. Printed: tokens/s, ratios to BERG-style, and the max |difference| of the word features
(token means) between the paths (target: ≤ 1e-5 in float32).

    flock /tmp/berg-heavy.lock python benchmarks/ecog.py              # 120 words, ~330 tokens (~5 minutes on 2 busy cores)
    flock /tmp/berg-heavy.lock python benchmarks/ecog.py --n 40       # smoke run
    flock /tmp/berg-heavy.lock python benchmarks/ecog.py --xl --n 60  # GPT-2 XL's shape (~7 GB RAM)
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

WORDS = ("so i was walking down the street when this man came up to me and asked if i had ever heard a story about "
         "the night the lights went out in our town nobody knew what had happened but everyone had a theory and "
         "most of them were wrong").split()


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=120, help="words in the transcript")
    ap.add_argument("--xl", action="store_true", help="GPT-2 XL's shape (48 blocks, 1600-d, block 24)")
    ap.add_argument("--batch", type=int, default=64, help="berg's windows per pass")
    ap.add_argument("--chunk", type=int, default=128, help="tokens per turn of each path")
    ap.add_argument("--context", type=int, default=32, help="preceding tokens per window")
    args = ap.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import torch
    from transformers import GPT2Config, GPT2Model

    from berg_core import Backbone
    from berg_core.testing.hf import train_tokenizer
    from berg_ecog.encoder import mean_over_words, token_windows, window_features, word_tokens

    n_layer, d, heads, layer = (48, 1600, 25, 24) if args.xl else (12, 768, 12, 6)
    with tempfile.TemporaryDirectory() as tmp:
        tok = train_tokenizer(Path(tmp), vocab_size=1000)
    torch.manual_seed(0)
    special = {"bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id}
    full = GPT2Model(GPT2Config(vocab_size=len(tok), n_positions=1024, n_embd=d, n_layer=n_layer, n_head=heads, **special)).eval()
    trunc = GPT2Model(GPT2Config(vocab_size=len(tok), n_positions=1024, n_embd=d, n_layer=1, n_head=heads, **special)).eval()
    trunc.wte, trunc.wpe, trunc.drop = full.wte, full.wpe, full.drop
    trunc.h = torch.nn.ModuleList(list(full.h)[:layer])
    trunc.ln_f = torch.nn.Identity()
    trunc.config.n_layer = trunc.config.num_hidden_layers = layer
    backbone = Backbone(name="bench", layer=layer, device="cpu", dtype="float32", tokenizer=tok, model=trunc,
                        revision="local", hidden_size=d)

    words = [WORDS[i % len(WORDS)] for i in range(args.n)]
    ids, spans = word_tokens(backbone.tokenize, words)
    windows = token_windows(ids, args.context)

    def berg_style(rows: np.ndarray) -> np.ndarray:
        out = []
        with torch.no_grad():
            for s in range(0, len(rows), 4):
                hs = full(torch.as_tensor(rows[s:s + 4]), output_hidden_states=True).hidden_states
                out.append(hs[layer][:, -1, :].cpu().numpy())
        return np.concatenate(out)

    paths: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "BERG-style (all blocks, 4/pass)": berg_style,
        "berg, 4 per pass": lambda rows: window_features(backbone, rows, batch_size=4),
        f"berg, {args.batch} per pass": lambda rows: window_features(backbone, rows, batch_size=args.batch),
    }
    feats: dict[str, list[np.ndarray]] = {k: [] for k in paths}
    wall = dict.fromkeys(paths, 0.0)
    cpu = dict.fromkeys(paths, 0.0)
    for s in range(0, len(windows), args.chunk):
        for name, fn in paths.items():
            rows = windows[s:s + args.chunk]
            out, w, c = timed(lambda fn=fn, rows=rows: fn(rows))
            feats[name].append(out)
            wall[name] += w
            cpu[name] += c
    word_feats = {k: mean_over_words(np.concatenate(v).astype(np.float32), spans) for k, v in feats.items()}
    ref_name = next(iter(paths))
    print(f"# ecog windows: {args.n} words, {len(ids)} tokens, {args.context + 1}-token windows, "
          f"{'GPT-2 XL' if args.xl else 'GPT-2 base'} shape ({n_layer} blocks, {d}-d), block {layer}; "
          f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print("| path | tokens/s | wall (s) | CPU (s) | ratio to BERG-style (wall) | max abs diff of word features |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in paths:
        diff = float(np.abs(word_feats[name] - word_feats[ref_name]).max())
        print(f"| {name} | {len(ids) / wall[name]:.1f} | {wall[name]:.1f} | {cpu[name]:.1f} | "
              f"{wall[ref_name] / wall[name]:.2f}x | {diff:.1e} |")
    spread = float(word_feats[ref_name].std(axis=0).mean())
    print(f"feature spread across words (mean std): {spread:.3g}")


if __name__ == "__main__":
    main()
