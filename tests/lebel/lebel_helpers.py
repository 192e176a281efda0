"""Constants and a story generator shared by the berg-lebel tests (a uniquely named module, not conftest)."""

from __future__ import annotations

import numpy as np

from berg_core.testing.hf import CORPUS

HIDDEN = 32
LAYER = 3
N_VOXELS = {"UTS01": 61, "UTS02": 90}  # UTS02: 128 x 90 float64 > 64 KiB, so its payload lies outside pickle frames


def make_story(n_words: int, seed: int = 0) -> dict:
    """A story of corpus words (some ``'s``, blanks and punctuation), onsets ~0.3 s apart (some equal)."""
    rng = np.random.default_rng(seed)
    vocab = sorted({w for line in CORPUS for w in line.split()})
    words = [str(w) for w in rng.choice(vocab, n_words)]
    for i in rng.choice(n_words, max(1, n_words // 40), replace=False):
        words[i] = "'s"
    for i in rng.choice(n_words, max(1, n_words // 60), replace=False):
        words[i] = " " if i % 2 else ""
    words[0] = ""  # a non-real word first: its vector must be zeros
    gaps = rng.choice([0.0, 0.2, 0.3, 0.45], n_words)
    gaps[0] = 0.0
    onsets = 3.7 + np.cumsum(gaps)
    return {"words": words, "word_onsets": onsets.tolist()}
