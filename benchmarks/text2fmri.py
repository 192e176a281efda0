"""fmri-cneuromod_algo2025-text2fmri: BERG's per-token loop vs berg's ``searchsorted`` for token -> TR pooling.

A synthetic transcript of ``--trs`` TRs (0-6 words each, ~1/4 silent; a Friends episode is ~900 TRs) is tokenised
once with a Qwen-like byte-level BPE tokenizer trained on the spot (``berg_core.testing.hf.train_qwen2_tokenizer``)
and given random per-token features h (n_tok, ``--dim``) (the language model is not what is compared). Then:

* BERG-style (``feature_extractor.py``): for every token, scan the TR spans for the first it overlaps
  (``tok_start < span_end and tok_end > span_start``; tokens ending at <= 0 skipped), collect the token rows per
  TR in Python lists, ``torch.stack(rows).mean(0)`` per TR, zeros for TRs without tokens;
* berg: ``assign_tokens`` (``searchsorted`` on the span ends) and ``tr_means`` (one ``index_add_``).

Printed: seconds per path (best of ``--repeat``), the ratio, and the max |difference| of the (n_TR, dim) outputs
in float32 (target: <= 1e-5) and, for information, in float16 (BERG's dtype: at most a float16 rounding step).

    python benchmarks/text2fmri.py                 # 900 TRs
    python benchmarks/text2fmri.py --trs 3000      # a long run: the loop grows as tokens x TRs
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

WORDS = ("so i was walking down the street when this man came up to me and asked if i had ever heard a story about "
         "the night the lights went out in our town nobody knew what had happened but everyone had a theory").split()


def transcript(n_trs: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, rng.integers(1, 7))) if rng.random() > 0.25 else "" for _ in range(n_trs)]


def berg_style(h: Any, offsets: list[tuple[int, int]], trs: list[str]) -> Any:
    """BERG's loop: first overlapping span per token, Python lists per TR, stack + mean per TR."""
    import torch

    spans, pos = [], 0
    for t in trs:
        spans.append((pos, pos + len(t) + 1))
        pos += len(t) + 1
    tokens_by_tr: list[list[int]] = [[] for _ in trs]
    for k, (a, b) in enumerate(offsets):
        if b <= 0:
            continue
        for i, (s, e) in enumerate(spans):
            if a < e and b > s:
                tokens_by_tr[i].append(k)
                break
    out = torch.zeros(len(trs), h.shape[1], dtype=h.dtype)
    for i, toks in enumerate(tokens_by_tr):
        if toks:
            out[i] = torch.stack([h[k] for k in toks]).mean(0)
    return out.float().numpy()


def berg(h: Any, offsets: list[tuple[int, int]], trs: list[str]) -> Any:
    from berg_text2fmri.features import assign_tokens, tr_means, tr_text

    return tr_means(h, assign_tokens(np.asarray(offsets, dtype=np.int64), tr_text(trs)[1]), len(trs))


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main() -> None:
    import torch

    from berg_core.testing.hf import train_qwen2_tokenizer
    from berg_text2fmri.features import tr_text

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trs", type=int, default=900)
    p.add_argument("--dim", type=int, default=896)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    trs = transcript(args.trs)
    with tempfile.TemporaryDirectory() as tmp:
        tok = train_qwen2_tokenizer(tmp)
    enc = tok(tr_text(trs)[0], add_special_tokens=True, return_offsets_mapping=True)
    offsets = [tuple(o) for o in enc["offset_mapping"]]
    print(f"{args.trs} TRs ({sum(not t for t in trs)} silent), {len(offsets)} tokens, dim {args.dim}")
    h32 = torch.randn(len(offsets), args.dim, generator=torch.Generator().manual_seed(0))
    for name, h in (("float32", h32), ("float16", h32.half())):
        t_loop, ref = best(lambda h=h: berg_style(h, offsets, trs), args.repeat)
        t_fast, got = best(lambda h=h: berg(h, offsets, trs), args.repeat)
        print(f"{name}: BERG-style loop {t_loop:.3f} s, berg searchsorted {t_fast:.4f} s, {t_loop / t_fast:.0f}x; "
              f"max |diff| {np.abs(ref - got).max():.2e}")


if __name__ == "__main__":
    main()
