"""Constants and the independent reference shared by the ECoG tests (tests/ecog is on sys.path under pytest)."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

N_EMBD = 32  # width of the tiny GPT-2 (GPT-2 XL: 1600)
N_LAYER = 4  # blocks of the tiny GPT-2 (GPT-2 XL: 48)
LAYER = 3  # the block read in the tests (GPT-2 XL: 24 of 48): a truncated backbone, as in the real model

#: a transcript excerpt with attached punctuation, a digit, multi-token and rare words (several tokens each)
WORDS = ["So,", "the", "quokka", "juggled", "42", "xylophones", "wildly", "tonight.", "The", "audience", "erupted",
         "into", "laughter", "and", "applause!", "Zebra", "brown", "fox", "jumps", "over", "the", "lazy", "dog.",
         "We", "listened", "to", "stories", "while", "lying", "in", "the", "scanner"]


def berg_windows(token_ids: list[int], context_len: int, fill_value: int = 0) -> np.ndarray:
    """BERG's window loop, written out (zada2025_gpt2_xl.py ``_extract_features``): a (n_tok, context_len + 1)
    array filled with ``fill_value``, row i's tail set to ``token_ids[max(0, i - context_len) : i + 1]``."""
    data = np.full((len(token_ids), context_len + 1), fill_value, dtype=np.int64)
    for i in range(len(token_ids)):
        example = token_ids[max(0, i - context_len): i + 1]
        data[i, -len(example):] = example
    return data


def reference_features(model_dir: Any, words: list[str], layer: int, context_len: int = 32) -> np.ndarray:
    return _reference_features(str(model_dir), tuple(words), layer, context_len).copy()


@functools.lru_cache(maxsize=16)
def _reference_features(model_dir: str, words: tuple[str, ...], layer: int, context_len: int) -> np.ndarray:
    """BERG's features, independently: the full ``GPT2Model`` (every block, nothing truncated), its own tokenizer's
    ``encode(" " + w)``, BERG's windows run 4 at a time without an attention mask, ``hidden_states[layer][:, -1]``,
    then each word's token mean. float64 (n_words, n_embd)."""
    import torch
    from transformers import AutoTokenizer, GPT2Model

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = GPT2Model.from_pretrained(str(model_dir)).eval()
    ids: list[int] = []
    spans = []
    for w in words:
        toks = tokenizer.encode(" " + w)
        spans.append((len(ids), len(ids) + len(toks)))
        ids.extend(toks)
    data = torch.as_tensor(berg_windows(ids, context_len, tokenizer.pad_token_id or 0))
    rows = []
    with torch.no_grad():
        for start in range(0, len(data), 4):
            out = model(data[start:start + 4], output_hidden_states=True)
            rows.append(out.hidden_states[layer][:, -1].double().numpy())
    feats = np.concatenate(rows)
    return np.stack([feats[a:b].mean(axis=0) for a, b in spans])


def reference_readout(features: np.ndarray, weights: dict[str, Any]) -> np.ndarray:
    """The readout written out from BERG's dict (not sklearn): standardise, affine, inverse-standardise, then
    reshape the electrode-major targets to (n_words, n_electrodes, n_lags)."""
    sx, sy, ridge = weights["scaler_X_param"], weights["scaler_Y_param"], weights["ridge_param"]
    x = (features - sx["mean_"]) / sx["scale_"]
    y_std = x @ ridge["coef_"].astype(np.float64) + ridge["intercept_"].astype(np.float64)
    y = y_std * sy["scale_"] + sy["mean_"]
    shape = weights["shape"]
    return y.reshape(len(features), shape["n_electrodes"], shape["n_lags"])
