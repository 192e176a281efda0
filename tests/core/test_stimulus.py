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
        (["ok", "  "], "sentence 1 is a blank string"),
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


# ------------------------------------------------------------------ nonsense stimuli (issue 9 item 7)


@pytest.mark.parametrize("text, match", [
    ("caf\udce9 au lait", r"sentence 1 has an unpaired surrogate '\\udce9' at character 3"),
    ("\ud83d alone", "unpaired surrogate"),
    ("nul\x00byte", "sentence 1 contains a NUL character at character 3"),
])
def test_sentences_with_unencodable_text_are_refused(text, match):
    with pytest.raises(StimulusError, match=match) as err:
        as_sentences(["fine", text])
    str(err.value).encode("utf-8")  # the message itself prints on any terminal
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("word, match", [("\udcff", "word 2 has an unpaired surrogate"), ("a\x00", "word 2 contains a NUL")])
def test_words_with_unencodable_text_are_refused(word, match):
    with pytest.raises(StimulusError, match=match):
        as_timed_words({"words": ["a", "b", word], "word_onsets": [0.0, 0.5, 1.0]})


def test_a_story_of_blank_words_is_refused():
    with pytest.raises(StimulusError, match="all 3 words are blank"):
        as_timed_words({"words": ["", " ", "\t"], "word_onsets": [0.0, 0.5, 1.0]})
    as_timed_words({"words": ["", "a"], "word_onsets": [0.0, 0.5]})  # some blank words are fine


def test_surrogate_pairs_and_other_unicode_are_fine():
    assert as_sentences(["emoji \U0001f600 and caf\u00e9 and \u4e2d\u6587"])[0].endswith("\u6587")
    as_timed_words({"words": ["\U0001f600", "tab\there"], "word_onsets": [0.0, 1.0]})


def test_milliseconds_passed_as_seconds_are_refused_before_any_work():
    from berg_core.stimulus import MAX_STORY_SECONDS

    ms = np.arange(0, 600_000, 300.0)  # a 10-minute story in milliseconds
    with pytest.raises(StimulusError, match=r"span 599700 s \(166.6 h\).*milliseconds\? divide by 1000"):
        as_timed_words({"words": ["w"] * len(ms), "word_onsets": ms})
    ok = as_timed_words({"words": ["w"] * len(ms), "word_onsets": ms / 1000})
    assert ok.onsets[-1] == pytest.approx(599.7)
    as_timed_words({"words": ["a", "b"], "word_onsets": [10.0, 10.0 + MAX_STORY_SECONDS]})  # the cap itself is allowed
    with pytest.raises(StimulusError, match="more than a story of 4 h"):
        as_timed_words({"words": ["a", "b"], "word_onsets": [10.0, 10.0 + MAX_STORY_SECONDS + 1]})


def test_absolute_timestamps_are_refused():
    with pytest.raises(StimulusError, match=r"'word_onsets'\[0\] = 1.7e\+09 s .*subtract the first onset"):
        as_timed_words({"words": ["a", "b"], "word_onsets": [1.7e9, 1.7e9 + 1]})
    with pytest.raises(StimulusError, match="from zero"):
        as_timed_words({"words": ["a"], "word_onsets": [-2e6]})


@pytest.mark.parametrize("words", [None, 3, 2.5, {"a": 1}, np.array([["a"]])])
def test_words_that_are_not_a_list_are_one_line(words):
    with pytest.raises(StimulusError, match="'words' must be a list of str"):
        as_timed_words({"words": words, "word_onsets": [0.0]})
