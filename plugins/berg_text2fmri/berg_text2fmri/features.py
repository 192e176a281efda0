"""Per-TR language-model features of Text2fMRI (BERG's ``feature_extractor.py``, same numbers, vectorised).

1. text = ``"".join(tr + "\\n" for tr in trs)``; TR i's character span is ``[start_i, start_i + len(tr_i) + 1)``
   (its newline included), so the spans tile ``[0, len(text))``;
2. one tokenisation with offsets (``add_special_tokens=True``; Qwen2.5 adds none); more tokens than the model's
   positions: a warning, the first ``max_tokens`` kept (later TRs get zero features);
3. one forward pass; ``h = mean(h_{L-3}, h_{L-2}, h_{L-1}, norm(h_L))`` computed explicitly from the outputs of the
   last four decoder blocks and the final RMSNorm (HF's ``mean(hidden_states[-4:])``), in the model's dtype;
4. token -> TR: tokens ending at or before character 0 are skipped; a token goes to the first TR span it overlaps
   (``tok_start < span_end and tok_end > span_start``), found by ``searchsorted`` on the span ends;
5. TR feature = mean of its tokens' h (rounded to the model's dtype as BERG's fp16 mean), float32; zeros without tokens.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray


def tr_text(trs: Sequence[str]) -> tuple[str, NDArray[np.int64]]:
    """The joined text and the (n_TR,) int64 exclusive end of each TR's character span (its newline included)."""
    lengths = np.fromiter((len(t) + 1 for t in trs), dtype=np.int64, count=len(trs))
    return "".join(t + "\n" for t in trs), np.cumsum(lengths)


def assign_tokens(offsets: NDArray[np.int64], span_ends: NDArray[np.int64]) -> NDArray[np.int64]:
    """(n_tok, 2) character offsets [start, end) -> (n_tok,) TR index of each token, -1 for a token in no TR.

    Spans tile [0, span_ends[-1]) contiguously, so the first span a token [a, b) overlaps is the one holding
    character a: ``searchsorted(span_ends, a, side="right")``, provided the token overlaps it (b > a, or for an
    empty token a strictly inside the span); tokens with ``b <= 0`` are skipped, as BERG's loop does.
    """
    offsets = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    start, end = offsets[:, 0], offsets[:, 1]
    tr = np.searchsorted(span_ends, start, side="right").astype(np.int64)
    span_start = np.concatenate([[0], span_ends])[np.minimum(tr, len(span_ends))]
    # end > span_start: true for any non-empty token starting in the span; an empty token must lie strictly inside
    inside = (tr < len(span_ends)) & (end > 0) & (end > span_start)
    return np.where(inside, tr, -1)


def tr_means(h: Any, tr_of_token: NDArray[np.int64], n_tr: int) -> NDArray[np.float32]:
    """(n_tok, d) torch tensor in the model's dtype -> (n_tr, d) float32: each TR's mean over its tokens (summed in
    float32, rounded to ``h``'s dtype like BERG's mean of float16 rows), zeros for TRs without tokens."""
    import torch

    keep = torch.as_tensor(tr_of_token >= 0)
    index = torch.as_tensor(tr_of_token)[keep].to(h.device)
    rows = h[keep.to(h.device)].float()
    sums = torch.zeros(n_tr, h.shape[1], dtype=torch.float32, device=h.device).index_add_(0, index, rows)
    counts = torch.bincount(index, minlength=n_tr).clamp(min=1).to(torch.float32)
    means = (sums / counts[:, None]).to(h.dtype).float()
    return np.ascontiguousarray(means.cpu().numpy(), dtype=np.float32)


def last_four_mean(model: Any, input_ids: Any) -> Any:
    """(1, n_tok) ids -> (n_tok, d) ``mean(h_{L-3}, h_{L-2}, h_{L-1}, norm(h_L))`` in the model's dtype.

    ``model`` is a full HF ``Qwen2Model`` (``layers``, ``norm``): the outputs of its last four decoder blocks are
    captured with forward hooks, and the final RMSNorm is applied here to the last one (not read from
    ``hidden_states``, whose last entry's meaning changed across transformers versions).
    """
    import torch

    blocks = list(model.layers)[-4:]
    if len(blocks) < 4:
        raise ValueError(f"the language model has {len(model.layers)} layers; Text2fMRI needs at least 4")
    captured: list[Any] = []

    def keep(_module: Any, _inputs: Any, output: Any) -> None:
        captured.append(output[0] if isinstance(output, tuple) else output)

    handles = [block.register_forward_hook(keep) for block in blocks]
    try:
        with torch.inference_mode():
            model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), use_cache=False)
            h21, h22, h23, h24 = (c[0] for c in captured)
            return torch.stack([h21, h22, h23, model.norm(h24[None])[0]]).mean(dim=0)
    finally:
        for handle in handles:
            handle.remove()


def tr_features(model: Any, tokenizer: Any, trs: Sequence[str], *, device: str = "cpu",
                max_tokens: int | None = None) -> NDArray[np.float32]:
    """One str per TR -> (n_TR, d) float32 features (steps 1-5 of the module docstring)."""
    import torch

    text, ends = tr_text(trs)
    enc = tokenizer(text, add_special_tokens=True, return_offsets_mapping=True)
    ids, offsets = list(enc["input_ids"]), np.asarray(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2)
    if max_tokens is not None and len(ids) > max_tokens:
        kept_tr = int(assign_tokens(offsets[max_tokens - 1:max_tokens], ends)[0])
        warnings.warn(f"the transcript is {len(ids)} tokens, more than the language model's {max_tokens} positions: only the "
                      f"first {max_tokens} are read (TRs after {kept_tr} get zero features); encode shorter runs", stacklevel=2)
        ids, offsets = ids[:max_tokens], offsets[:max_tokens]
    h = last_four_mean(model, torch.as_tensor([ids], device=device))
    return tr_means(h, assign_tokens(offsets, ends), len(trs))
