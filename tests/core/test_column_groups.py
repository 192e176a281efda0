"""Column groups (issue 11): which ROI each output column is in (``Encoder.column_groups``), in ``OutputLabels`` and
every labelled output file (.h5, .nc, .csv/.tsv sidecar; not .npy), for a voxelwise model whose ROIs overlap."""

from __future__ import annotations

import csv
import json

import h5py
import numpy as np
import pytest

from berg_core import BERG, Encoder, EncoderSpec, select_outputs
from berg_core.cli import main
from berg_core.registry import get_registry

N_VOXELS = 12
VOX = np.arange(N_VOXELS)
#: the test model's ROI masks over its 12 voxels: A and B overlap (voxels 1 and 4), C is the last three
MASKS = {"A": VOX < 5, "B": VOX % 3 == 1, "C": VOX >= 9}
SENTENCES = ["abc", "a longer one, with a comma", "x"]


class VoxelEncoder(Encoder):
    """Sentence s -> ``len(s) * (v + 1)`` at voxel v, for the selected voxels (``roi`` ∪ ``voxel_index``, ascending)."""

    def __init__(self, spec: EncoderSpec, **kwargs) -> None:
        super().__init__(spec, **kwargs)
        self.voxels = select_outputs(self.selection, n_outputs=N_VOXELS, roi_voxels=MASKS, who=spec.model_id)
        self.groups = self.options["groups"]

    @property
    def output_names(self):
        return [f"voxel_{v}" for v in self.voxels]

    def column_groups(self):
        if self.groups == "masks":
            return {name: mask[self.voxels] for name, mask in MASKS.items()}
        if self.groups == "indices":  # unsorted and repeated: the core sorts and deduplicates
            return {name: np.flatnonzero(mask[self.voxels])[::-1].repeat(2) for name, mask in MASKS.items()}
        if self.groups == "none":
            return None
        if self.groups == "out_of_range":
            return {"A": [0, len(self.voxels)]}
        if self.groups == "wrong_length":
            return {"A": np.ones(len(self.voxels) + 1, dtype=bool)}
        raise RuntimeError("the ROI table is gone")

    def _encode(self, sentences, show_progress):
        return np.array([[len(s) * (v + 1) for v in self.voxels] for s in sentences], dtype=float)


SPEC = EncoderSpec(model_id="test-voxel_groups", family="t", factory=f"{__name__}:VoxelEncoder",
                   selection={"roi": "A, B or C", "voxel_index": "0/1 over 12 voxels"}, options={"groups": "masks"},
                   plugin="berg-test-groups 0.1")


@pytest.fixture(autouse=True)
def voxel_model():
    get_registry().specs[SPEC.model_id] = SPEC


def reference_groups(voxels):
    """Independent: for each ROI, the positions among the selected (ascending) voxels of those inside it."""
    out = {}
    for name, mask in MASKS.items():
        inside = np.nonzero(np.isin(voxels, np.nonzero(mask)[0]))[0]
        if inside.size:
            out[name] = inside.tolist()
    return out


def labels_for(selection=None, groups="masks"):
    berg = BERG()
    with berg.get_encoding_model(SPEC.model_id, selection=selection, groups=groups) as model:
        responses, labels = berg.encode(model, SENTENCES, return_labels=True)
    return responses, labels


@pytest.mark.parametrize("groups", ["masks", "indices"])
def test_groups_are_the_selected_columns_of_each_roi(groups):
    _, labels = labels_for(groups=groups)
    assert {k: v.tolist() for k, v in labels.column_groups.items()} == reference_groups(VOX)
    assert labels.column_groups["A"].tolist() == [0, 1, 2, 3, 4] and labels.column_groups["B"].tolist() == [1, 4, 7, 10]
    assert all(v.dtype == np.int64 for v in labels.column_groups.values())
    assert set(labels.column_groups["A"]) & set(labels.column_groups["B"]) == {1, 4}  # overlap kept in both


def test_groups_follow_the_selection_and_leave_out_an_empty_roi():
    index = np.zeros(N_VOXELS, dtype=int)
    index[[7, 6]] = 1
    selection = {"roi": ["A"], "voxel_index": index}
    responses, labels = labels_for(selection)
    voxels = np.nonzero(MASKS["A"] | (index == 1))[0]  # 0, 1, 2, 3, 4, 6, 7
    assert labels.columns == [f"voxel_{v}" for v in voxels] and responses.shape == (3, len(voxels))
    want = reference_groups(voxels)
    assert "C" not in want  # no selected voxel in C
    assert {k: v.tolist() for k, v in labels.column_groups.items()} == want == {"A": [0, 1, 2, 3, 4], "B": [1, 4, 6]}
    # the groups index THIS output's columns: B's columns are the responses of voxels 1, 4, 7
    np.testing.assert_array_equal(responses[0, labels.column_groups["B"]], len(SENTENCES[0]) * np.array([2, 5, 8]))


def test_a_model_without_groups_has_none_and_labels_compare_by_value():
    _, labels = labels_for(groups="none")
    assert labels.column_groups is None
    _, a = labels_for()
    _, b = labels_for(groups="indices")
    assert a == b and a != labels


@pytest.mark.parametrize(("groups", "message"), [
    ("out_of_range", r"column_groups\(\)\['A'\] lists columns outside 0..11"),
    ("wrong_length", r"column_groups\(\)\['A'\] is a bool array of shape \(13,\)"),
    ("raises", r"failed while grouping its output columns \(RuntimeError: the ROI table is gone\)"),
])
def test_a_plugin_bug_in_column_groups_is_one_line_naming_the_plugin(tmp_path, capsys, groups, message):
    out = tmp_path / "p.h5"
    assert main(["encode", SPEC.model_id, "abc", "-O", f"groups={groups}", "-o", str(out), "-q"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "plugin berg-test-groups 0.1" in err
    import re

    assert re.search(message, err), err
    assert not out.exists()


def encode_to(tmp_path, name, *extra):
    out = tmp_path / name
    assert main(["encode", SPEC.model_id, *SENTENCES, "-o", str(out), "-q", *extra]) == 0
    return out


def test_h5_stores_a_membership_matrix_and_the_names(tmp_path):
    out = encode_to(tmp_path, "pred.h5", "--roi", "C,A")
    voxels = np.nonzero(MASKS["A"] | MASKS["C"])[0]
    with h5py.File(out) as f:
        names = [s.decode() for s in f["column_group_names"][()]]
        matrix = f["column_groups"][()]
        assert matrix.dtype == bool and matrix.shape == (len(names), len(voxels)) == (3, 8)
        assert {n: np.nonzero(row)[0].tolist() for n, row in zip(names, matrix, strict=True)} == reference_groups(voxels)
        assert [s.decode() for s in f["columns"][()]] == [f"voxel_{v}" for v in voxels]


def test_nc_stores_a_group_by_neuroid_variable(tmp_path):
    xr = pytest.importorskip("xarray")
    pytest.importorskip("h5netcdf")
    out = encode_to(tmp_path, "pred.nc")
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        groups = ds["column_groups"]
        assert groups.dtype == bool and groups.dims == ("group", "neuroid")
        assert list(ds["group"].values) == ["A", "B", "C"]
        assert {str(g): np.nonzero(groups.sel(group=g).values)[0].tolist() for g in ds["group"].values} == reference_groups(VOX)
        # a Brain-Score-style selection by group: the responses of ROI C's voxels
        c = ds["responses"].isel(neuroid=groups.sel(group="C").values)
        assert list(c["neuroid_id"].values) == ["voxel_9", "voxel_10", "voxel_11"]
    with xr.open_dataarray(out, engine="h5netcdf") as da:  # the responses alone still open as one array
        assert da.dims == ("presentation", "neuroid") and da.shape == (3, N_VOXELS)


@pytest.mark.parametrize(("ext", "delimiter"), [(".csv", ","), (".tsv", "\t")])
def test_csv_sidecar_lists_the_column_indices(tmp_path, ext, delimiter):
    index = np.zeros(N_VOXELS, dtype=int)
    index[[0, 6, 11]] = 1
    (tmp_path / "vox.txt").write_text("\n".join(map(str, index)) + "\n")
    out = encode_to(tmp_path, "pred" + ext, "--voxels", str(tmp_path / "vox.txt"))
    side = json.loads((tmp_path / "pred.json").read_text())
    assert side["column_groups"] == reference_groups(np.array([0, 6, 11])) == {"A": [0], "C": [2]}  # B left out
    header = next(csv.reader(out.open(encoding="utf-8", newline=""), delimiter=delimiter))
    assert [header[1 + i] for i in side["column_groups"]["C"]] == ["voxel_11"]  # +1: the leading stimulus column


def test_npy_stays_bare_and_json_output_carries_the_groups(tmp_path, capsys):
    out = encode_to(tmp_path, "pred.npy")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("pred")) == ["pred.npy"]  # no sidecar (cache/ is berg's)
    assert np.load(out, allow_pickle=False).shape == (3, N_VOXELS)
    assert main(["encode", SPEC.model_id, "ab", "--roi", "C", "--json", "-q"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["column_groups"] == {"B": [1], "C": [0, 1, 2]} and printed["columns"] == ["voxel_9", "voxel_10", "voxel_11"]


def test_text2fmri_groups_are_the_networks_of_the_selected_parcels():
    """Text2fMRI's columns are Schaefer parcels; each of the 7 networks groups its selected parcels (the network is
    the third field of the shipped label name, ``7Networks_LH_Vis_1``, parsed here independently)."""
    pytest.importorskip("berg_text2fmri")
    from berg_core.encoder import column_groups_of
    from berg_text2fmri.encoder import Text2fMRIEncoder
    from berg_text2fmri.labels import TABLE_PATH
    from berg_text2fmri.weights import shipped_masks

    names = [line.split("\t") for line in TABLE_PATH.read_text().splitlines()]
    names = [cells[1] for cells in names if len(cells) > 1 and cells[1].startswith("7Networks_")]
    assert len(names) == 1000
    network = np.array([n.split("_")[2] for n in names])
    index = np.zeros(1000, dtype=int)
    index[[0, 999]] = 1
    for selection in (None, {"roi": ["Limbic"], "voxel_index": index}):
        model = object.__new__(Text2fMRIEncoder)  # the method needs only the selected parcels, not the weights
        model.spec = EncoderSpec(model_id="fmri-cneuromod_algo2025-text2fmri", family="text2fmri", factory="x:y")
        model.parcels = select_outputs(selection, n_outputs=1000, roi_voxels=shipped_masks())
        groups = column_groups_of(model, len(model.parcels))
        want = {net: np.nonzero(network[model.parcels] == net)[0].tolist() for net in dict.fromkeys(network)}
        assert {k: v.tolist() for k, v in groups.items()} == {k: v for k, v in want.items() if v}
        if selection is not None:
            assert set(groups) == {"Limbic", network[0], network[999]} and len(groups) < 7  # the other networks left out
