"""The ``"tr_texts"`` stimulus kind: one str per fMRI TR, empty strings = silent TRs (``berg_core.as_tr_texts``)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from berg_core import Encoder, EncoderSpec, StimulusError, as_tr_texts
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


# -- .txt input for a tr_texts model (issue 13): one TR a line, an empty line = a silent TR -----------------------------


class TrLengthEncoder(Encoder):
    """TR i -> (len(text_i), i): the text of each TR and its position, so the rows show what the model received."""

    output_names = ["n_chars", "tr"]  # type: ignore[assignment]

    def _encode(self, trs, show_progress):
        return np.array([[len(t), i] for i, t in enumerate(trs)], dtype=float)


TR_MODEL = EncoderSpec(model_id="test-tr_lengths", family="t", factory=f"{__name__}:TrLengthEncoder", stimulus="tr_texts")


@pytest.fixture
def tr_model():
    from berg_core.registry import get_registry

    get_registry().specs[TR_MODEL.model_id] = TR_MODEL
    return TR_MODEL.model_id


def encode_txt(tmp_path, model, data: bytes, stdin=None):
    from berg_core.cli import main

    out = tmp_path / "pred.csv"
    source = "-" if stdin is not None else str(tmp_path / "in.txt")
    if stdin is None:
        (tmp_path / "in.txt").write_bytes(data)
    rc = main(["encode", model, "--input", source, "-o", str(out), "-q"])
    if rc != 0:
        return rc, None
    rows = list(csv.reader(out.open(encoding="utf-8", newline="")))
    return rc, rows


def with_stdin(monkeypatch, data: bytes) -> None:
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


@pytest.mark.parametrize("from_stdin", [False, True])
@pytest.mark.parametrize(("data", "trs"), [
    (b"\nSo the\n\n  \nquokka juggled\n", ["", "So the", "", "  ", "quokka juggled"]),  # blank at the start and middle
    (b"a\r\n\r\nb", ["a", "", "b"]),  # CRLF, no final newline
    (b"a\n\n", ["a", ""]),  # the final newline adds no TR, the blank line before it is one
    (b"\n", [""]),
    (b"\xef\xbb\xbfone\n\ntwo\n", ["one", "", "two"]),  # Excel's BOM dropped
])
def test_txt_lines_are_trs_and_blank_lines_silent_trs(tmp_path, monkeypatch, tr_model, from_stdin, data, trs):
    if from_stdin:
        with_stdin(monkeypatch, data)
    rc, rows = encode_txt(tmp_path, tr_model, data, stdin=from_stdin or None)
    assert rc == 0
    assert rows[0] == ["stimulus", "n_chars", "tr"]
    text = data.decode("utf-8-sig")
    assert len(rows) - 1 == len(trs) == text.count("\n") + (not text.endswith("\n"))  # row count = line count
    assert [r[0] for r in rows[1:]] == trs
    assert [float(r[1]) for r in rows[1:]] == [len(t) for t in trs]
    assert [float(r[2]) for r in rows[1:]] == list(range(len(trs)))


def test_read_stimulus_by_kind():
    from berg_core.store.userfiles import parse_sentences, parse_tr_texts

    assert parse_tr_texts("a\n\nb\n", "f.txt") == ["a", "", "b"]
    with pytest.raises(StimulusError, match="f.txt: line 2 is blank"):
        parse_sentences("a\n\nb\n", "f.txt")
    with pytest.raises(StimulusError, match="f.txt has no TRs; give one line per TR"):
        parse_tr_texts("", "f.txt")


@pytest.mark.parametrize("from_stdin", [False, True])
def test_a_sentence_model_still_refuses_blank_lines_with_their_number(tmp_path, monkeypatch, capsys, from_stdin):
    data = b"first\n\nthird\n"
    if from_stdin:
        with_stdin(monkeypatch, data)
    rc, _ = encode_txt(tmp_path, "test-sentence_length", data, stdin=from_stdin or None)
    err = capsys.readouterr().err.strip()
    assert rc == 1 and len(err.splitlines()) == 1
    assert f"{'<stdin>' if from_stdin else tmp_path / 'in.txt'}: line 2 is blank" in err
    assert not (tmp_path / "pred.csv").exists()


def test_an_empty_txt_for_a_tr_model_is_one_line(tmp_path, tr_model, capsys):
    rc, _ = encode_txt(tmp_path, tr_model, b"")
    err = capsys.readouterr().err.strip()
    assert rc == 1 and "has no TRs" in err and len(err.splitlines()) == 1
