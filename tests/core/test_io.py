"""Input files, output places and the encode/search command lines (issue 9, items 8 and 9)."""

import csv
import io
import json

import numpy as np
import pytest

from berg_core import facade
from berg_core.cli import main
from berg_core.errors import InvalidParameterError, ResourceError, StimulusError
from berg_core.store.userfiles import check_output_path, read_stimulus, read_voxel_index, write_responses

SENTENCE = "test-sentence_length"
TIMED = "test-timed_words"


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def no_model_load(monkeypatch):
    """Fail the test if a model is loaded: the mistake must be found before."""
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the mistake was reported")

    monkeypatch.setattr(facade.BERG, "get_encoding_model", refuse)


# ------------------------------------------------------------------------------- item 9: command lines


def test_search_without_output_prints_csv(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a\nabcd\nab\n", encoding="utf-8")
    code, out, err = run_cli(capsys, "search", SENTENCE, "--input", str(corpus), "--top-k", "50", "--quiet")  # the README's form
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["roi", "direction", "rank", "sentence", "roi_a", "roi_b", "roi_c", "line"]
    assert [r[3] for r in rows[1:4]] == ["abcd", "ab", "a"]  # roi_a, drive: longest first
    assert len(rows) == 1 + 3 * 2 * 3


def test_roi_flags_append_and_take_comma_lists(capsys):
    code, out, _ = run_cli(capsys, "encode", SENTENCE, "abc", "--roi", "roi_c", "--roi", "roi_a", "--json")
    assert code == 0 and json.loads(out)["columns"] == ["roi_c", "roi_a"]
    code, out, _ = run_cli(capsys, "encode", SENTENCE, "abc", "--roi", "roi_b,roi_a", "--roi", "roi_c", "--json")
    assert json.loads(out)["columns"] == ["roi_b", "roi_a", "roi_c"]


def test_roi_does_not_swallow_the_sentence(capsys):
    code, out, err = run_cli(capsys, "encode", SENTENCE, "--roi", "roi_b", "a sentence", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["columns"] == ["roi_b"] and data["responses"] == [[20.0]]  # 2 * len("a sentence")


def test_roi_without_names(capsys, no_model_load):
    code, _, err = run_cli(capsys, "encode", SENTENCE, "abc", "--roi", ",")
    assert code == 1 and "--roi needs ROI names" in err


def test_blank_line_in_input_is_refused_with_its_number(tmp_path, capsys, no_model_load):
    sentences = tmp_path / "s.txt"
    sentences.write_text("first\n\nthird\n", encoding="utf-8")
    code, _, err = run_cli(capsys, "encode", SENTENCE, "--input", str(sentences))
    assert code == 1 and err.count("\n") == 1 and "line 2 is blank" in err


def test_trailing_blank_lines_and_unicode_separators_keep_rows_aligned(tmp_path):
    sentences = tmp_path / "s.txt"
    sentences.write_bytes("one\r\ntwo\u2028still two\x0cand more\n\n  \n".encode())
    assert read_stimulus(sentences) == ["one", "two\u2028still two\x0cand more"]


def test_excel_csv_with_bom_and_crlf_is_read(tmp_path, capsys):
    story = tmp_path / "story.csv"
    story.write_bytes(b"\xef\xbb\xbfWord,Onset\r\nI,0.0\r\nran,0.5\r\nhome,2.5\r\n")
    assert read_stimulus(story) == {"words": ["I", "ran", "home"], "word_onsets": [0.0, 0.5, 2.5]}
    code, out, err = run_cli(capsys, "encode", TIMED, "--subject", "S1", "--input", str(story), "--json")
    assert code == 0, err
    assert json.loads(out)["responses"][0] == [2.0] * 4
    tsv = tmp_path / "story.tsv"
    tsv.write_bytes(b"\xef\xbb\xbfword\tonset\nI\t0\n")
    assert read_stimulus(tsv)["words"] == ["I"]
    bom_txt = tmp_path / "s.txt"
    bom_txt.write_bytes(b"\xef\xbb\xbfHello there.\n")
    assert read_stimulus(bom_txt) == ["Hello there."]


@pytest.mark.parametrize("ext, data, message", [
    (".txt", b"fine\nbad \xff byte\n", "line 2 is not valid UTF-8"),
    (".csv", b"word,onset\nna\xefve,0\n", "line 2 is not valid UTF-8"),
    (".json", b'{"words": ["\xc3"]}', "line 1 is not valid UTF-8"),
    (".json", b"[" * 100_000, "nested too deeply"),
    (".json", b"{oops", "not valid JSON"),
    (".csv", b"word,onset\nI\n", "data row 2 has 1 fields but the header has 2"),
    (".csv", b"word,onset\nI,0,extra\n", "data row 2 has 3 fields"),
    (".csv", b'word,onset\n"' + b"x" * 200_000 + b'",0\n', "not a readable CSV file"),
    (".csv", b"word,onset\nI,soon\n", "onset 'soon' is not a number"),
    (".csv", b"text\nhello\n", "needs a 'word' and an 'onset' column"),
    (".csv", b"word,onset\n", "no rows"),
    (".txt", b"\n \n", "has no sentences"),
    (".docx", b"x", "unknown input type '.docx'"),
])
def test_bad_input_files_are_one_line_before_loading(tmp_path, capsys, no_model_load, ext, data, message):
    path = tmp_path / f"input{ext}"
    path.write_bytes(data)
    code, _, err = run_cli(capsys, "encode", TIMED if ext in {".csv", ".json"} else SENTENCE, "--input", str(path))
    assert code == 1 and err.startswith("berg: error: ") and err.count("\n") == 1, err
    assert message in err


def test_input_folder_and_missing_file(tmp_path, capsys, no_model_load):
    assert run_cli(capsys, "encode", SENTENCE, "--input", str(tmp_path))[0] == 1  # a folder (no extension)
    (tmp_path / "dir.txt").mkdir()
    code, _, err = run_cli(capsys, "encode", SENTENCE, "--input", str(tmp_path / "dir.txt"))
    assert code == 1 and "is a folder" in err
    code, _, err = run_cli(capsys, "search", SENTENCE, "--input", str(tmp_path / "nope.txt"))
    assert code == 1 and "not found" in err


def test_encode_reads_sentences_from_stdin(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO("\ufeffab\nabcd\n".encode()), encoding="utf-8"))
    code, out, err = run_cli(capsys, "encode", SENTENCE, "--input", "-", "--json")
    assert code == 0, err
    assert json.loads(out)["responses"] == [[2.0, 4.0, 6.0], [4.0, 8.0, 12.0]]
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"ok\n\xff\n"), encoding="utf-8"))
    code, _, err = run_cli(capsys, "encode", SENTENCE, "--input", "-")
    assert code == 1 and "<stdin>: line 2 is not valid UTF-8" in err
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"ok\n\xff\n"), encoding="utf-8"))
    code, _, err = run_cli(capsys, "search", SENTENCE, "--input", "-", "--quiet")
    assert code == 1 and "<stdin>: line 2 is not valid UTF-8" in err


# ------------------------------------------------------------------------------- item 8: voxel files


def _npy(array, **kwargs):
    buf = io.BytesIO()
    np.save(buf, array, **kwargs)
    return buf.getvalue()


@pytest.mark.parametrize("name, data, message", [
    ("mask.txt", b"1, 0 1\n0\n", None),
    ("mask.npy", _npy(np.array([1, 0, 1, 0], dtype=np.int8)), None),
    ("mask.npy", _npy(np.array([True, False, True, False])), None),
    ("mask.npy", _npy(np.array([{"a": 1}], dtype=object), allow_pickle=True), "holds object values"),
    ("mask.npy", b"\x93NUMPY\x01\x00\x10\x00{'descr': 'zz'}    \n", "not a valid .npy file"),
    ("mask.npy", b"\x93NUMPY\x09\x00", "not a valid .npy file"),
    ("mask.npy", _npy(np.zeros(1000))[:200], "truncated or declares an implausible shape"),
    ("mask.npy", _npy(np.zeros((2, 2))), "shape (2, 2)"),
    ("mask.npy", _npy(np.array(["a"])), "holds <U1 values"),
    ("mask.npy", _npy(np.zeros(4, dtype=[("a", "<i4")])), "give a numeric 0/1 mask"),
    ("mask.txt", b"1 0 x", "could not convert string to float: 'x'"),
    ("mask.txt", b"1 0 2 0", "only 0 and 1"),
    ("mask.txt", b"nan 1 0 0", "only 0 and 1"),
    ("mask.txt", b"", "is empty"),
    ("mask.txt", b"\xff\xfe1\x000", "not valid UTF-8"),
])
def test_voxel_files(tmp_path, capsys, monkeypatch, name, data, message):
    path = tmp_path / name
    path.write_bytes(data)
    if message is None:
        np.testing.assert_array_equal(read_voxel_index(path), [1, 0, 1, 0])
        code, out, err = run_cli(capsys, "encode", TIMED, "--subject", "S1", "--voxels", str(path), "--json",
                                 "--input", str(_story(tmp_path)))
        assert code == 0, err
        return
    with pytest.raises((InvalidParameterError, StimulusError), match=message.replace("(", r"\(").replace(")", r"\)")):
        read_voxel_index(path)
    monkeypatch.setattr(facade.BERG, "get_encoding_model", lambda *a, **k: pytest.fail("model loaded before the voxel file was read"))
    code, _, err = run_cli(capsys, "encode", TIMED, "--subject", "S1", "--voxels", str(path), "--input", str(_story(tmp_path)))
    assert code == 1 and err.count("\n") == 1 and message in err


def _story(tmp_path):
    story = tmp_path / "story.json"
    story.write_text(json.dumps({"words": ["a", "b"], "word_onsets": [0.0, 1.0]}))
    return story


# ------------------------------------------------------------------------------- item 8: output places


@pytest.mark.parametrize("where, message", [
    ("folder", "is a folder"),
    ("under_file", "is a file, not a folder"),
    ("bad_ext", "unknown output type '.xlsx'"),
    ("no_ext", "unknown output type 'out'"),
    ("nul", "not a valid path"),
])
def test_bad_output_place_is_one_line_before_loading(tmp_path, capsys, no_model_load, where, message):
    afile = tmp_path / "afile"
    afile.write_text("x")
    (tmp_path / "out.npy").mkdir()
    (tmp_path / "out.csv").mkdir()
    target = {"folder": tmp_path / "out.npy", "under_file": afile / "deeper" / "out.csv", "bad_ext": tmp_path / "out.xlsx",
              "no_ext": tmp_path / "out", "nul": str(tmp_path / "o\x00ut.csv")}[where]
    code, _, err = run_cli(capsys, "encode", SENTENCE, "abc", "--output", str(target))
    assert code == 1 and err.count("\n") == 1 and message in err, err
    assert afile.read_text() == "x"
    code, _, err = run_cli(capsys, "search", SENTENCE, "--input", str(afile), "--output", str(target).replace(".npy", ".csv"))
    assert code == 1 and err.count("\n") == 1


def test_unwritable_folder(tmp_path, monkeypatch):
    monkeypatch.setattr("os.access", lambda path, mode: False)  # as root, chmod would not stop a write
    with pytest.raises(ResourceError, match="is not writable"):
        check_output_path(tmp_path / "x.npy")


def test_output_in_new_folders_is_written(tmp_path):
    target = tmp_path / "new" / "deeper" / "x.csv"
    write_responses(target, np.ones((1, 2), dtype=np.float32), ["a", "b"])
    assert target.read_text().splitlines() == ["a,b", "1.0,1.0"]


def test_write_failure_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    def failing_disk(*args, **kwargs):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(np, "save", failing_disk)
    target = tmp_path / "x.npy"
    code, _, err = run_cli(capsys, "encode", SENTENCE, "abc", "--output", str(target))
    assert code == 1 and err.count("\n") == 1 and "Input/output error" in err and "nothing was written" in err
    assert list(tmp_path.iterdir()) == []


def test_stimulus_is_checked_before_loading(tmp_path, capsys, no_model_load):
    code, _, err = run_cli(capsys, "encode", TIMED, "--subject", "S1", "just a sentence")
    assert code == 1 and "takes a dict" in err
    story = tmp_path / "story.json"
    story.write_text('{"words": ["a", "b"], "word_onsets": [2.0, 1.0]}')
    code, _, err = run_cli(capsys, "encode", TIMED, "--subject", "S1", "--input", str(story))
    assert code == 1 and "decrease" in err
    story.write_text('{"words": null, "word_onsets": []}')
    code, _, err = run_cli(capsys, "encode", TIMED, "--subject", "S1", "--input", str(story))
    assert code == 1 and err.count("\n") == 1 and "must be a list of str" in err


def test_batch_size_top_k_and_chunk_size_are_checked_before_loading(tmp_path, capsys, no_model_load):
    corpus = tmp_path / "c.txt"
    corpus.write_text("a\n")
    for argv, message in (
        (["encode", SENTENCE, "abc", "--batch-size", "0"], "--batch-size must be 1 or more"),
        (["search", SENTENCE, "--input", str(corpus), "--top-k", "0"], "--top-k must be 1 or more"),
        (["search", SENTENCE, "--input", str(corpus), "--chunk-size", "-2"], "--chunk-size must be 1 or more"),
        (["search", SENTENCE, "--input", str(corpus), "--output", str(tmp_path / "r.tsv")], "writes CSV"),
    ):
        code, _, err = run_cli(capsys, *argv)
        assert code == 1 and message in err, (argv, err)
