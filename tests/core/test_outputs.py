"""Self-describing outputs (issue 11, item 1): every ``berg encode`` / ``berg search`` output carries what its rows
and columns are and the model's attributes; ``.npy`` stays the bare array; ``BERG.encode(..., return_labels=True)``."""

from __future__ import annotations

import csv
import json
import sys

import h5py
import numpy as np
import pytest

import berg_core
from berg_core import BERG
from berg_core.cli import main
from berg_core.registry import get_registry

MODEL = "test-sentence_length"  # the test plugin: sentence s -> len(s) * (1, 2, 3) at roi_a, roi_b, roi_c
SENTENCES = ["abc", "a longer one, with a comma", "x"]
ATTR_KEYS = {"model_id", "subject", "berg_version", "backbone", "backbone_revision", "layer", "units"}


def expected(sentences, rois=("roi_a", "roi_b", "roi_c")):
    mult = {"roi_a": 1, "roi_b": 2, "roi_c": 3}
    return np.array([[len(s) * mult[r] for r in rois] for s in sentences], dtype=np.float32)


def encode_to(tmp_path, name, *extra):
    out = tmp_path / name
    assert main(["encode", MODEL, *SENTENCES, "-o", str(out), "-q", *extra]) == 0
    return out


@pytest.mark.parametrize("ext,delimiter", [(".csv", ","), (".tsv", "\t")])
def test_csv_and_tsv_have_a_stimulus_column_and_a_sidecar(tmp_path, ext, delimiter):
    out = encode_to(tmp_path, "pred" + ext, "--roi", "roi_c,roi_a")
    rows = list(csv.reader(out.open(encoding="utf-8", newline=""), delimiter=delimiter))
    assert rows[0] == ["stimulus", "roi_c", "roi_a"]
    assert [r[0] for r in rows[1:]] == SENTENCES  # the comma inside a sentence is quoted, not a new column
    np.testing.assert_array_equal(np.array([[float(v) for v in r[1:]] for r in rows[1:]]), expected(SENTENCES, ("roi_c", "roi_a")))
    side = json.loads((tmp_path / "pred.json").read_text())
    assert ATTR_KEYS <= set(side)
    assert side["model_id"] == MODEL and side["berg_version"] == berg_core.__version__ and side["rows"] == "stimulus"
    assert side["shape"] == [3, 2]


def test_npy_stays_the_bare_array(tmp_path):
    out = encode_to(tmp_path, "pred.npy")
    arr = np.load(out, allow_pickle=False)
    assert arr.dtype == np.float32 and arr.shape == (3, 3)
    np.testing.assert_array_equal(arr, expected(SENTENCES))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred.npy"]  # no sidecar: BERG-compatible


def test_h5_has_datasets_for_both_axes_and_the_attributes(tmp_path):
    out = encode_to(tmp_path, "pred.h5")
    with h5py.File(out) as f:
        np.testing.assert_array_equal(f["responses"][()], expected(SENTENCES))
        assert [s.decode() for s in f["stimulus"][()]] == SENTENCES
        assert [s.decode() for s in f["columns"][()]] == ["roi_a", "roi_b", "roi_c"]
        assert ATTR_KEYS <= set(f.attrs) and f.attrs["rows"] == "stimulus" and f.attrs["model_id"] == MODEL


def test_nc_is_a_labelled_brainscore_style_assembly(tmp_path):
    xr = pytest.importorskip("xarray")
    pytest.importorskip("h5netcdf")
    out = encode_to(tmp_path, "pred.nc", "--roi", "roi_b")
    with xr.open_dataarray(out, engine="h5netcdf") as da:
        assert da.dims == ("presentation", "neuroid")
        assert list(da["stimulus"].values) == SENTENCES
        assert list(da["stimulus_id"].values) == [0, 1, 2]
        assert list(da["neuroid_id"].values) == ["roi_b"]
        assert list(da["roi"].values) == ["roi_b"] and list(da["subject"].values) == [""]
        np.testing.assert_array_equal(da.values, expected(SENTENCES, ("roi_b",)))
        assert da.attrs["model_id"] == MODEL and ATTR_KEYS <= set(da.attrs)
        # selecting by label works as in a Brain-Score assembly
        assert float(da.sel(neuroid=0).isel(presentation=1)) == 2 * len(SENTENCES[1])


def test_nc_without_xarray_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "xarray", None)  # import xarray -> ImportError
    assert main(["encode", MODEL, "abc", "-o", str(tmp_path / "p.nc"), "-q"]) == 1
    err = capsys.readouterr().err.strip()
    assert "berg-core[nc]" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "p.nc").exists()


def test_timed_words_rows_without_labels_are_numbered(tmp_path):
    story = tmp_path / "story.csv"
    story.write_text("word,onset\n" + "".join(f"w{i},{0.5 * i}\n" for i in range(30)))
    out = tmp_path / "pred.csv"
    assert main(["encode", "test-timed_words", "--subject", "S1", "--input", str(story), "-o", str(out), "-q"]) == 0
    rows = list(csv.reader(out.open()))
    assert rows[0][0] == "row" and [int(r[0]) for r in rows[1:]] == list(range(len(rows) - 1))


def test_nd_outputs_keep_their_axes_in_nc_and_csv(tmp_path):
    xr = pytest.importorskip("xarray")
    from test_nd_outputs import SPEC, expected as grid_expected

    get_registry().specs[SPEC.model_id] = SPEC
    words = ["ab", "abc", "a"]
    out = tmp_path / "g.nc"
    assert main(["encode", SPEC.model_id, *words, "-o", str(out), "-q"]) == 0
    with xr.open_dataarray(out, engine="h5netcdf") as da:
        assert da.dims == ("presentation", "electrode", "lag")
        assert list(da["word"].values) == words
        assert list(da["electrode"].values) == ["E1", "E2", "E3"]
        np.testing.assert_array_equal(da.values, grid_expected(words, [0, 1, 2], [0, 1, 2, 3]))
    assert main(["encode", SPEC.model_id, *words, "-o", str(tmp_path / "g.csv"), "-q"]) == 0
    rows = list(csv.reader((tmp_path / "g.csv").open()))
    assert rows[0][:3] == ["word", "E1@-1.0s", "E1@+0.0s"] and [r[0] for r in rows[1:]] == words
    assert json.loads((tmp_path / "g.json").read_text())["dims"] == ["word", "electrode", "lag"]


def test_berg_encode_return_labels_keeps_the_default_types():
    berg = BERG()
    with berg.get_encoding_model(MODEL, selection={"roi": ["roi_c"]}) as model:
        plain = berg.encode(model, SENTENCES)
        assert isinstance(plain, np.ndarray)
        responses, labels = berg.encode(model, SENTENCES, return_labels=True)
        np.testing.assert_array_equal(responses, plain)
        assert labels.row_name == "stimulus" and labels.rows == SENTENCES and labels.columns == ["roi_c"]
        assert labels.axes is None and labels.attrs["model_id"] == MODEL and ATTR_KEYS <= set(labels.attrs)
        responses, metadata, labels2 = berg.encode(model, SENTENCES, return_metadata=True, return_labels=True)
        assert isinstance(metadata, dict) and labels2 == labels
        assert isinstance(berg.encode(model, SENTENCES, return_metadata=True), tuple)


def test_search_writes_an_attribute_sidecar(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(["a", "abcd", "ab", "abcdefg", "abc"]) + "\n")
    out = tmp_path / "hits.csv"
    assert main(["search", MODEL, "--input", str(corpus), "-k", "1", "-o", str(out), "--no-plots", "-q"]) == 0
    side = json.loads((tmp_path / "hits.json").read_text())
    assert ATTR_KEYS <= set(side) and side["model_id"] == MODEL
    assert side["columns"] == ["roi_a", "roi_b", "roi_c"] and side["n_sentences_scored"] == 5


def test_nifti_needs_a_model_with_a_voxel_space(tmp_path, capsys):
    """A .nii.gz output for a model whose columns are not voxels of a known volume is refused before loading it."""
    assert main(["encode", "test-sentence_length", "abc", "-o", str(tmp_path / "p.nii.gz")]) == 1
    assert "unknown output type '.nii.gz'" in capsys.readouterr().err
    assert not (tmp_path / "p.nii.gz").exists()
