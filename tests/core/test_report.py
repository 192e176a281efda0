"""`berg report` and the reports written by search/train: one valid, self-contained HTML file (checked with html.parser,
no browser) with the figures embedded as PNG, every kept sentence with all its ROI values, and user text escaped."""

from __future__ import annotations

import base64
import csv
import json
from html.parser import HTMLParser

import numpy as np
import pytest

from berg_core.cli import main

MODEL = "test-sentence_length"  # tests/plugins/berg_testplugin: response = len(sentence) * (1, 2, 3)
HOSTILE = "<b>bold</b> & <script>alert(1)</script> \"quoted\" is the longest one by far"
SENTENCES = [HOSTILE, "a short one", "the cat sat on the mat", "hi", "mid length sentence", "x y", "what is this"]
VOID = {"meta", "img", "br", "hr", "input", "link"}


class Checker(HTMLParser):
    """Records tags, image sources, attributes and text; fails on a close tag that does not match the open one."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.starts: list[str] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self.cells: list[str] = []
        self.text: list[str] = []
        self.doctype = ""

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag, attrs):
        self.starts.append(tag)
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        self.links += [v for k, v in attrs.items() if k in ("href", "src") and v and not v.startswith("data:")]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)
        if self.stack and self.stack[-1] == "td":
            self.cells.append(data)


def parse(path) -> Checker:
    checker = Checker()
    checker.feed(path.read_text(encoding="utf-8"))
    checker.close()
    assert checker.doctype.lower() == "doctype html" and checker.stack == [], checker.stack
    assert checker.starts.count("html") == 1 and "title" in checker.starts
    assert "script" not in checker.starts and checker.links == []  # nothing runs, nothing is fetched
    for src in checker.images:
        assert src.startswith("data:image/png;base64,")
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    return checker


@pytest.fixture
def search_run(tmp_path):
    corpus = tmp_path / "corpus <i>&amp;.txt"  # a user path with markup in it
    corpus.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    out = tmp_path / "res.csv"
    assert main(["search", MODEL, "--input", str(corpus), "--top-k", "2", "--output", str(out), "--quiet"]) == 0
    return out, corpus


def test_search_report_written_by_search(search_run):
    out, corpus = search_run
    page = parse(out.with_name("res_report.html"))
    assert len(page.images) == 2  # histogram with cut-offs, drive/baseline/suppress bars
    text = "".join(page.text)
    assert HOSTILE in page.cells  # escaped in the file, the same text once parsed
    assert str(corpus) in page.cells  # the parameters, escaped
    assert "<script>" not in out.with_name("res_report.html").read_text(encoding="utf-8")
    assert MODEL in text
    # every kept sentence with all its ROI values
    with out.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 * 2 * 2
    raw = out.with_name("res_report.html").read_text(encoding="utf-8")
    for row in rows:
        assert row["sentence"] in page.cells
        for roi in ("roi_a", "roi_b", "roi_c"):
            assert f"<td class=\"num\">{float(row[roi]):.4g}</td>" in raw


def test_berg_report_command_search(search_run, tmp_path):
    out, _ = search_run
    report = tmp_path / "sub" / "r.html"
    assert main(["report", str(out), "--output", str(report), "--quiet"]) == 0
    page = parse(report)
    assert len(page.images) == 2 and HOSTILE in page.cells


def test_train_report(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((120, 6)).astype(np.float32)
    Y = (X @ rng.standard_normal((6, 5)) + rng.standard_normal((120, 5))).astype(np.float32)
    features = tmp_path / "X<&>.npy"  # a user path with markup in it
    np.save(features, X)
    np.save(tmp_path / "Y.npy", Y)
    (tmp_path / "rois.json").write_text(json.dumps({"<roi&1>": [0, 1], "two": [2, 3, 4]}), encoding="utf-8")
    run = tmp_path / "run"
    assert main(["train", "--features", str(features), "--responses", str(tmp_path / "Y.npy"), "--test", "90:",
                 "--out", str(run), "--permutations", "0", "--rois", str(tmp_path / "rois.json"), "--alphas", "0.1,1,10",
                 "--model-id", "m1", "--quiet"]) == 0
    page = parse(run / "report.html")
    assert len(page.images) == 3  # test-r histogram, per-ROI r, chosen alphas
    cc = np.load(run / "cc_raw.npy")
    cells = page.cells
    assert "<roi&1>" in cells and "m1" in cells
    assert "X&lt;&amp;&gt;.npy" in (run / "report.html").read_text(encoding="utf-8") and "X<&>" not in (run / "report.html").read_text(encoding="utf-8")
    assert cells[cells.index("<roi&1>") + 1] == f"{cc[:2].mean():.4f}"
    assert cells[cells.index("two") + 1] == f"{cc[2:].mean():.4f}"
    report = tmp_path / "again.html"
    assert main(["report", str(run), "-o", str(report), "-q"]) == 0
    assert len(parse(report).images) == 3


def test_report_errors_one_line(tmp_path, capsys):
    enc = tmp_path / "enc.npy"
    np.save(enc, np.zeros((2, 3)))
    cases = [(["report", str(enc), "-o", str(tmp_path / "r.html")], "neither a berg search result"),
             (["report", str(enc), "-o", str(tmp_path / "r.pdf")], ".html"),
             (["report", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "r.html")], "not found")]
    for argv, needle in cases:
        assert main(argv) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("berg: error:") and "\n" not in err and needle in err, err
    assert not (tmp_path / "r.html").exists()


def test_search_report_shows_the_sidecar_attributes_escaped(search_run, tmp_path, capsys):
    out, _ = search_run
    out.with_suffix(".json").write_text(json.dumps({"model_id": MODEL, "note": "<i>mine</i> & co"}), encoding="utf-8")
    report = tmp_path / "r.html"
    assert main(["report", str(out), "-o", str(report), "-q"]) == 0
    page = parse(report)
    assert "<i>mine</i> & co" in page.cells and "<i>mine" not in report.read_text(encoding="utf-8")
    out.with_suffix(".json").write_text("[1, 2", encoding="utf-8")
    assert main(["report", str(out), "-o", str(tmp_path / "r2.html")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("berg: error:") and "res.json" in err and "\n" not in err


def test_long_parameters_are_cut(search_run, tmp_path):
    out, _ = search_run
    out.with_suffix(".json").write_text(json.dumps({"columns": [f"voxel_{i}" for i in range(20000)]}), encoding="utf-8")
    report = tmp_path / "r.html"
    assert main(["report", str(out), "-o", str(report), "-q"]) == 0
    cell = next(c for c in parse(report).cells if c.startswith('["voxel_0"'))
    assert cell.endswith("characters in all)") and len(cell) < 2100 and "voxel_19999" not in cell


def test_big_selection_tables_are_cut_with_a_note(search_run, tmp_path, monkeypatch):
    import berg_core.figures.report as report

    monkeypatch.setattr(report, "MAX_TABLE_ROWS", 3)
    monkeypatch.setattr(report, "MAX_TABLE_COLUMNS", 2)
    out, _ = search_run
    path = tmp_path / "r.html"
    assert main(["report", str(out), "-o", str(path), "-q"]) == 0
    page = parse(path)
    text = "".join(page.text)
    assert "Shown: the first 3 of 12 rows and 2 of 3 output columns" in text
    html = path.read_text(encoding="utf-8")
    table = html[html.index("<h2>Selected sentences</h2>"):]
    assert table.count("<tr>") == 1 + 3 and "<th>roi_b</th>" in table and "<th>roi_c</th>" not in table
