"""The ``"tr_texts"`` stimulus kind: one str per fMRI TR, empty strings = silent TRs (``berg_core.as_tr_texts``)."""

from __future__ import annotations

import numpy as np
import pytest

from berg_core import EncoderSpec, StimulusError, as_tr_texts
from berg_core.encoder import validate_stimulus

TR_SPEC = EncoderSpec(model_id="test-tr-texts", family="t", factory="x:y", stimulus="tr_texts")


def test_tr_texts_keep_empty_trs_order_and_spacing():
    trs = ["", "So the", "", "  ", "quokka juggled\n", "so the"]
    assert as_tr_texts(trs) == trs  # silent TRs kept, nothing stripped
    assert as_tr_texts(("a", "")) == ["a", ""]
    assert as_tr_texts(np.array(["a", ""])) == ["a", ""]
    assert as_tr_texts([""]) == [""]
    assert as_tr_texts({"tr_texts": ["a", ""]}) == ["a", ""]


def test_validate_stimulus_dispatches_on_the_tr_texts_kind():
    assert validate_stimulus(TR_SPEC, ["hello", "", "world"]) == ["hello", "", "world"]  # a sentences model refuses ""
    with pytest.raises(StimulusError, match="not one str"):
        validate_stimulus(TR_SPEC, "hello world")


@pytest.mark.parametrize(("stimulus", "message"), [
    ("one string", "not one str; split the transcript by TR"),
    ([], "the stimulus is empty"),
    (["a", None], "TR 1 is a NoneType, not a str"),
    (np.array([["a", "b"]]), "must be 1-D"),
    ({"words": ["a"]}, "needs a 'tr_texts' key"),
    (3.5, "got float"),
    (["a\x00b"], "TR 0 contains a NUL character"),
    (["ok", "\udcff"], "TR 1 has an unpaired surrogate"),
])
def test_bad_tr_texts_are_one_line_errors(stimulus, message):
    with pytest.raises(StimulusError, match=message) as info:
        as_tr_texts(stimulus)
    assert "\n" not in str(info.value)
