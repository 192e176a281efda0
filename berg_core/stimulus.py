"""Stimulus validation shared by every family: sentences, or words with onset times."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from berg_core.errors import StimulusError


def as_sentences(stimulus: Any) -> list[str]:
    """A str, list/tuple of str or 1-D array of str -> list of sentences (order kept, duplicates kept)."""
    if isinstance(stimulus, str):
        items: list[Any] = [stimulus]
    elif isinstance(stimulus, Mapping):
        raise StimulusError("this model takes sentences (a str or a list of str), not a dict of timed words")
    elif isinstance(stimulus, np.ndarray):
        if stimulus.ndim != 1:
            raise StimulusError(f"a sentence array must be 1-D, got shape {stimulus.shape}; pass a flat list of sentences")
        items = stimulus.tolist()
    elif isinstance(stimulus, (list, tuple)):
        items = list(stimulus)
    else:
        raise StimulusError(f"stimulus must be a str or a list of str, got {type(stimulus).__name__}")
    if not items:
        raise StimulusError("the stimulus is empty; pass at least one sentence")
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise StimulusError(f"sentence {i} is a {type(item).__name__}, not a str; pass text only")
        if not item.strip():
            raise StimulusError(f"sentence {i} is an empty string; remove it or give it text")
    return [str(s) for s in items]


@dataclass(frozen=True)
class TimedWords:
    """A story: ``words`` (n,) and their ``onsets`` (n,) in seconds, finite and non-decreasing."""

    words: list[str]
    onsets: np.ndarray

    def __len__(self) -> int:
        return len(self.words)


def as_timed_words(stimulus: Any) -> TimedWords:
    """``{"words": [...], "word_onsets": [...]}`` -> ``TimedWords`` after every check."""
    if not isinstance(stimulus, Mapping):
        raise StimulusError(
            f"this model takes a dict {{'words': [...], 'word_onsets': [...]}}, got {type(stimulus).__name__}"
        )
    missing = [k for k in ("words", "word_onsets") if k not in stimulus]
    if missing:
        raise StimulusError(f"the stimulus dict lacks {', '.join(repr(k) for k in missing)}; give 'words' and 'word_onsets'")
    words = stimulus["words"]
    if isinstance(words, str):
        raise StimulusError("'words' must be a list of str, not one str; split the text into words")
    words = list(np.asarray(words).tolist()) if isinstance(words, np.ndarray) else list(words)
    if not words:
        raise StimulusError("the stimulus is empty; pass at least one word")
    for i, w in enumerate(words):
        if not isinstance(w, str):
            raise StimulusError(f"word {i} is a {type(w).__name__}, not a str; pass text only")
    try:
        onsets = np.asarray(stimulus["word_onsets"], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise StimulusError(f"'word_onsets' must be numbers (seconds): {exc}") from exc
    if onsets.ndim != 1:
        raise StimulusError(f"'word_onsets' must be 1-D, got shape {onsets.shape}")
    if len(onsets) != len(words):
        raise StimulusError(f"{len(words)} words but {len(onsets)} onsets; give one onset (s) per word")
    if not np.all(np.isfinite(onsets)):
        raise StimulusError(f"'word_onsets' has NaN or inf at index {int(np.flatnonzero(~np.isfinite(onsets))[0])}; give finite times in seconds")
    if np.any(np.diff(onsets) < 0):
        i = int(np.flatnonzero(np.diff(onsets) < 0)[0]) + 1
        raise StimulusError(f"'word_onsets' decrease at index {i} ({onsets[i - 1]} -> {onsets[i]}); onsets must be non-decreasing")
    return TimedWords(words=[str(w) for w in words], onsets=onsets)
