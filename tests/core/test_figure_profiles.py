"""`berg plot` of N-D results (ECoG: words x electrodes x lags): the lag profile.

Results are written by the real writer (``write_responses``) in every format from a known array; the plotted numbers are
read back from the figure's artists and compared with means, standard errors and lags computed here from that array.
"""

from __future__ import annotations

import numpy as np
import pytest

from berg_core.cli import main
from berg_core.encoder import flat_output_names
from berg_core.figures import figures_for
from berg_core.figures.plots import MAX_PROFILE_LINES, lag_values
from berg_core.figures.readers import read_encode_result
from berg_core.store.userfiles import write_responses

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
N_WORDS, ELECTRODES = 20, ["LGA1", "LGA2", "RTB7"]
SECONDS = np.linspace(-2.0, 2.0, 9)  # 0.5 s apart, like the ECoG model's -2..+2 s at 32 Hz (129 lags)
LAGS = [f"{t:+.5f}s" for t in SECONDS]  # the ECoG encoder's label format: "-2.00000s" ... "+0.00000s" ... "+2.00000s"
WORDS = [f"w{i}" for i in range(N_WORDS - 2)] + ["the", "the"]
FORMATS = ["h5", "nc", "csv", "tsv"]


def known(n_words=N_WORDS, electrodes=ELECTRODES, seed=0):
    """A (n_words, n_electrodes, n_lags) float32 response with a distinct peak per electrode plus noise."""
    rng = np.random.default_rng(seed)
    peak = np.stack([(e + 1) * np.exp(-((SECONDS - 0.5 * e) ** 2)) for e in range(len(electrodes))])
    return (peak[None] + rng.standard_normal((n_words, len(electrodes), len(SECONDS)))).astype(np.float32)


def write(path, values, electrodes=ELECTRODES, lags=LAGS, rows=WORDS):
    if path.suffix in (".nc",):
        pytest.importorskip("xarray")
        pytest.importorskip("h5netcdf")
    if path.suffix == ".h5":
        pytest.importorskip("h5py")
    axes = {"electrode": list(electrodes), "lag": list(lags)}
    write_responses(path, values, flat_output_names(axes), axes=axes, rows=rows, row_name="word", attrs={"model_id": "ecog-test"})
    return path


def word_mean_and_se(values):
    """Mean over words and its standard error std(ddof=1) / sqrt(n), written out (float64)."""
    v = values.astype(np.float64)
    n = v.shape[0]
    mean = v.sum(axis=0) / n
    se = np.sqrt(((v - mean) ** 2).sum(axis=0) / (n - 1)) / np.sqrt(n)
    return mean, se


def electrode_lines(ax, names):
    return {line.get_label(): line for line in ax.get_lines() if line.get_label() in names}


def band_limits(collection, x):
    """For each x: (min y, max y) of a fill_between polygon's vertices there."""
    verts = np.concatenate([p.vertices for p in collection.get_paths()])
    return np.array([[verts[np.isclose(verts[:, 0], xi), 1].min(), verts[np.isclose(verts[:, 0], xi), 1].max()] for xi in x])


def assert_png(path, min_bytes=5000):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > min_bytes, (path, len(data))


@pytest.mark.parametrize("ext", FORMATS)
def test_profile_is_the_default_for_3d_results_with_lag_labels(tmp_path, ext):
    values = known()
    path = write(tmp_path / f"pred.{ext}", values)
    out = tmp_path / "fig.png"
    assert main(["plot", str(path), "-o", str(out), "-q"]) == 0
    assert_png(out)
    [(name, fig)] = figures_for(path)
    assert name == "profile"
    ax = fig.axes[0]
    mean, se = word_mean_and_se(values)
    lines = electrode_lines(ax, ELECTRODES)
    assert list(lines) == ELECTRODES
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ELECTRODES
    for e, name in enumerate(ELECTRODES):
        np.testing.assert_allclose(lines[name].get_xdata(), SECONDS, atol=1e-12)
        np.testing.assert_allclose(lines[name].get_ydata(), mean[e], rtol=1e-6, atol=1e-6)
    assert len(ax.collections) == len(ELECTRODES)  # one SE band per electrode
    for e, band in enumerate(ax.collections):
        np.testing.assert_allclose(band_limits(band, SECONDS), np.stack([mean[e] - se[e], mean[e] + se[e]], axis=1), rtol=1e-6, atol=1e-6)
    onset = [line for line in ax.get_lines() if line.get_label() not in ELECTRODES and len(set(np.atleast_1d(line.get_xdata()))) == 1]
    assert [float(line.get_xdata()[0]) for line in onset] == [0.0]  # word onset marked
    assert ax.get_xlabel() == "lag (s)" and "20 words" in ax.get_title()


@pytest.mark.parametrize("ext", FORMATS)
def test_reader_keeps_the_axes(tmp_path, ext):
    values = known()
    res = read_encode_result(write(tmp_path / f"pred.{ext}", values))
    assert res.axes == {"electrode": ELECTRODES, "lag": LAGS} and res.labelled
    assert res.rows == WORDS
    np.testing.assert_allclose(res.cube(), values, rtol=1e-7)


def test_many_electrodes_give_a_heatmap_of_the_word_means(tmp_path):
    names = [f"E{i:02d}" for i in range(MAX_PROFILE_LINES + 3)]
    values = known(electrodes=names, seed=1)
    path = write(tmp_path / "pred.h5", values, electrodes=names)
    out = tmp_path / "fig.svg"
    assert main(["plot", str(path), "-o", str(out), "-q"]) == 0
    text = out.read_text(encoding="utf-8")
    assert "<svg" in text[:2000] and text.rstrip().endswith("</svg>") and len(text) > 5000
    [(_, fig)] = figures_for(path)
    ax = fig.axes[0]
    mesh = ax.collections[0]
    np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(len(names), len(SECONDS)),
                               values.astype(np.float64).mean(axis=0), rtol=1e-6, atol=1e-6)
    assert [t.get_text() for t in ax.get_yticklabels()] == names  # electrodes in the file's order, top to bottom
    assert ax.get_ylim()[0] > ax.get_ylim()[1]
    x0, x1 = ax.get_xlim()
    assert x0 == pytest.approx(-2.25) and x1 == pytest.approx(2.25)  # cells centred on the lags in s


def test_columns_pick_electrodes(tmp_path):
    values = known()
    path = write(tmp_path / "pred.h5", values)
    [(_, fig)] = figures_for(path, columns=["RTB7", "LGA1"])
    mean, _ = word_mean_and_se(values)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["RTB7", "LGA1"]
    lines = electrode_lines(ax, ELECTRODES)
    np.testing.assert_allclose(lines["RTB7"].get_ydata(), mean[2], rtol=1e-6)
    np.testing.assert_allclose(lines["LGA1"].get_ydata(), mean[0], rtol=1e-6)


def test_rows_draw_chosen_words_instead_of_the_mean(tmp_path):
    values = known()
    path = write(tmp_path / "pred.csv", values)
    [(_, fig)] = figures_for(path, rows=["3", "the"])
    assert len(fig.axes) == 3  # row 3 and both rows labelled "the"
    for ax, row in zip(fig.axes, [3, N_WORDS - 2, N_WORDS - 1], strict=True):
        assert ax.get_title().endswith(f"row {row}: {WORDS[row]}")
        assert not ax.collections  # one word: no band
        lines = electrode_lines(ax, ELECTRODES)
        for e, name in enumerate(ELECTRODES):
            np.testing.assert_allclose(lines[name].get_ydata(), values[row, e], rtol=1e-6)
    out = tmp_path / "rows.png"
    assert main(["plot", str(path), "--rows", "0,the", "-o", str(out), "-q"]) == 0
    assert_png(out)


def one_line_error(capsys, argv, *needles):
    assert main(argv) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


def test_bad_picks_are_one_line_errors(tmp_path, capsys):
    path = write(tmp_path / "pred.h5", known())
    one_line_error(capsys, ["plot", str(path), "--rows", "99"], "--rows 99", "0..19")
    one_line_error(capsys, ["plot", str(path), "--rows", "zebra"], "zebra", "row numbers")
    one_line_error(capsys, ["plot", str(path), "--rows", "0,1,2,3,4,5,6"], "at most 6")
    one_line_error(capsys, ["plot", str(path), "--columns", "LGA9"], "LGA9", "electrode")
    write_responses(tmp_path / "flat.csv", np.ones((3, 2)), ["IFG", "AG"])
    one_line_error(capsys, ["plot", str(tmp_path / "flat.csv"), "--kind", "profile"], "3-D result", "flat.csv is 3x2")


def test_npy_has_no_labels_so_the_profile_is_drawn_by_index_with_a_notice(tmp_path, capsys):
    values = known()
    np.save(tmp_path / "pred.npy", values)
    out = tmp_path / "fig.png"
    assert main(["plot", str(tmp_path / "pred.npy"), "-o", str(out)]) == 0
    assert_png(out)
    assert "keeps no axis labels" in capsys.readouterr().err
    [(_, fig)] = figures_for(tmp_path / "pred.npy")
    ax = fig.axes[0]
    mean, _ = word_mean_and_se(values)
    lines = electrode_lines(ax, ["0", "1", "2"])
    assert list(lines) == ["0", "1", "2"]
    for e in range(3):
        np.testing.assert_allclose(lines[str(e)].get_xdata(), np.arange(len(SECONDS)))
        np.testing.assert_allclose(lines[str(e)].get_ydata(), mean[e], rtol=1e-6)
    assert ".npy keeps no labels" in ax.get_xlabel()
    assert not [line for line in ax.get_lines() if line.get_label() not in lines and line.get_linestyle() == "--"]  # no onset


def test_foreign_3d_h5_without_axis_labels_is_drawn_by_index(tmp_path):
    h5py = pytest.importorskip("h5py")
    values = known()
    with h5py.File(tmp_path / "foreign.h5", "w") as f:
        f.create_dataset("responses", data=values)
    res = read_encode_result(tmp_path / "foreign.h5")
    assert not res.labelled and res.axes == {"axis_1": ["0", "1", "2"], "axis_2": [str(i) for i in range(9)]}
    [(name, fig)] = figures_for(tmp_path / "foreign.h5")
    assert name == "profile"
    np.testing.assert_allclose(electrode_lines(fig.axes[0], ["1"])["1"].get_ydata(), values.astype(np.float64)[:, 1].mean(axis=0), rtol=1e-6)


def test_a_3d_result_with_text_labels_on_its_last_axis_stays_a_flat_heatmap(tmp_path):
    values = known()
    path = write(tmp_path / "pred.h5", values, lags=[f"band{i}" for i in range(9)])
    [(name, fig)] = figures_for(path)
    assert name == "heatmap"
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), values.reshape(N_WORDS, -1), rtol=1e-6)
    [(name, fig)] = figures_for(path, "profile")  # asked for: drawn against the labels' positions
    assert name == "profile" and [t.get_text() for t in fig.axes[0].get_xticklabels()] == [f"band{i}" for i in range(9)]


def test_flat_kinds_still_read_electrode_at_lag_columns(tmp_path):
    values = known()
    path = write(tmp_path / "pred.nc", values)
    [(name, fig)] = figures_for(path, "heatmap", columns=["LGA2@+0.50000s"])
    assert name == "heatmap"
    np.testing.assert_allclose(np.asarray(fig.axes[0].images[0].get_array())[:, 0], values[:, 1, 5], rtol=1e-6)


@pytest.mark.parametrize("labels, want, seconds", [
    (["-2.00000s", "+0.03125s", "+0.00000s"], [-2.0, 0.03125, 0.0], True),
    (["-250ms", "0 ms", "1.5s"], [-0.25, 0.0, 1.5], True),
    (["0", "1", "2"], [0, 1, 2], False),
])
def test_lag_labels_parse(labels, want, seconds):
    values, in_seconds = lag_values(labels)
    np.testing.assert_allclose(values, want)
    assert in_seconds is seconds


@pytest.mark.parametrize("labels", [["-1s", "0", "1s"], ["a", "0s"], []])
def test_lag_labels_that_are_not_lags(labels):
    assert lag_values(labels) is None


def test_ecog_encode_to_h5_then_plot_gives_the_lag_profile(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    pytest.importorskip("berg_ecog")
    h5py = pytest.importorskip("h5py")
    from berg_core.testing.hf import tiny_gpt2
    from berg_ecog.testing import write_berg_files

    berg_dir = tmp_path / "berg"
    write_berg_files(berg_dir, "01", n_features=32, n_electrodes=3, feature_scale=0.02)
    backbone = tiny_gpt2(tmp_path / "gpt2", n_layer=4, n_embd=32, n_head=4, seed=3)
    monkeypatch.setenv("BERG_OFFLINE", "1")
    pred, fig_path = tmp_path / "pred.h5", tmp_path / "pred.png"
    words = ["So,", "the", "quokka", "juggled", "42", "xylophones", "wildly", "tonight."]
    assert main(["--berg-dir", str(berg_dir), "encode", "ecog-zada2025-gpt2_xl", "--subject", "01", "-O", f"backbone={backbone}",
                 "-O", "layer=3", "--quiet", *words, "-o", str(pred)]) == 0
    assert main(["plot", str(pred), "-o", str(fig_path), "-q"]) == 0
    assert_png(fig_path)
    with h5py.File(pred) as f:
        values = f["responses"][()]
        electrodes = [s.decode() if isinstance(s, bytes) else s for s in f["axis_electrode"][()]]
    [(name, fig)] = figures_for(pred)
    ax = fig.axes[0]
    lines = electrode_lines(ax, electrodes)
    assert name == "profile" and list(lines) == electrodes and values.shape == (len(words), 3, 129)
    mean, _ = word_mean_and_se(values)
    for e, electrode in enumerate(electrodes):
        np.testing.assert_allclose(lines[electrode].get_xdata(), -2 + np.arange(129) / 32, atol=1e-9)  # 32 Hz, -2..+2 s
        np.testing.assert_allclose(lines[electrode].get_ydata(), mean[e], rtol=1e-5, atol=1e-6)
