"""The `berg` CLI: in-process for speed, plus subprocesses where the real console script matters."""

import csv
import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from berg_core.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_and_json(capsys):
    code, out, _ = run_cli(capsys, "list")
    assert code == 0 and "see `berg plugins`" in out
    rows = [line.split() for line in out.splitlines()]
    assert rows[0] == ["id", "family", "subjects", "stimulus"]
    assert [r for r in rows if r[0].startswith("test-")] == [["test-sentence_length", "testplugin", "—", "sentences"],
                        ["test-timed_words", "testplugin", "S1–S2", "(2)", "timed_words"]]
    code, out, _ = run_cli(capsys, "list", "timed", "--json")
    assert [m["model_id"] for m in json.loads(out)] == ["test-timed_words"]


def test_plugins_json_shows_failures_and_duplicates(capsys):
    code, out, _ = run_cli(capsys, "plugins", "--json")
    data = json.loads(out)
    by_name = {p["name"]: p for p in data["plugins"]}
    assert "ModuleNotFoundError" in by_name["broken"]["error"]
    assert by_name["testplugin"]["version"] == "0.0.1"
    assert sorted(data["duplicates"]["test-duplicate"]) == ["dupe", "testplugin"]


def test_info_text_and_json(capsys):
    code, out, _ = run_cli(capsys, "info", "test-sentence_length")
    assert code == 0 and "option scale = 1.0" in out and "outputs: 3 ROIs (roi_a, roi_b, roi_c)" in out
    assert "A toy card." not in out and "berg info test-sentence_length --card" in out
    code, out, _ = run_cli(capsys, "info", "test-sentence_length", "--card")
    assert code == 0 and out.rstrip().endswith("A toy card.")
    code, out, _ = run_cli(capsys, "info", "test-sentence_length", "--json")
    data = json.loads(out)
    assert data["rois"] == ["roi_a", "roi_b", "roi_c"] and data["card"] == "A toy card."


def test_encode_to_csv_npy_h5(capsys, tmp_path):
    csv_path, npy_path, h5_path = tmp_path / "x.csv", tmp_path / "x.npy", tmp_path / "x.h5"
    assert run_cli(capsys, "encode", "test-sentence_length", "abc", "abcdef", "--roi", "roi_b", "--roi", "roi_a", "--output", str(csv_path))[0] == 0
    rows = list(csv.reader(csv_path.open()))
    assert rows[0] == ["stimulus", "roi_b", "roi_a"]  # a leading sentence column (issue 11)
    assert [r[0] for r in rows[1:]] == ["abc", "abcdef"]
    assert [[float(v) for v in r[1:]] for r in rows[1:]] == [[6.0, 3.0], [12.0, 6.0]]
    sentences = tmp_path / "s.txt"
    sentences.write_text("abc\nabcdef\n")
    assert run_cli(capsys, "encode", "test-sentence_length", "--input", str(sentences), "-o", str(npy_path))[0] == 0
    np.testing.assert_array_equal(np.load(npy_path), [[3, 6, 9], [6, 12, 18]])
    assert run_cli(capsys, "encode", "test-sentence_length", "abc", "-o", str(h5_path))[0] == 0
    with h5py.File(h5_path) as f:
        assert f["responses"].shape == (1, 3)
        assert [c.decode() for c in f["columns"][()]] == ["roi_a", "roi_b", "roi_c"]
        assert f.attrs["model_id"] == "test-sentence_length"


def test_encode_stdout_and_json(capsys):
    code, out, _ = run_cli(capsys, "encode", "test-sentence_length", "ab", "--json")
    assert json.loads(out)["responses"] == [[2.0, 4.0, 6.0]]
    code, out, _ = run_cli(capsys, "encode", "test-sentence_length", "ab")
    assert out.splitlines()[0] == "roi_a\troi_b\troi_c"


def test_encode_timed_words_from_csv(capsys, tmp_path):
    story = tmp_path / "story.csv"
    story.write_text("word,onset\nI,0.0\nran,0.5\nhome,2.5\n")
    code, out, _ = run_cli(capsys, "encode", "test-timed_words", "--subject", "S2", "--input", str(story), "--json")
    assert code == 0 and json.loads(out)["responses"][0] == [2.0] * 4


@pytest.mark.parametrize(
    "argv, message",
    [
        (["encode", "nope-model", "x"], "unknown model 'nope-model'"),
        (["encode", "test-sentence_length"], "either as arguments or with --input"),
        (["encode", "test-sentence_length", "x", "--roi", "bad"], "unknown ROI 'bad'"),
        (["encode", "test-sentence_length", "x", "-o", "out.xlsx"], "unknown output type '.xlsx'"),
        (["encode", "test-sentence_length", "--input", "missing.txt"], "not found"),
        (["encode", "test-timed_words", "x", "--subject", "S1"], "takes a dict"),
        (["info", "test-timed_words", "--subject", "S7"], "unknown subject 'S7'"),
    ],
)
def test_errors_are_one_line_exit_1(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, *argv)
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("berg: error: ") and message in err
    assert not (tmp_path / "out.xlsx").exists()


def test_console_script_help_works_with_broken_plugin():
    result = subprocess.run([sys.executable, "-m", "berg_core.cli", "--help"], capture_output=True, text=True, check=True)
    assert "encode" in result.stdout
    result = subprocess.run([sys.executable, "-m", "berg_core.cli", "list"], capture_output=True, text=True)
    assert result.returncode == 0 and "test-sentence_length" in result.stdout


def test_encode_passes_model_options(capsys):
    code, out, _ = run_cli(capsys, "encode", "test-sentence_length", "ab", "-O", "scale=0.5", "--json")
    assert code == 0 and json.loads(out)["responses"] == [[1.0, 2.0, 3.0]]
    code, _, err = run_cli(capsys, "encode", "test-sentence_length", "ab", "-O", "scale")
    assert code == 1 and "KEY=VALUE" in err
