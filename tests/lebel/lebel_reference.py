"""Independent step-by-step references for the LeBel pipeline, written literally from spec/lebel.md.

Nothing here uses berg_core's signal/word_features code: the backbone is the *full* HF model run once
per word on that word's incremental context (``output_hidden_states``), Lanczos is a double loop over
(TR, word) with the spec's formula, z-scoring and delays are plain loops.
"""

from __future__ import annotations

import math

import numpy as np


def is_real(word: str) -> bool:
    return bool(word.strip()) and word != "'s"


def incremental_word_features(folder, words, layer, *, max_words=512, keep_words=256, only=None) -> np.ndarray:
    """Spec steps 2-4, one word at a time: the context grows word by word to ``max_words`` words, then
    restarts ``keep_words`` words back; each real word's vector is hidden_states[layer] at its last
    token with BOS + its context; other words copy the previous real word's vector (zeros first).

    ``only``: a set of word indices whose vectors are computed (the context is still tracked for every
    word); other rows are NaN. Used to check a sample of a long story in reasonable time."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModel.from_pretrained(str(folder)).eval()
    out = np.zeros((len(words), model.config.hidden_size))
    context: list[list[int]] = []  # token ids of the words in context
    previous = np.zeros(model.config.hidden_size)
    first_real = True
    for i, word in enumerate(words):
        if not is_real(word):
            out[i] = previous
            continue
        previous = np.full(model.config.hidden_size, np.nan)
        if len(context) == max_words:
            context = context[-keep_words:]
        context.append(tok(word if first_real else " " + word, add_special_tokens=False)["input_ids"])
        first_real = False
        if only is not None and i not in only:
            out[i] = np.nan
            continue
        ids = [tok.bos_token_id] + [t for w in context for t in w]
        with torch.no_grad():
            hidden = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[layer]
        previous = out[i] = hidden[0, -1].double().numpy()
    return out


def lanczos_weight(u: float, a: int = 3) -> float:
    """L(u) = a sin(pi u) sin(pi u / a) / (pi^2 u^2), L(0) = 1, 0 for |u| >= a."""
    if u == 0:
        return 1.0
    if abs(u) >= a:
        return 0.0
    return a * math.sin(math.pi * u) * math.sin(math.pi * u / a) / (math.pi**2 * u**2)


def tr_times(onsets, tr=2.0) -> np.ndarray:
    t0 = onsets[0]
    n = math.ceil((onsets[-1] + 4 * tr - t0) / tr)
    return np.array([t0 + k * tr for k in range(n)])


def dense_lanczos(features, onsets, times, tr=2.0) -> np.ndarray:
    """out[k] = sum_j L((t_k - onset_j)/TR) * X[j] with a double Python loop (BERG's style)."""
    out = np.zeros((len(times), features.shape[1]))
    for k, t in enumerate(times):
        for j, o in enumerate(onsets):
            w = lanczos_weight((t - o) / tr)
            if w != 0.0:
                out[k] += w * features[j]
    return out


def zscore_columns(x) -> np.ndarray:
    out = np.empty_like(x, dtype=np.float64)
    for j in range(x.shape[1]):
        col = x[:, j].astype(np.float64)
        mean = col.sum() / len(col)
        std = math.sqrt(((col - mean) ** 2).sum() / len(col))
        out[:, j] = (col - mean) / (std if std >= 1e-10 else 1.0)
    return out


def fir_delays(x, delays=(1, 2, 3, 4)) -> np.ndarray:
    """Column (d-1)*n + j = feature j shifted down by d rows, zeros on top."""
    n_t, n_f = x.shape
    out = np.zeros((n_t, len(delays) * n_f))
    for i, d in enumerate(delays):
        for t in range(d, n_t):
            out[t, i * n_f:(i + 1) * n_f] = x[t - d]
    return out


def predict(word_feats, onsets, weights, columns) -> np.ndarray:
    """Spec steps 5-9 on given word features; weights (4·hidden, n_voxels) float64."""
    onsets = np.asarray(onsets, dtype=np.float64)
    times = tr_times(onsets)
    x = fir_delays(zscore_columns(dense_lanczos(word_feats, onsets, times)))
    return x @ weights[:, columns]
