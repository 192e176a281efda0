"""`berg search`: streaming top/bottom-k per output against brute-force ranking (generic sentence models)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from berg_core import BERG, InvalidParameterError, ResourceError, StimulusError
from berg_core.cli import main
from berg_core.errors import BergError
from berg_core.search import DRIVE, SUPPRESS, ExtremesTracker, iter_corpus, search

MODEL = "test-sentence_length"  # tests/plugins/berg_testplugin: response = len(sentence) * (1, 2, 3)


def brute_force(numbered: list[tuple[int, str]], responses: np.ndarray, columns: list[str], k: int) -> list[tuple]:
    """Rank everything at once: first occurrence of each text; higher (drive) / lower (suppress) first, ties by line."""
    first: dict[str, tuple[int, np.ndarray]] = {}
    for (line, text), row in zip(numbered, responses):
        first.setdefault(text, (line, row))
    out = []
    for j, column in enumerate(columns):
        items = [(row[j], line, text, row) for text, (line, row) in first.items()]
        drive = sorted(items, key=lambda t: (-t[0], t[1]))[:k]
        suppress = sorted(items, key=lambda t: (t[0], t[1]))[:k]
        for direction, ranked in ((DRIVE, drive), (SUPPRESS, suppress)):
            for rank, (_, line, text, row) in enumerate(ranked, start=1):
                out.append((column, direction, rank, text, line, tuple(float(v) for v in row)))
    return out


def as_tuples(hits) -> list[tuple]:
    return [(h.column, h.direction, h.rank, h.sentence, h.line, tuple(float(v) for v in h.responses)) for h in hits]


@pytest.mark.parametrize("k", [1, 3, 50])
@pytest.mark.parametrize("chunk", [1, 3, 7, 1000])
def test_tracker_equals_brute_force_with_ties_and_duplicates(k, chunk):
    rng = np.random.default_rng(k * 100 + chunk)
    texts = [f"s{rng.integers(0, 25)}" for _ in range(200)]  # many repeated texts
    values = {t: rng.integers(-4, 5, size=3).astype(np.float32) for t in set(texts)}  # few distinct values: many ties
    responses = np.stack([values[t] for t in texts])
    numbered = list(enumerate(texts, start=10))
    tracker = ExtremesTracker(["a", "b", "c"], k)
    for start in range(0, len(texts), chunk):
        part = numbered[start:start + chunk]
        tracker.add([t for _, t in part], [n for n, _ in part], responses[start:start + chunk])
    assert as_tuples(tracker.hits()) == brute_force(numbered, responses, ["a", "b", "c"], k)
    assert tracker.n_seen == 200


def write_corpus(path, lines: list[str], newline: str = "\n") -> None:
    path.write_bytes(newline.join(lines).encode("utf-8") + newline.encode())


CORPUS = ["a b c", "", "hello world", "zz", "hello world", "a much longer sentence here", "q", "  ", "ab", "xyz w",
          "tie one", "tie two", "1234567", "last line"]


@pytest.mark.parametrize("chunk", ["1", "4", "1024"])
def test_cli_search_matches_brute_force(tmp_path, capsys, chunk):
    corpus = tmp_path / "corpus.txt"
    write_corpus(corpus, CORPUS)
    out = tmp_path / "results.csv"
    code = main(["search", MODEL, "--input", str(corpus), "--top-k", "3", "--output", str(out), "--quiet", "--chunk-size", chunk,
                 "--batch-size", "2"])
    assert code == 0, capsys.readouterr().err
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["roi", "direction", "rank", "sentence", "roi_a", "roi_b", "roi_c", "line"]
    numbered = [(i, t) for i, t in enumerate(CORPUS, start=1) if t.strip()]
    with BERG().get_encoding_model(MODEL) as model:
        responses = model.encode([t for _, t in numbered])
    want = brute_force(numbered, responses, ["roi_a", "roi_b", "roi_c"], 3)
    got = [(r[0], r[1], int(r[2]), r[3], int(r[7]), tuple(float(v) for v in r[4:7])) for r in rows[1:]]
    assert got == want
    assert ("roi_a", "drive", 1, "a much longer sentence here", 6, (27.0, 54.0, 81.0)) in got
    assert [g[3] for g in got if g[:2] == ("roi_b", "suppress")] == ["q", "zz", "ab"]  # "zz" (line 4) before "ab" (line 9)
    assert sum(1 for g in got if g[3] == "hello world") <= 6  # never twice in one list


def test_roi_selection_order_and_stdin(tmp_path, monkeypatch):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(CORPUS) + "\n"))
    out = tmp_path / "r.csv"
    assert main(["search", MODEL, "--input", "-", "--top-k", "2", "--roi", "roi_c,roi_a", "--output", str(out), "--quiet"]) == 0
    with open(out, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["roi", "direction", "rank", "sentence", "roi_c", "roi_a", "line"]
    assert [r[0] for r in rows[1:]] == ["roi_c"] * 4 + ["roi_a"] * 4
    assert rows[1][3] == "a much longer sentence here" and rows[1][4:6] == ["81.0", "27.0"]


def test_streaming_reads_one_chunk_at_a_time():
    state = {"yielded": 0, "encoded": 0, "max_ahead": 0}

    def corpus():
        for i in range(1000):
            state["yielded"] += 1
            yield f"sentence {i} " + "x" * (i % 37)

    with BERG().get_encoding_model(MODEL) as model:
        encode = model.encode

        def watched(sentences, show_progress=False):
            state["max_ahead"] = max(state["max_ahead"], state["yielded"] - state["encoded"])
            state["encoded"] += len(sentences)
            return encode(sentences, show_progress=show_progress)

        model.encode = watched
        result = search(model, corpus(), top_k=2, chunk_size=16)
    assert state["encoded"] == 1000 and state["max_ahead"] <= 16
    assert result.n_sentences == 1000 and len(result.hits) == 3 * 2 * 2
    # longest = 3-digit i with i % 37 == 36 (49 chars): 110, 147, ...; ties go to the earlier line
    assert [(h.sentence, h.line) for h in result.hits[:2]] == [("sentence 110 " + "x" * 36, 111), ("sentence 147 " + "x" * 36, 148)]


def test_corpus_reading(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_bytes("\ufeffFirst line\r\n\r\n  second  \r\nthird".encode())
    assert list(iter_corpus(corpus)) == [(1, "First line"), (3, "  second  "), (4, "third")]
    corpus.write_bytes(b"fine\n\xff\xfe bad\n")
    with pytest.raises(StimulusError, match="line 2 is not valid UTF-8"):
        list(iter_corpus(corpus))


def test_errors(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    write_corpus(corpus, ["one sentence"])
    out = tmp_path / "r.csv"
    with BERG().get_encoding_model("test-timed_words", subject="S1") as timed, pytest.raises(InvalidParameterError, match="sentences"):
        search(timed, corpus, top_k=1)
    with BERG().get_encoding_model(MODEL) as model:
        with pytest.raises(InvalidParameterError, match="top-k"):
            search(model, corpus, top_k=0)
        with pytest.raises(InvalidParameterError, match="chunk"):
            search(model, corpus, top_k=1, chunk_size=0)
        with pytest.raises(ResourceError, match="not found"):
            search(model, tmp_path / "missing.txt", top_k=1)
        empty = tmp_path / "empty.txt"
        empty.write_text("\n  \n")
        with pytest.raises(StimulusError, match="no sentences"):
            search(model, empty, top_k=1)
    assert main(["search", MODEL, "--input", str(corpus), "--output", str(tmp_path / "r.txt"), "--quiet"]) == 1
    assert "CSV" in capsys.readouterr().err and not (tmp_path / "r.txt").exists()
    assert main(["search", MODEL, "--input", str(corpus), "--output", str(out), "--roi", "nope", "--quiet"]) == 1
    assert "unknown ROI" in capsys.readouterr().err and not out.exists()
    assert main(["search", MODEL, "--input", str(corpus), "--output", str(out), "-O", "novalue", "--quiet"]) == 1
    assert "KEY=VALUE" in capsys.readouterr().err
    assert main(["search", MODEL, "--input", str(corpus), "--output", str(out), "-O", "scale=2", "--quiet"]) == 0
    with open(out, newline="") as fh:
        assert list(csv.reader(fh))[1][4] == "24.0"  # scale=2 reached the model: 2 * len("one sentence")


def test_corpus_of_another_type():
    with BERG().get_encoding_model(MODEL) as model:
        with pytest.raises(InvalidParameterError, match="the corpus must be a path"):
            search(model, 5, top_k=1)
        with pytest.raises(StimulusError, match="line 2 is a int, not text"):
            search(model, ["fine", 3], top_k=1)


def test_tracker_guards():
    tracker = ExtremesTracker(["a"], 2)
    with pytest.raises(BergError, match="line 7"):
        tracker.add(["x", "y"], [6, 7], np.array([[1.0], [np.nan]]))
    with pytest.raises(InvalidParameterError, match="--roi"):
        ExtremesTracker([f"v{i}" for i in range(20000)], 10)
