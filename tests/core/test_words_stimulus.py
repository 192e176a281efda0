"""The ``"words"`` stimulus kind: a list of words in order, one output row per word (``berg_core.as_words``)."""

from __future__ import annotations

import numpy as np
import pytest

from berg_core import EncoderSpec, StimulusError, as_words
from berg_core.encoder import validate_stimulus

WORDS_SPEC = EncoderSpec(model_id="test-words", family="t", factory="x:y", stimulus="words")


def test_words_kept_in_order_with_duplicates_and_punctuation():
    assert as_words(["So,", "the", "the", "cat."]) == ["So,", "the", "the", "cat."]
    assert as_words(np.array(["a", "b"])) == ["a", "b"]
    assert as_words(("a", "b")) == ["a", "b"]
    assert as_words({"words": ["a", "b"], "word_onsets": [0.0, 1.0]}) == ["a", "b"]  # a timed-words file gives its words


def test_validate_stimulus_dispatches_on_the_words_kind():
    assert validate_stimulus(WORDS_SPEC, ["hello", "world"]) == ["hello", "world"]
    with pytest.raises(StimulusError, match="not one str"):  # a sentences model would take this str
        validate_stimulus(WORDS_SPEC, "hello world")


@pytest.mark.parametrize(("stimulus", "message"), [
    ("one string", "not one str; split the text into words"),
    ([], "the stimulus is empty"),
    (["a", ""], "word 1 is an empty string"),
    (["a", "  "], "word 1 is a blank string"),
    (["a", 3], "word 1 is a int, not a str"),
    (np.array([["a", "b"]]), "must be 1-D"),
    ({"onsets": [1]}, "needs a 'words' key"),
    (42, "got int"),
    (["a\x00b"], "word 0 contains a NUL character"),
    (["\udcff"], "word 0 has an unpaired surrogate"),
])
def test_bad_words_are_one_line_errors(stimulus, message):
    with pytest.raises(StimulusError, match=message) as info:
        as_words(stimulus)
    assert "\n" not in str(info.value)
