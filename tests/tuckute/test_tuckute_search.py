"""`berg search` with the Tuckute model: the streamed top/bottom-k equal brute-force ranking of the reference."""

from __future__ import annotations

import csv
import warnings

import numpy as np

from berg_core.cli import main
from berg_tuckute.encoder import SentenceLengthWarning
from berg_tuckute.plugin import MODEL_ID, ROIS


def corpus_lines(n: int = 40) -> list[str]:
    rng = np.random.default_rng(11)
    words = ["the", "river", "quietly", "sang", "old", "songs", "about", "stone", "bridges", "we", "never", "crossed",
             "brown", "fox", "laughter", "notes", "Boston", "sunny", "42", "numbers"]
    lines = [" ".join(rng.choice(words, rng.integers(2, 10))).capitalize() + "." for _ in range(n)]
    lines[7] = lines[3]  # a repeated candidate
    lines[20] = ""  # a blank line
    lines[31] = lines[3]
    return lines


def test_search_equals_brute_force_ranking(tmp_path, berg_files, berg_dir, tiny_gpt2_dir, reference):
    lines = corpus_lines()
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "results.csv"
    k = 4
    rois = ["lang_LH_netw", "lang_LH_IFGorb"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(["--berg-dir", str(berg_dir), "search", MODEL_ID, "--input", str(corpus), "--top-k", str(k), "--output", str(out),
                     "--roi", ",".join(rois), "--device", "cpu", "--batch-size", "3", "--chunk-size", "7", "--quiet",
                     "-O", f"backbone={tiny_gpt2_dir}", "-O", "layer=2"])
    assert code == 0
    assert sum(issubclass(w.category, SentenceLengthWarning) for w in caught) == 1  # once, though most chunks have such sentences
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["roi", "direction", "rank", "sentence", *rois, "line"]

    # brute force: the independent reference for every distinct sentence, ranked at once
    first: dict[str, int] = {}
    for number, text in enumerate(lines, start=1):
        if text.strip():
            first.setdefault(text, number)
    texts = list(first)
    want_values = reference(tiny_gpt2_dir, texts, 2, berg_files.clf, berg_files.neuroid_order, rois)
    expected = []
    for j, roi in enumerate(rois):
        for direction, sign in (("drive", -1.0), ("suppress", 1.0)):
            order = sorted(range(len(texts)), key=lambda i: (sign * want_values[i, j], first[texts[i]]))
            gaps = np.abs(np.diff(sign * want_values[order[: k + 1], j]))
            assert gaps.min() > 1e-4  # no near-tie the 1e-5 tolerance could flip
            for rank, i in enumerate(order[:k], start=1):
                expected.append((roi, direction, rank, texts[i], first[texts[i]], want_values[i]))
    assert len(rows) - 1 == len(expected) == 2 * 2 * k
    for row, (roi, direction, rank, text, line, values) in zip(rows[1:], expected):
        assert (row[0], row[1], int(row[2]), row[3], int(row[-1])) == (roi, direction, rank, text, line)
        np.testing.assert_allclose(np.array(row[4:-1], dtype=float), values, atol=1e-5, rtol=0)
    assert all(r in ROIS for r in rois)
