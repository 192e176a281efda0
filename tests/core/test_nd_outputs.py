"""N-D outputs with named axes (``Encoder.output_axes``), their writers, and 0/1 selection over any axis
(``select_indices``: ``electrode_index``, ``lags``)."""

from __future__ import annotations

import csv
import json
import re

import h5py
import numpy as np
import pytest

from berg_core import BergError, Encoder, EncoderSpec, InvalidParameterError, select_indices
from berg_core.cli import main
from berg_core.registry import get_registry
from berg_core.store.userfiles import write_responses

ELECTRODES = ["E1", "E2", "E3"]
LAGS = ["-1.0s", "+0.0s", "+1.0s", "+2.0s"]


class GridEncoder(Encoder):
    """Word i -> value ``100·len(word_i) + 10·e + k`` at electrode e, lag k (only the selected ones)."""

    def __init__(self, spec: EncoderSpec, **kwargs) -> None:
        super().__init__(spec, **kwargs)
        self.e = select_indices(self.selection, "electrode_index", len(ELECTRODES), who=spec.model_id)
        self.k = select_indices(self.selection, "lags", len(LAGS), who=spec.model_id)
        self.bad_shape = self.options["bad_shape"]

    @property
    def output_axes(self):
        return {"electrode": [ELECTRODES[i] for i in self.e], "lag": [LAGS[i] for i in self.k]}

    def _encode(self, words, show_progress):
        n = np.array([len(w) for w in words], dtype=float)
        out = 100 * n[:, None, None] + 10 * self.e[None, :, None] + self.k[None, None, :]
        return out[:, :, :-1] if self.bad_shape else out


SPEC = EncoderSpec(model_id="test-grid", family="t", factory=f"{__name__}:GridEncoder", stimulus="words",
                   selection={"electrode_index": "0/1 over 3 electrodes", "lags": "0/1 over 4 lags"},
                   options={"bad_shape": False})


@pytest.fixture
def grid_model():
    get_registry().specs[SPEC.model_id] = SPEC
    return SPEC.model_id


def expected(words, e, k):
    return np.array([[[100 * len(w) + 10 * ei + ki for ki in k] for ei in e] for w in words], dtype=np.float32)


def test_encode_returns_named_nd_axes_and_flat_names():
    model = GridEncoder(SPEC, selection={"electrode_index": [1, 0, 1], "lags": np.array([0, 1, 1, 0])})
    out = model.encode(["ab", "abc"])
    assert out.dtype == np.float32 and out.shape == (2, 2, 2)
    np.testing.assert_array_equal(out, expected(["ab", "abc"], [0, 2], [1, 2]))
    assert model.output_names == ["E1@+0.0s", "E1@+1.0s", "E3@+0.0s", "E3@+1.0s"]  # electrode-major, lag fastest
    # the flat names are the columns of reshape(n, -1)
    assert out.reshape(2, -1)[1, 2] == out[1, 1, 0] == 100 * 3 + 10 * 2 + 1


def test_a_shape_that_does_not_match_the_axes_is_a_plugin_bug():
    with pytest.raises(BergError, match=r"expected \(n_rows, 3 electrodes, 4 lags\)"):
        GridEncoder(SPEC, bad_shape=True).encode(["a"])


@pytest.mark.parametrize(("selection", "message"), [
    ({"electrode_index": [1, 0]}, r"selection\['electrode_index'\] has length 2, but test-grid has 3 electrodes"),
    ({"electrode_index": [0, 0, 0]}, "is all zeros .* selects no electrode"),
    ({"lags": [0, 2, 1, 1]}, r"selection\['lags'\] must contain only 0 and 1 \(a non-empty binary mask over lags\)"),
    ({"lags": "all"}, r"selection\['lags'\] must contain only 0 and 1"),
    ({"electrode_index": [[1, 0, 1], [1, 1, 1]]}, "got an array of shape"),
])
def test_bad_axis_selections_are_one_line_errors(selection, message):
    with pytest.raises(InvalidParameterError, match=message) as info:
        GridEncoder(SPEC, selection=selection)
    assert "\n" not in str(info.value)


def test_select_indices_absent_key_is_everything():
    np.testing.assert_array_equal(select_indices(None, "lags", 4), [0, 1, 2, 3])
    np.testing.assert_array_equal(select_indices({"lags": None}, "lags", 4), [0, 1, 2, 3])
    np.testing.assert_array_equal(select_indices({"lags": np.array([[1], [0], [0], [1]])}, "lags", 4), [0, 3])


def test_writers_keep_or_flatten_the_axes(tmp_path):
    out = expected(["a", "bb"], [0, 1, 2], [0, 1, 2, 3])
    axes = {"electrode": ELECTRODES, "lag": LAGS}
    names = [f"{e}@{k}" for e in ELECTRODES for k in LAGS]
    write_responses(tmp_path / "r.npy", out, names, axes=axes)
    np.testing.assert_array_equal(np.load(tmp_path / "r.npy"), out)
    write_responses(tmp_path / "r.csv", out, names, axes=axes)
    rows = list(csv.reader((tmp_path / "r.csv").open()))
    assert rows[0] == names
    np.testing.assert_array_equal(np.array(rows[1:], dtype=float), out.reshape(2, -1))
    write_responses(tmp_path / "r.h5", out, names, axes=axes, attrs={"model_id": "m"})
    with h5py.File(tmp_path / "r.h5") as f:
        np.testing.assert_array_equal(f["responses"][()], out)
        assert [d.decode() if isinstance(d, bytes) else d for d in f.attrs["dims"]] == ["row", "electrode", "lag"]
        assert [s.decode() for s in f["axis_electrode"][()]] == ELECTRODES
        assert [s.decode() for s in f["axis_lag"][()]] == LAGS
        assert [s.decode() for s in f["columns"][()]] == names


def test_berg_encode_writes_nd_outputs(grid_model, tmp_path, capsys):
    assert main(["encode", grid_model, "ab", "abc", "-o", str(tmp_path / "r.h5")]) == 0
    assert "2 x 3 x 4 responses" in capsys.readouterr().err
    with h5py.File(tmp_path / "r.h5") as f:
        np.testing.assert_array_equal(f["responses"][()], expected(["ab", "abc"], [0, 1, 2], [0, 1, 2, 3]))
    assert main(["encode", grid_model, "ab", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["columns"][:2] == ["E1@-1.0s", "E1@+0.0s"] and len(data["columns"]) == 12
    assert data["responses"] == expected(["ab"], [0, 1, 2], [0, 1, 2, 3]).reshape(1, -1).tolist()
    assert main(["encode", grid_model, "a", "-o", str(tmp_path / "r.csv")]) == 0
    assert list(csv.reader((tmp_path / "r.csv").open()))[0][-1] == "E3@+2.0s"


def test_berg_encode_mask_files_select_along_axes(grid_model, tmp_path, capsys):
    (tmp_path / "e.txt").write_text("0\n1\n1\n")
    np.save(tmp_path / "l.npy", np.array([1, 0, 0, 1]))
    assert main(["encode", grid_model, "ab", "--mask", f"electrode_index={tmp_path / 'e.txt'}", "--mask", f"lags={tmp_path / 'l.npy'}",
                 "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["columns"] == ["E2@-1.0s", "E2@+2.0s", "E3@-1.0s", "E3@+2.0s"]
    assert data["responses"] == expected(["ab"], [1, 2], [0, 3]).reshape(1, -1).tolist()


@pytest.mark.parametrize(("mask", "message"), [
    ("electrodes=e.txt", "--mask takes KEY=FILE with KEY one of electrode_index, lags"),
    ("voxel_index=e.txt", "voxels: --voxels FILE"),
    ("lags=bad.txt", "lag file .* must contain only 0 and 1 \\(one value per lag\\)"),
    ("lags=short.txt", r"selection\['lags'\] has length 2, but test-grid has 4 lags"),
])
def test_berg_encode_bad_masks_are_one_line_errors(grid_model, tmp_path, monkeypatch, capsys, mask, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "e.txt").write_text("1 1 1")
    (tmp_path / "bad.txt").write_text("1 2 0 1")
    (tmp_path / "short.txt").write_text("1 0")
    assert main(["encode", grid_model, "ab", "--mask", mask]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err)
