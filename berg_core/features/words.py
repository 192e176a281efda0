"""Word-level contextual features of a story with a dynamic context window (LeBel/Antonello recipe).

One feature vector per word: the backbone's hidden state after block ``layer`` at the word's **last**
token, where the word is read in a context that grows word by word up to ``max_words`` words and then
restarts ``keep_words`` words back (defaults 512 / 256, Antonello et al. 2023 §2.3).

Executed as one forward pass per **window** instead of one per word: window p covers BOS + real words
``[p·s, p·s + max_words)`` with stride s = max_words − keep_words, and assigns the words no earlier
window assigned (window 0: words 0..max_words−1; window p ≥ 1: from p·s + keep_words on). A causal
model's hidden state at a word's last token depends only on the tokens before it, so each word gets
exactly the vector its incremental context would give. Windows are independent: they run in
right-padded batches (longest first), and only blocks 1..layer run (``berg_core.features.backbones.load_backbone``).
Passes for n real words: 1 if n ≤ max_words, else 1 + ceil((n − max_words)/s).

Tokens: BOS first (``add_bos``); each real word tokenized alone without special tokens, prefixed by a
space except the story's first real word; no lowercasing. A real word is non-blank and not exactly
``'s`` (``is_real_word``); other words copy the previous real word's vector (zeros before the first).

torch is imported inside the functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from berg_core.console import progress_bar
from berg_core.errors import InvalidParameterError, StimulusError

MAX_WORDS = 512
KEEP_WORDS = 256


def is_real_word(word: str) -> bool:
    """A word that gets its own vector: non-blank and not exactly ``'s``."""
    return bool(word.strip()) and word != "'s"


@dataclass(frozen=True)
class Window:
    """One forward pass: real words ``start:stop`` in context, vectors kept for ``assign_from:stop``."""

    start: int
    stop: int
    assign_from: int


def context_windows(n_words: int, max_words: int = MAX_WORDS, keep_words: int = KEEP_WORDS) -> list[Window]:
    """The windows covering ``n_words`` real words (see the module docstring)."""
    if not 0 <= keep_words < max_words:
        raise InvalidParameterError(f"need 0 <= keep_words < max_words, got keep_words={keep_words}, max_words={max_words}")
    if n_words <= 0:
        return []
    stride = max_words - keep_words
    n_pass = 1 if n_words <= max_words else 1 + math.ceil((n_words - max_words) / stride)
    out = []
    for p in range(n_pass):
        start = p * stride
        out.append(Window(start, min(n_words, start + max_words), 0 if p == 0 else start + keep_words))
    return out


def word_token_ids(tokenizer: Any, words: Sequence[str]) -> list[list[int]]:
    """Token ids of each word alone (no special tokens): ``" " + word`` except the first word."""
    texts = [w if i == 0 else " " + w for i, w in enumerate(words)]
    if not texts:
        return []
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    for w, t in zip(words, ids):
        if not t:
            raise StimulusError(f"word {w!r} gives no tokens; remove it or replace it")
    return [list(t) for t in ids]


def expand_to_all_words(real_features: np.ndarray, real_mask: np.ndarray) -> np.ndarray:
    """(n_real, d) vectors of the real words -> (n_words, d): other words copy the previous real word's
    vector, zeros before the first real word."""
    real_mask = np.asarray(real_mask, dtype=bool)
    n = real_mask.size
    out = np.zeros((n, real_features.shape[1]), dtype=real_features.dtype)
    if not real_mask.any():
        return out
    rank = np.cumsum(real_mask) - 1  # index among real words of the last real word at or before i
    has = rank >= 0
    out[has] = real_features[rank[has]]
    return out


def word_features(
    backbone: Any,
    words: Sequence[str],
    *,
    max_words: int = MAX_WORDS,
    keep_words: int = KEEP_WORDS,
    batch_size: int = 8,
    add_bos: bool = True,
    real_word: Callable[[str], bool] = is_real_word,
    show_progress: bool = False,
) -> np.ndarray:
    """Contextual features of every word: float32 (n_words, hidden_size).

    ``backbone`` is a ``berg_core.features.backbones.Backbone`` (truncated after the layer to read). Raises
    ``StimulusError`` when a window has more tokens than the backbone accepts.
    """
    import torch

    from berg_core.features.backbones import pad_batch

    if batch_size < 1:
        raise InvalidParameterError(f"batch_size must be >= 1, got {batch_size}")
    mask = np.array([real_word(w) for w in words], dtype=bool)
    real = [w for w, r in zip(words, mask) if r]
    feats = np.zeros((len(real), backbone.hidden_size), dtype=np.float32)
    if real:
        tokens = word_token_ids(backbone.tokenizer, real)
        ends = np.cumsum([len(t) for t in tokens])  # token count up to and including word i
        windows = context_windows(len(real), max_words, keep_words)
        bos = [backbone.tokenizer.bos_token_id] if add_bos else []
        limit = _max_positions(backbone)

        def window_ids(w: Window) -> list[int]:
            return bos + [t for ts in tokens[w.start:w.stop] for t in ts]

        lengths = [len(bos) + int(ends[w.stop - 1] - (ends[w.start - 1] if w.start else 0)) for w in windows]
        if limit is not None and max(lengths) > limit:
            i = int(np.argmax(lengths))
            raise StimulusError(f"words {windows[i].start}..{windows[i].stop - 1} need {lengths[i]} tokens in one context window, "
                                f"more than {backbone.name} accepts ({limit}); split the story or use shorter words")
        order = sorted(range(len(windows)), key=lambda i: -lengths[i])
        bar = progress_bar(show=show_progress, total=len(real), desc=f"{backbone.name.rsplit('/', 1)[-1]} words", unit="word")
        try:
            for b in range(0, len(order), batch_size):
                batch = [windows[i] for i in order[b:b + batch_size]]
                ids, attn = pad_batch([window_ids(w) for w in batch], backbone.tokenizer.pad_token_id)
                hidden = backbone.forward(ids, attn)
                rows, cols, targets = [], [], []
                for j, w in enumerate(batch):
                    base = ends[w.start - 1] if w.start else 0
                    wanted = np.arange(w.assign_from, w.stop)
                    rows.append(np.full(wanted.size, j))
                    cols.append(len(bos) + ends[wanted] - base - 1)  # last token of each assigned word
                    targets.append(wanted)
                r = torch.as_tensor(np.concatenate(rows), device=hidden.device)
                c = torch.as_tensor(np.concatenate(cols), device=hidden.device)
                feats[np.concatenate(targets)] = hidden[r, c].float().cpu().numpy()
                bar.update(sum(w.stop - w.assign_from for w in batch))
        finally:
            bar.close()
    return expand_to_all_words(feats, mask)


def _max_positions(backbone: Any) -> int | None:
    config = getattr(backbone.model, "config", None)
    for attr in ("max_position_embeddings", "n_positions"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def word_features_key(*, backbone: str, revision: str, layer: int, dtype: str, words: Sequence[str],
                      max_words: int = MAX_WORDS, keep_words: int = KEEP_WORDS, add_bos: bool = True,
                      recipe: str = "last-token/real-word:nonblank-not-'s") -> dict[str, Any]:
    """The ``berg_core.features.cache.cached_features`` key parts of ``word_features`` for one story.

    Onsets are not part of it: word features do not depend on timing, so a re-timed story reuses them.
    """
    from berg_core.features.cache import stimulus_hash

    return {"kind": "word_features", "backbone": backbone, "revision": revision, "layer": int(layer), "dtype": dtype,
            "words": stimulus_hash(words), "n_words": len(words), "max_words": max_words, "keep_words": keep_words,
            "add_bos": add_bos, "recipe": recipe}


__all__ = ["KEEP_WORDS", "MAX_WORDS", "Window", "context_windows", "expand_to_all_words", "is_real_word", "word_features",
           "word_features_key", "word_token_ids"]
