"""LeBel's output columns are voxels: ``column_groups`` says which of the subject's ROIs (metadata masks) each selected
voxel is in (issue 11), checked against an independent ``np.nonzero`` over the fixture's masks and the selection."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from lebel_helpers import LAYER, N_VOXELS, make_story

from berg_core import BERG
from berg_core.cli import main
from berg_core.encoder import column_groups_of

MODEL = "fmri-lebel2023-opt_1_3b"
SUBJECT = "UTS01"


def load(opt_dir, selection=None):
    return BERG().get_encoding_model(MODEL, subject=SUBJECT, selection=selection, device="cpu", backbone=str(opt_dir),
                                     layer=LAYER, progress=False)


def reference(meta, columns):
    """For each ROI with a selected voxel: the positions, among the (ascending) selected voxels, of those inside it."""
    out = {}
    for name, mask in meta["roi"].items():
        inside = np.nonzero(np.isin(columns, np.nonzero(mask)[0]))[0]
        if inside.size:
            out[name] = inside.tolist()
    return out


def voxel_index(*chosen):
    index = np.zeros(N_VOXELS[SUBJECT], dtype=int)
    index[list(chosen)] = 1
    return index


@pytest.mark.parametrize(("selection", "rois"), [
    (None, {"AC", "Broca", "V1"}),  # every voxel: AC (0..14) and Broca (i % 3 == 1) overlap
    ({"roi": ["V1"], "voxel_index": voxel_index(2, 40)}, {"AC", "Broca", "V1"}),  # 2 in AC, 40 and 58 in Broca
    ({"voxel_index": voxel_index(20, 56)}, {"V1"}),  # AC and Broca have no selected voxel: left out
])
def test_groups_are_each_rois_selected_voxels(opt_dir, berg_tree, selection, rois):
    _, meta = berg_tree[SUBJECT]
    chosen = np.zeros(N_VOXELS[SUBJECT], dtype=bool)
    if selection is None:
        chosen[:] = True
    else:
        for name in selection.get("roi", []):
            chosen |= np.asarray(meta["roi"][name], dtype=bool)
        chosen |= selection.get("voxel_index", np.zeros_like(chosen)) == 1
    columns = np.nonzero(chosen)[0]
    with load(opt_dir, selection) as model:
        assert model.output_names == [f"voxel_{i}" for i in columns]
        groups = column_groups_of(model, len(columns))
    assert set(groups) == rois
    assert {k: v.tolist() for k, v in groups.items()} == reference(meta, columns)
    if selection is None:
        assert set(groups["AC"]) & set(groups["Broca"])  # overlapping ROIs share columns


def test_every_output_file_carries_the_groups(opt_dir, berg_tree, tmp_path, capsys):
    xr = pytest.importorskip("xarray")
    _, meta = berg_tree[SUBJECT]
    story = tmp_path / "story.json"
    story.write_text(json.dumps(make_story(60, seed=4)))
    columns = np.nonzero(np.asarray(meta["roi"]["V1"], dtype=bool) | (voxel_index(1, 4) == 1))[0]
    (tmp_path / "vox.txt").write_text("\n".join(map(str, voxel_index(1, 4))))
    want = reference(meta, columns)
    assert set(want) == {"AC", "Broca", "V1"}
    for name in ("pred.h5", "pred.nc", "pred.csv"):
        assert main(["encode", MODEL, "--subject", SUBJECT, "--input", str(story), "--output", str(tmp_path / name),
                     "--roi", "V1", "--voxels", str(tmp_path / "vox.txt"), "-O", f"backbone={opt_dir}", "-O", f"layer={LAYER}",
                     "-O", "progress=false", "--device", "cpu", "-q"]) == 0, capsys.readouterr().err
    with h5py.File(tmp_path / "pred.h5") as f:
        names = [s.decode() for s in f["column_group_names"][()]]
        assert f["column_groups"].dtype == bool and f["column_groups"].shape == (len(names), len(columns))
        assert {n: np.nonzero(row)[0].tolist() for n, row in zip(names, f["column_groups"][()], strict=True)} == want
    with xr.open_dataset(tmp_path / "pred.nc", engine="h5netcdf") as ds:
        assert ds["column_groups"].dims == ("group", "neuroid") and list(ds["voxel_num"].values) == columns.tolist()
        assert {str(g): np.nonzero(ds["column_groups"].sel(group=g).values)[0].tolist() for g in ds["group"].values} == want
    assert json.loads((tmp_path / "pred.json").read_text())["column_groups"] == want
