"""`berg plot` and the default figures of search/train: files are valid PNG/SVG, and the plotted numbers (read back from
the figure's artists) equal numbers computed here independently from the data."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from berg_core.cli import main
from berg_core.figures import figures_for
from berg_core.figures.plots import baseline_sample, baseline_size
from berg_core.figures.readers import read_histogram
from berg_core.store.userfiles import write_responses

MODEL = "test-sentence_length"  # tests/plugins/berg_testplugin: response = len(sentence) * (1, 2, 3)
FACTORS = {"roi_a": 1.0, "roi_b": 2.0, "roi_c": 3.0}
SENTENCES = ["a short one", "the cat sat on the mat", "<b>bold</b> & <script>alert(1)</script> is the longest one by far",
             "hi", "mid length sentence", "another sentence of words", "x y", "what is this", "one more line of text",
             "tiny", "the quick brown fox jumped", "hello over there"]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path, min_bytes=5000):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > min_bytes, (path, len(data))


def assert_svg(path, min_bytes=5000):
    text = path.read_text(encoding="utf-8")
    assert "<svg" in text[:2000] and text.rstrip().endswith("</svg>") and len(text) > min_bytes


def bars(ax):
    return [p for p in ax.patches if p.__class__.__name__ == "Rectangle"]


def vlines(ax):
    return [float(line.get_xdata()[0]) for line in ax.get_lines() if len(set(np.atleast_1d(line.get_xdata()))) == 1]


# ------------------------------------------------------------------------------------- encode


def test_encode_bars_from_csv_png(tmp_path):
    values = np.array([[0.5, -1.25, 2.0, 0.0], [1.5, 0.25, -0.75, 3.0]])
    path = tmp_path / "enc.csv"
    write_responses(path, values, ["IFG", "AntTemp", "PostTemp", "AG"])
    out = tmp_path / "enc.png"
    assert main(["plot", str(path), "--output", str(out), "--quiet"]) == 0
    assert_png(out)
    [(name, fig)] = figures_for(path)
    assert name == "bars"
    heights = [b.get_height() for b in bars(fig.axes[0])]
    np.testing.assert_allclose(heights, values.reshape(-1))  # row by row, one bar per column
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["IFG", "AntTemp", "PostTemp", "AG"]


def test_encode_csv_with_leading_stimulus_column(tmp_path):
    path = tmp_path / "enc.csv"
    path.write_text("stimulus,IFG,AG\nThe dog barked.,0.5,1.5\n\"A, b\",2,-1\n", encoding="utf-8")
    [(_, fig)] = figures_for(path)
    np.testing.assert_allclose([b.get_height() for b in bars(fig.axes[0])], [0.5, 1.5, 2, -1])
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["The dog barked.", "A, b"]


def test_encode_heatmap_npy_svg(tmp_path):
    values = np.random.default_rng(0).standard_normal((20, 6)).astype(np.float32)
    path = tmp_path / "enc.npy"
    np.save(path, values)
    out = tmp_path / "heat.svg"
    assert main(["plot", str(path), "-o", str(out), "--quiet"]) == 0
    assert_svg(out)
    [(name, fig)] = figures_for(path)
    assert name == "heatmap"
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), values.astype(np.float64))


def test_encode_h5_columns_and_selection(tmp_path):
    values = np.arange(12, dtype=np.float32).reshape(3, 4)
    path = tmp_path / "enc.h5"
    write_responses(path, values, ["a", "b", "c", "d"], attrs={"model_id": "m"})
    [(_, fig)] = figures_for(path, "bars", columns=["d", "b"])
    np.testing.assert_allclose([b.get_height() for b in bars(fig.axes[0])], values[:, [3, 1]].reshape(-1))


def test_timecourse(tmp_path):
    t = np.arange(40)
    values = np.stack([np.sin(t / 5), np.cos(t / 3), t / 40.0], axis=1)
    path = tmp_path / "story.npy"
    np.save(path, values)
    out = tmp_path / "tc.png"
    assert main(["plot", str(path), "--kind", "timecourse", "--columns", "col_2,col_0", "--tr", "2", "-o", str(out), "-q"]) == 0
    assert_png(out)
    [(_, fig)] = figures_for(path, "timecourse", columns=["col_2", "col_0"], tr=2.0)
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["col_2", "col_0"]
    np.testing.assert_allclose(lines[0].get_ydata(), values[:, 2])
    np.testing.assert_allclose(lines[1].get_ydata(), values[:, 0])
    np.testing.assert_allclose(lines[0].get_xdata(), t * 2.0)
    assert fig.axes[0].get_xlabel() == "time (s)"


# ------------------------------------------------------------------------------------- search


@pytest.fixture
def search_run(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    out = tmp_path / "res.csv"
    assert main(["search", MODEL, "--input", str(corpus), "--top-k", "3", "--output", str(out), "--bin-width", "2", "--quiet"]) == 0
    return out


def test_search_writes_histogram_figures_and_report(search_run):
    out = search_run
    for name in ("res_histogram.png", "res_bars.png"):
        assert_png(out.with_name(name))
    assert out.with_name("res_report.html").stat().st_size > 10000
    # the single-pass histogram: counts of floor(response / width) per ROI, computed here from the sentence lengths
    hist = read_histogram(out.with_name("res_histogram.csv"))
    for roi, factor in FACTORS.items():
        bins, counts = np.unique(np.floor(np.array([len(s) * factor for s in SENTENCES]) / 2.0).astype(int), return_counts=True)
        starts, ends, got = hist.bins[roi]
        np.testing.assert_allclose(starts, bins * 2.0)
        np.testing.assert_allclose(ends, (bins + 1) * 2.0)
        np.testing.assert_array_equal(got, counts)


def test_search_histogram_figure_counts_and_cutoffs(search_run):
    figs = dict(figures_for(search_run))
    fig = figs["histogram"]
    lengths = np.array(sorted(len(s) for s in SENTENCES))
    for ax, (roi, factor) in zip(fig.axes, FACTORS.items()):
        assert ax.get_title() == roi
        resp = np.array([len(s) * factor for s in SENTENCES])
        bins, counts = np.unique(np.floor(resp / 2.0).astype(int), return_counts=True)
        rects = bars(ax)
        np.testing.assert_allclose([r.get_x() for r in rects], bins * 2.0)
        np.testing.assert_array_equal([r.get_height() for r in rects], counts)
        # cut-offs: the 3rd highest and 3rd lowest response (all lengths distinct in this corpus)
        assert len(set(lengths)) == len(lengths)
        assert vlines(ax) == pytest.approx([lengths[-3] * factor, lengths[2] * factor])


def test_search_bars_mean_and_se(search_run):
    figs = dict(figures_for(search_run, "search"))
    ax = figs["bars"].axes[0]
    lengths = np.array(sorted(len(s) for s in SENTENCES), dtype=float)
    hist = read_histogram(search_run.with_name("res_histogram.csv"))
    containers = [c for c in ax.containers if type(c).__name__ == "BarContainer"]  # one per group: drive, baseline, suppress
    assert len(containers) == 3
    for j, (roi, factor) in enumerate(FACTORS.items()):
        drive, suppress = lengths[-3:] * factor, lengths[:3] * factor
        base = baseline_sample(hist, roi, baseline_size(hist, roi, 3))
        assert len(base) == len(SENTENCES)  # max(k, 100) capped at the corpus size
        assert base.min() >= lengths.min() * factor - 2 and base.max() <= lengths.max() * factor + 2
        for container, values in zip(containers, (drive, base, suppress)):
            assert container.patches[j].get_height() == pytest.approx(values.mean())
            segment = container.errorbar.lines[2][0].get_segments()[j]  # (x, mean - se) -> (x, mean + se)
            se = values.std(ddof=1) / np.sqrt(len(values))
            assert segment[1][1] - segment[0][1] == pytest.approx(2 * se)


def test_search_no_plots_and_sharded_histogram_found(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    out = tmp_path / "res.csv"
    assert main(["search", MODEL, "--input", str(corpus), "-k", "2", "-o", str(out), "--no-plots", "-q"]) == 0
    assert (tmp_path / "res.csv").is_file() and (tmp_path / "res_histogram.csv").is_file()
    assert not [p.name for p in tmp_path.iterdir() if p.suffix in (".png", ".svg", ".html")]
    # a sharded run keeps its merged histogram in OUTPUT.shards/histogram.csv: berg plot finds it there
    (tmp_path / "res.csv.shards").mkdir()
    (tmp_path / "res_histogram.csv").rename(tmp_path / "res.csv.shards" / "histogram.csv")
    assert [name for name, _ in figures_for(out)] == ["histogram", "bars"]


# ------------------------------------------------------------------------------------- train


@pytest.fixture(scope="module")
def train_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 10)).astype(np.float32)
    Y = (X @ rng.standard_normal((10, 12)) * 0.3 + rng.standard_normal((200, 12)) * np.linspace(0.3, 3, 12)).astype(np.float32)
    np.save(tmp / "X.npy", X)
    np.save(tmp / "Y.npy", Y)
    (tmp / "rois.json").write_text(json.dumps({"early": list(range(5)), "late": list(range(5, 12))}), encoding="utf-8")
    np.save(tmp / "nc.npy", np.linspace(0.5, 0.9, 12))
    out = tmp / "run"
    assert main(["train", "--features", str(tmp / "X.npy"), "--responses", str(tmp / "Y.npy"), "--test", "160:", "--out", str(out),
                 "--permutations", "0", "--rois", str(tmp / "rois.json"), "--alphas", "logspace:-2:4:7", "--quiet"]) == 0
    return out


def test_train_writes_default_figures(train_run):
    for name in ("fig_r_hist.png", "fig_roi_r.png", "fig_alphas.png"):
        assert_png(train_run / name)
    assert (train_run / "report.html").is_file()


def test_train_r_histogram(train_run):
    cc = np.load(train_run / "cc_raw.npy")
    [(_, fig)] = figures_for(train_run, "train-r")
    counts, edges = np.histogram(cc, bins=50)
    rects = bars(fig.axes[0])
    np.testing.assert_array_equal([r.get_height() for r in rects], counts)
    np.testing.assert_allclose([r.get_x() for r in rects], edges[:-1])
    assert vlines(fig.axes[0]) == pytest.approx([cc.mean()])


def test_train_roi_means_with_noise_ceiling(train_run, tmp_path):
    cc = np.load(train_run / "cc_raw.npy")
    nc = np.linspace(0.5, 0.9, 12)
    np.save(tmp_path / "nc.npy", nc)
    out = tmp_path / "rois.svg"
    assert main(["plot", str(train_run), "--kind", "train-rois", "--noise-ceiling", str(tmp_path / "nc.npy"), "-o", str(out), "-q"]) == 0
    assert_svg(out)
    [(_, fig)] = figures_for(train_run, "train-rois", noise_ceiling=tmp_path / "nc.npy")
    ax = fig.axes[0]
    assert [r.get_height() for r in bars(ax)] == pytest.approx([cc[:5].mean(), cc[5:].mean()])
    np.testing.assert_allclose(ax.collections[0].get_offsets()[:, 1], [nc[:5].mean(), nc[5:].mean()])


def test_train_alphas_with_grid_edges(train_run):
    alphas = np.load(train_run / "alphas_raw.npy")
    [(_, fig)] = figures_for(train_run, "train-alphas")
    ax = fig.axes[0]
    values, counts = np.unique(alphas, return_counts=True)
    rects = bars(ax)
    np.testing.assert_array_equal([r.get_height() for r in rects], counts)
    np.testing.assert_allclose([r.get_x() + r.get_width() / 2 for r in rects], values)
    assert vlines(ax) == pytest.approx([1e-2, 1e4])


# ------------------------------------------------------------------------------------- bad input, laziness


@pytest.mark.parametrize("name, content, needle", [
    ("bad.npy", b"not a numpy file", "bad.npy"),
    ("bad.csv", b"a,b\n1,2,3\n", "bad.csv"),
    ("bad.csv", b"a,b\nx,2\n1,y\n", "bad.csv"),
    ("bad.h5", b"\x00" * 100, "bad.h5"),
    ("bad.txt", b"hello", "bad.txt"),
    ("bad.csv", b"\xff\xfe\x00garbage", "UTF-8"),
])
def test_bad_encode_files_one_line(tmp_path, capsys, name, content, needle):
    path = tmp_path / name
    path.write_bytes(content)
    assert main(["plot", str(path), "-o", str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("berg: error:") and "\n" not in err and needle in err
    assert not (tmp_path / "x.png").exists()


def test_bad_search_and_train_inputs_one_line(tmp_path, capsys, search_run):
    rows = list(csv.reader(search_run.open(encoding="utf-8")))
    rows[3][2] = "three"
    bad = tmp_path / "bad_search.csv"
    with bad.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    hist = tmp_path / "h.csv"
    hist.write_text("roi,start,end,count\n", encoding="utf-8")
    folder = tmp_path / "not_a_run"
    folder.mkdir()
    cases = [([str(bad)], "row 4 is malformed"), ([str(search_run), "--histogram", str(hist)], "h.csv"),
             ([str(folder)], "summary.json"), ([str(tmp_path / "missing.csv")], "not found"),
             ([str(search_run), "-o", str(tmp_path / "x.jpg")], ".png or .svg")]
    for argv, needle in cases:
        assert main(["plot", *argv]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("berg: error:") and "\n" not in err and needle in err, (argv, err)


def test_berg_list_and_parser_do_not_import_matplotlib():
    code = ("import sys\nfrom berg_core.cli import main, build_parser\nbuild_parser()\nmain(['list'])\n"
            "print('MPL', 'matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "MPL False"


def test_search_with_many_rois_draws_the_first_panels(tmp_path):
    from berg_core.figures.plots import MAX_BAR_COLUMNS, MAX_PANELS
    from berg_core.search import ExtremesTracker, write_hits_csv
    from berg_core.search.shard import Histogram

    columns = [f"v{j}" for j in range(MAX_BAR_COLUMNS + 5)]
    responses = np.random.default_rng(2).standard_normal((50, len(columns))).astype(np.float32)
    tracker = ExtremesTracker(columns, 3)
    tracker.add([f"s{i}" for i in range(50)], list(range(1, 51)), responses)
    out = write_hits_csv(tmp_path / "many.csv", tracker.result("m"))
    hist = Histogram(columns, 0.25)
    hist.add(responses)
    hist.write_csv(tmp_path / "many_histogram.csv")
    figs = dict(figures_for(out))
    assert len(figs["histogram"].axes) == MAX_PANELS
    assert [ax.get_title() for ax in figs["histogram"].axes] == columns[:MAX_PANELS]
    bar_ax = figs["bars"].axes[0]
    assert [t.get_text() for t in bar_ax.get_xticklabels()] == columns[:MAX_BAR_COLUMNS]
    # drive bar of v1 = mean of its 3 highest responses, computed here
    drive = [c for c in bar_ax.containers if type(c).__name__ == "BarContainer"][0]
    assert drive.patches[1].get_height() == pytest.approx(np.sort(responses[:, 1])[-3:].mean(), rel=1e-6)


def test_timecourse_from_a_csv_with_a_time_column(tmp_path):
    path = tmp_path / "story.csv"
    path.write_text("tr_onset_s,A,B\n0,1.0,2.0\n2,1.5,2.5\n4,0.5,3.0\n", encoding="utf-8")
    [(_, fig)] = figures_for(path, "timecourse")
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["A", "B"]  # the numeric time column is the x axis, not a response
    np.testing.assert_allclose(lines[0].get_xdata(), [0, 2, 4])
    np.testing.assert_allclose(lines[1].get_ydata(), [2.0, 2.5, 3.0])
    assert fig.axes[0].get_xlabel() == "time (s)"


def test_search_without_matplotlib_writes_results_and_skips_figures(tmp_path, monkeypatch, capsys):
    import berg_core.figures as figures

    monkeypatch.setattr(figures, "have_matplotlib", lambda: False)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    assert main(["search", MODEL, "--input", str(corpus), "-k", "2", "-o", str(tmp_path / "res.csv")]) == 0
    assert (tmp_path / "res.csv").is_file() and (tmp_path / "res_histogram.csv").is_file()
    assert not [p.name for p in tmp_path.iterdir() if p.suffix in (".png", ".svg", ".html")]
    assert "figures and report skipped: they need matplotlib" in capsys.readouterr().err


def test_wide_histograms_are_merged_exactly_for_display(tmp_path):
    from berg_core.figures.plots import MAX_BARS, display_bins
    from berg_core.search.shard import Histogram

    values = np.random.default_rng(3).standard_normal((5000, 1)) * 3
    hist = Histogram(["r"], 0.001)  # ~20,000 fine bins
    hist.add(values)
    hist.write_csv(tmp_path / "h.csv")
    starts, ends, counts = display_bins(*read_histogram(tmp_path / "h.csv").bins["r"])
    assert len(counts) <= MAX_BARS and counts.sum() == 5000
    # every merged bar holds exactly the values in [start, end), counted here from the data
    idx = [0, len(counts) // 2, len(counts) - 1]
    for i in idx:
        assert counts[i] == np.count_nonzero((values[:, 0] >= starts[i] - 1e-9) & (values[:, 0] < ends[i] - 1e-9))


def test_tsv_and_h5_with_row_labels(tmp_path):
    import h5py

    tsv = tmp_path / "enc.tsv"
    tsv.write_text("stimulus\tIFG\tAG\nThe dog, barked.\t0.5\t1.5\n", encoding="utf-8")
    [(_, fig)] = figures_for(tsv)
    np.testing.assert_allclose([b.get_height() for b in bars(fig.axes[0])], [0.5, 1.5])
    h5 = tmp_path / "story.h5"
    with h5py.File(h5, "w") as f:
        f["responses"] = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
        f["columns"] = np.array(["A", "B"], dtype=object).astype(h5py.string_dtype())
        f["tr_onset_s"] = np.array([10.0, 12.0, 14.0])
    [(_, fig)] = figures_for(h5, "timecourse", columns=["B"])
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_xdata(), [10, 12, 14])
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_ydata(), [2, 4, 6])
