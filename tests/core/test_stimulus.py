import numpy as np
import pytest

from berg_core import StimulusError
from berg_core.stimulus import as_sentences, as_timed_words


def test_sentences_accepts_str_list_array_and_keeps_duplicates():
    assert as_sentences("One two.") == ["One two."]
    assert as_sentences(["a b", "a b"]) == ["a b", "a b"]
    assert as_sentences(np.array(["x y", "z"])) == ["x y", "z"]


@pytest.mark.parametrize(
    "bad, match",
    [
        ([], "empty"),
        ("", "empty string"),
        (["ok", "  "], "sentence 1 is an empty string"),
        (["ok", 3], "sentence 1 is a int"),
        (np.array([["a"], ["b"]]), "1-D"),
        (42, "str or a list"),
        ({"words": ["a"], "word_onsets": [0.0]}, "not a dict"),
    ],
)
def test_sentences_rejects(bad, match):
    with pytest.raises(StimulusError, match=match):
        as_sentences(bad)


def test_timed_words_ok():
    story = as_timed_words({"words": ["I", "", "ran"], "word_onsets": [0, 0.5, 0.5]})
    assert story.words == ["I", "", "ran"]
    assert story.onsets.dtype == np.float64 and len(story) == 3


@pytest.mark.parametrize(
    "bad, match",
    [
        (["a"], "takes a dict"),
        ({"words": ["a"]}, "lacks 'word_onsets'"),
        ({"words": [], "word_onsets": []}, "empty"),
        ({"words": "a b", "word_onsets": [0, 1]}, "not one str"),
        ({"words": ["a", 1], "word_onsets": [0, 1]}, "word 1 is a int"),
        ({"words": ["a", "b"], "word_onsets": [0.0]}, "2 words but 1 onsets"),
        ({"words": ["a", "b"], "word_onsets": [0.0, float("nan")]}, "NaN or inf at index 1"),
        ({"words": ["a", "b"], "word_onsets": [0.0, float("inf")]}, "NaN or inf"),
        ({"words": ["a", "b", "c"], "word_onsets": [0.0, 2.0, 1.0]}, "decrease at index 2"),
        ({"words": ["a"], "word_onsets": ["x"]}, "must be numbers"),
    ],
)
def test_timed_words_rejects(bad, match):
    with pytest.raises(StimulusError, match=match):
        as_timed_words(bad)
