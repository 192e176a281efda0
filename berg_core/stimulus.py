"""Stimulus validation shared by every family: sentences, words with onset times, or a list of words.

Refused with one ``StimulusError`` line (before any backbone runs):

* text that is not encodable Unicode (a lone surrogate, e.g. from ``errors="surrogateescape"``) or that
  holds a NUL character (a binary or UTF-16 file read as text);
* onsets that are not finite numbers or decrease; onsets spanning more than ``MAX_STORY_SECONDS`` (4 h:
  milliseconds passed as seconds would otherwise build a TR grid of ~10⁶ rows and exhaust memory) or
  farther than ``MAX_ONSET_SECONDS`` from zero (absolute timestamps: the 2 s TR grid loses its precision).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from berg_core.errors import StimulusError

#: the longest story (last onset − first onset, seconds) berg accepts; real stories last minutes
MAX_STORY_SECONDS = 4 * 3600.0
#: onsets must lie within ± this many seconds of zero (seconds from the story or scan start)
MAX_ONSET_SECONDS = 1e6


def check_text(text: str, what: str) -> None:
    """``StimulusError`` when ``text`` (named ``what``, e.g. "sentence 3") is not encodable UTF-8 text
    (lone surrogates) or contains a NUL character."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise StimulusError(f"{what} has an unpaired surrogate {text[exc.start]!r} at character {exc.start}: it is not valid "
                            "Unicode text; read the input as UTF-8 without errors='surrogateescape', or remove that character") from None
    nul = text.find("\x00")
    if nul >= 0:
        raise StimulusError(f"{what} contains a NUL character at character {nul}; remove it (a binary or UTF-16 file read as text?)")


def _check_onset_range(onsets: np.ndarray) -> None:
    """Onsets (finite, non-decreasing) in a plausible range of seconds."""
    far = np.abs(onsets) > MAX_ONSET_SECONDS
    if far.any():
        i = int(np.flatnonzero(far)[0])
        raise StimulusError(f"'word_onsets'[{i}] = {onsets[i]:g} s is more than {MAX_ONSET_SECONDS:g} s from zero; give onsets in "
                            "seconds from the start of the story (subtract the first onset)")
    span = float(onsets[-1] - onsets[0])
    if span > MAX_STORY_SECONDS:
        raise StimulusError(f"'word_onsets' span {span:g} s ({span / 3600:.1f} h), more than a story of {MAX_STORY_SECONDS / 3600:g} h; "
                            "onsets must be in seconds (milliseconds? divide by 1000), or split the story")


@dataclass(frozen=True)
class _TextList:
    """How one list-of-text stimulus kind reads and words its refusals (``_as_text_list``)."""

    unit: str  # what one entry is, in messages: "sentence", "word", "TR"
    takes: str  # what the model takes, in messages
    dict_key: str | None  # a dict stimulus gives its list under this key (None: a dict is refused)
    one_str: str | None  # None: a single str is one entry; else it is refused with this hint
    blank_ok: bool  # empty/blank entries kept (silent TRs) or refused


def _as_text_list(stimulus: Any, kind: _TextList) -> list[str]:
    """``stimulus`` (a list/tuple or 1-D array of str, a dict holding one, or a str when ``kind`` allows) -> ``list[str]``
    after every check of ``kind``, each failure one ``StimulusError`` line."""
    if isinstance(stimulus, Mapping):
        if kind.dict_key is None:
            raise StimulusError(f"this model takes {kind.takes}, not a dict of timed words")
        if kind.dict_key not in stimulus:
            raise StimulusError(f"this model takes {kind.takes}; a dict stimulus needs a {kind.dict_key!r} key")
        stimulus = stimulus[kind.dict_key]
    if isinstance(stimulus, str):
        if kind.one_str is not None:
            raise StimulusError(f"this model takes {kind.takes}, not one str; {kind.one_str}")
        items: list[Any] = [stimulus]
    elif isinstance(stimulus, np.ndarray):
        if stimulus.ndim != 1:
            raise StimulusError(f"a {kind.unit} array must be 1-D, got shape {stimulus.shape}; pass a flat list of str")
        items = stimulus.tolist()
    elif isinstance(stimulus, (list, tuple)):
        items = list(stimulus)
    else:
        raise StimulusError(f"this model takes {kind.takes}, got {type(stimulus).__name__}")
    if not items:
        raise StimulusError(f"the stimulus is empty; pass at least one {kind.unit}")
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise StimulusError(f"{kind.unit} {i} is a {type(item).__name__}, not a str; pass text only")
        if not kind.blank_ok and not item.strip():
            raise StimulusError(f"{kind.unit} {i} is {'an empty' if not item else 'a blank'} string; remove it or give it text "
                                f"(each {kind.unit} is one output row)")
        check_text(item, f"{kind.unit} {i}")
    return [str(t) for t in items]


SENTENCES = _TextList("sentence", "sentences (a str or a list of str)", None, None, blank_ok=False)
WORDS = _TextList("word", "a list of words (list of str)", "words", "split the text into words (e.g. text.split())", blank_ok=False)
TR_TEXTS = _TextList("TR", "one str per fMRI TR (a list of str; '' for a silent TR)", "tr_texts",
                     "split the transcript by TR (empty strings for silent TRs)", blank_ok=True)


def as_sentences(stimulus: Any) -> list[str]:
    """A str, list/tuple of str or 1-D array of str -> list of sentences (order kept, duplicates kept); an empty or
    blank sentence is refused."""
    return _as_text_list(stimulus, SENTENCES)


@dataclass(frozen=True)
class TimedWords:
    """A story: ``words`` (n,) and their ``onsets`` (n,) in seconds, finite, non-decreasing, spanning at most
    ``MAX_STORY_SECONDS``."""

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
    if isinstance(words, np.ndarray):
        words = words.tolist() if words.ndim == 1 else None
    elif not isinstance(words, (list, tuple)):
        words = None
    if words is None:
        raise StimulusError(f"'words' must be a list of str (one per word), got {type(stimulus['words']).__name__}")
    if not words:
        raise StimulusError("the stimulus is empty; pass at least one word")
    for i, w in enumerate(words):
        if not isinstance(w, str):
            raise StimulusError(f"word {i} is a {type(w).__name__}, not a str; pass text only")
        check_text(w, f"word {i}")
    if not any(w.strip() for w in words):
        raise StimulusError(f"all {len(words)} words are blank, so the story has no text (its features would all be zero); give the words")
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
    _check_onset_range(onsets)
    return TimedWords(words=[str(w) for w in words], onsets=onsets)


def as_words(stimulus: Any) -> list[str]:
    """A list/tuple or 1-D array of str (one entry per word, in order) -> ``list[str]`` (the ``"words"`` kind).

    Each word gets one output row; a model reads each word in the context of the words before it in the same
    call. A dict with a ``"words"`` key (e.g. a timed-words file) gives its words; onsets are ignored. A single
    str is refused (split it into words first), as are empty or blank words (a word needs text) and text that
    ``check_text`` refuses.
    """
    return _as_text_list(stimulus, WORDS)


def as_tr_texts(stimulus: Any) -> list[str]:
    """A list/tuple or 1-D array of str, **one entry per fMRI TR** (the words heard during that TR, in order) ->
    ``list[str]`` (the ``"tr_texts"`` kind; one output row per TR).

    Empty or blank strings are normal (silent TRs) and kept as given. A dict with a ``"tr_texts"`` key gives its
    list. Refused: a single str (split it per TR first), an empty list, non-str entries and text ``check_text``
    refuses.
    """
    return _as_text_list(stimulus, TR_TEXTS)
