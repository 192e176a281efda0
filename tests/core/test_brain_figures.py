"""`berg plot` of brain volumes (ortho view at the peak voxel, glass projections, voxel time courses), `.nc` encode results,
ROI time courses from recorded column groups, and the r map of a train folder. Numbers are read back from the figures'
artists and compared with values computed here from the written arrays (affine @ ijk, np.nanmax, means)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

nib = pytest.importorskip("nibabel")
pytest.importorskip("matplotlib")

from berg_core.cli import main  # noqa: E402
from berg_core.figures import figures_for, write_defaults  # noqa: E402
from berg_core.figures.readers import read_encode_result  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: a rotated, anisotropic, shifted affine: voxel axis i runs toward A, j toward L, k toward S
AFFINE = np.array([[0.0, -2.5, 0.3, 10.0], [2.0, 0.0, 0.0, -20.0], [0.0, 0.2, 3.0, 5.0], [0.0, 0.0, 0.0, 1.0]])
SHAPE = (9, 11, 7)
PEAK = (6, 2, 4)
N_TR, TR = 15, 2.0


@contextlib.contextmanager
def quiet():
    """numpy's all-NaN slice warnings off (the NaN results are what is compared)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def assert_png(path, min_bytes=5000):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > min_bytes, (path, len(data))


def one_line_error(capsys, argv, *needles):
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("berg: error:") and "\n" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def volume3(rng):
    v = rng.uniform(-1, 1, SHAPE).astype(np.float32)
    v[0] = np.nan  # outside the selected voxels
    v[:, 10, :] = np.nan
    v[PEAK] = -9.0  # the largest |value| is negative
    return v


def save_nifti(path, data, affine=AFFINE, tr=None):
    img = nib.Nifti1Image(np.asarray(data, np.float32), affine)
    if tr is not None:
        img.header.set_xyzt_units("mm", "sec")
        img.header.set_zooms((*img.header.get_zooms()[:3], tr))
    nib.save(img, str(path))
    return path


@pytest.fixture
def vols(tmp_path):
    """pred3.nii.gz (3-D, its sidecar records ref.nii.gz), pred4.nii.gz (4-D, TR 2 s), ref.nii.gz, and the arrays."""
    rng = np.random.default_rng(0)
    v3 = volume3(rng)
    v4 = rng.standard_normal((*SHAPE, N_TR)).astype(np.float32)
    v4[0] = np.nan
    v4[3, 5, 1, :] += 6.0  # the peak of the mean map
    ref = rng.uniform(100, 200, SHAPE).astype(np.float32)
    save_nifti(tmp_path / "pred3.nii.gz", v3)
    (tmp_path / "pred3.json").write_text(json.dumps({"model_id": "m", "reference": "ref.nii.gz"}), encoding="utf-8")
    save_nifti(tmp_path / "pred4.nii.gz", v4, tr=TR)
    save_nifti(tmp_path / "ref.nii.gz", ref)
    return tmp_path, v3, v4


def crosses(fig):
    """nilearn's cut cross per slice axes: (x of its vertical line, y of its horizontal line), world mm."""
    out = []
    for ax in fig.axes:
        lines = ax.get_lines()
        if len(lines) == 2:
            vertical = [ln for ln in lines if len(set(np.asarray(ln.get_xdata(), float))) == 1][0]
            horizontal = [ln for ln in lines if len(set(np.asarray(ln.get_ydata(), float))) == 1][0]
            out.append((float(vertical.get_xdata()[0]), float(horizontal.get_ydata()[0])))
    return out


def images(ax):
    return [np.ma.filled(np.ma.asarray(im.get_array(), dtype=float), np.nan) for im in ax.images]


# ------------------------------------------------------------------------------------- 3-D maps


def test_ortho_is_cut_at_the_peak_voxel_world_coordinates_on_the_recorded_reference(vols):
    pytest.importorskip("nilearn")
    tmp, v3, _ = vols
    x, y, z = (AFFINE @ np.array([*PEAK, 1.0]))[:3]
    [(name, fig)] = figures_for(tmp / "pred3.nii.gz", "ortho")
    assert name == "ortho"
    # sagittal panel shows (y, z), coronal (x, z), axial (x, y)
    np.testing.assert_allclose(crosses(fig), [(y, z), (x, z), (x, y)], atol=1e-6)
    slices = [ax for ax in fig.axes if len(ax.get_lines()) == 2]
    assert all(len(ax.images) == 2 for ax in slices)  # the reference under the map
    assert "-9" in fig.get_suptitle() and str(PEAK) in fig.get_suptitle()
    (tmp / "pred3.json").unlink()  # no recorded reference: no background (never nilearn's MNI template)
    [(_, fig)] = figures_for(tmp / "pred3.nii.gz", "ortho")
    assert all(len(ax.images) == 1 for ax in fig.axes if len(ax.get_lines()) == 2)
    [(_, fig)] = figures_for(tmp / "pred3.nii.gz", "ortho", bg=tmp / "ref.nii.gz")
    assert all(len(ax.images) == 2 for ax in fig.axes if len(ax.get_lines()) == 2)
    import matplotlib.pyplot as plt  # nilearn imports pyplot; berg's figures must not be registered there

    assert plt.get_fignums() == []


def ras(v: np.ndarray) -> np.ndarray:
    """The test AFFINE's voxel axes run i -> A, j -> L, k -> S: RAS order is (j reversed, i, k), written out by hand."""
    return np.transpose(v, (1, 0, 2))[::-1]


def test_glass_projections_are_nanmax_abs_in_ras_layout_with_directions(vols):
    tmp, v3, _ = vols
    [(name, fig)] = figures_for(tmp / "pred3.nii.gz", "glass")
    assert name == "glass"
    panels = [ax for ax in fig.axes if ax.images and ax.get_xlabel()]
    assert len(panels) == 3
    x, y, z = "x → R (voxel axis j, reversed)", "y → A (voxel axis i)", "z → S (voxel axis k)"
    expected_labels = {0: (y, z), 1: (x, z), 2: (x, y)}  # sagittal: anterior right; coronal, axial: left on the left
    for k, ax in enumerate(panels):
        with quiet():
            want = np.nanmax(np.abs(ras(v3)), axis=k)
        [got] = images(ax)
        np.testing.assert_array_equal(got, want.T)  # rows: the later remaining axis, drawn bottom up
        assert (ax.get_xlabel(), ax.get_ylabel()) == expected_labels[k]
    assert [ax.get_title().split(":")[0] for ax in panels] == ["sagittal", "coronal", "axial"]


def test_berg_plot_volume_writes_png_and_svg(vols):
    tmp, _, _ = vols
    assert main(["plot", str(tmp / "pred3.nii.gz"), "-q"]) == 0  # default names: pred3_<view>.png beside it
    for view in ("ortho", "glass"):
        assert_png(tmp / f"pred3_{view}.png")
    out = tmp / "g.svg"
    assert main(["plot", str(tmp / "pred3.nii.gz"), "--kind", "glass", "-o", str(out), "-q"]) == 0
    text = out.read_text(encoding="utf-8")
    assert "<svg" in text[:2000] and text.rstrip().endswith("</svg>") and len(text) > 5000


def test_without_nilearn_the_ortho_view_falls_back_to_voxel_slices(vols, monkeypatch):
    tmp, v3, _ = vols
    monkeypatch.setitem(sys.modules, "nilearn", None)  # import nilearn -> ImportError
    [(_, fig)] = figures_for(tmp / "pred3.nii.gz", "ortho", bg=tmp / "ref.nii.gz")
    assert "berg-core[maps]" in fig.get_suptitle()
    panels = [ax for ax in fig.axes if ax.images and ax.get_xlabel()]
    ref = np.asarray(nib.load(str(tmp / "ref.nii.gz")).get_fdata())
    for k, ax in enumerate(panels):
        index = [slice(None)] * 3
        index[k] = PEAK[k]
        under, over = images(ax)
        np.testing.assert_array_equal(over, v3[tuple(index)].T)
        np.testing.assert_allclose(under, ref[tuple(index)].T, rtol=1e-6)
        a, b = [d for d in range(3) if d != k]
        assert crosses(fig)[k] == (PEAK[a], PEAK[b])
    save_nifti(tmp / "other.nii.gz", np.ones((4, 4, 4)))  # another grid: the fallback does not resample, and says so
    [(_, fig)] = figures_for(tmp / "pred3.nii.gz", "ortho", bg=tmp / "other.nii.gz")
    assert "not drawn" in fig.get_suptitle() and all(len(ax.images) == 1 for ax in fig.axes if ax.get_xlabel())


# ------------------------------------------------------------------------------------- 4-D volumes


def test_4d_time_course_in_seconds_and_mean_map_views(vols, tmp_path):
    tmp, _, v4 = vols
    out = tmp_path / "out.png"
    assert main(["plot", str(tmp / "pred4.nii.gz"), "--voxels", "3,5,1; 8,9,6", "-o", str(out), "-q"]) == 0
    for view in ("ortho", "glass", "timecourse"):
        assert_png(tmp_path / f"out_{view}.png")
    [(_, fig)] = figures_for(tmp / "pred4.nii.gz", "timecourse", voxels=[(3, 5, 1), (8, 9, 6)])
    lines = fig.axes[0].get_lines()
    for line, ijk in zip(lines, [(3, 5, 1), (8, 9, 6)], strict=True):
        np.testing.assert_allclose(line.get_ydata(), v4[ijk])
        np.testing.assert_allclose(line.get_xdata(), np.arange(N_TR) * TR)
    assert fig.axes[0].get_xlabel() == "time (s)"
    # default voxel: the peak |value| of the mean over TRs; the glass view shows that mean map
    with quiet():
        mean = np.nanmean(v4, axis=3)
    peak = np.unravel_index(np.nanargmax(np.abs(mean)), mean.shape)
    figs = dict(figures_for(tmp / "pred4.nii.gz"))
    assert list(figs) == ["ortho", "glass", "timecourse"]
    np.testing.assert_allclose(figs["timecourse"].axes[0].get_lines()[0].get_ydata(), v4[peak])
    panel = [ax for ax in figs["glass"].axes if ax.images and ax.get_xlabel()][0]
    with quiet():
        want = np.nanmax(np.abs(ras(mean)), axis=0).T
    np.testing.assert_allclose(images(panel)[0], want, rtol=1e-6)


def test_4d_without_a_time_unit_is_drawn_against_the_volume_number(tmp_path):
    """berg's one-volume-per-sentence files have pixdim[4] = 1 and time unit "unknown": no seconds axis."""
    v = np.random.default_rng(6).standard_normal((*SHAPE, 5)).astype(np.float32)
    img = nib.Nifti1Image(v, AFFINE)
    img.header.set_xyzt_units("mm", "unknown")
    img.header.set_zooms((*img.header.get_zooms()[:3], 2.0))  # a step, but in no time unit
    nib.save(img, str(tmp_path / "sent.nii.gz"))
    [(_, fig)] = figures_for(tmp_path / "sent.nii.gz", "timecourse", voxels=[(1, 2, 3)])
    [line] = fig.axes[0].get_lines()
    np.testing.assert_allclose(line.get_xdata(), np.arange(5))
    np.testing.assert_allclose(line.get_ydata(), v[1, 2, 3])
    assert fig.axes[0].get_xlabel().startswith("volume")


@pytest.mark.parametrize("argv, needles", [
    (["--voxels", "1,2"], ["--voxels", "i,j,k"]),
    (["--voxels", "20,1,1"], ["outside", "grid"]),
    (["--voxels", "0,1,1"], ["NaN"]),
    (["--kind", "bars"], ["--kind bars", "brain volume"]),
    (["--columns", "a"], ["--voxels"]),
])
def test_bad_volume_requests_one_line(vols, capsys, argv, needles):
    tmp, _, _ = vols
    one_line_error(capsys, ["plot", str(tmp / "pred4.nii.gz"), "-o", str(tmp / "x.png"), *argv], *needles)
    assert not (tmp / "x.png").exists()


def test_bad_volume_files_one_line(tmp_path, capsys):
    (tmp_path / "junk.nii.gz").write_bytes(b"not a nifti at all")
    one_line_error(capsys, ["plot", str(tmp_path / "junk.nii.gz")], "junk.nii.gz", "not a readable NIfTI")
    save_nifti(tmp_path / "flat.nii", np.ones((4, 5), np.float32))
    one_line_error(capsys, ["plot", str(tmp_path / "flat.nii")], "flat.nii", "shape")
    save_nifti(tmp_path / "empty.nii.gz", np.full((3, 3, 3), np.nan))
    one_line_error(capsys, ["plot", str(tmp_path / "empty.nii.gz")], "all NaN")
    save_nifti(tmp_path / "m.nii.gz", np.ones((3, 3, 3)))
    one_line_error(capsys, ["plot", str(tmp_path / "m.nii.gz"), "--kind", "timecourse"], "3-D map")
    one_line_error(capsys, ["plot", str(tmp_path / "m.nii.gz"), "--bg", str(tmp_path / "nope.nii.gz")], "nope.nii.gz", "not found")
    np.save(tmp_path / "r.npy", np.ones((2, 3)))
    one_line_error(capsys, ["plot", str(tmp_path / "r.npy"), "--kind", "glass"], "not a brain volume")


# ------------------------------------------------------------------------------------- .nc results and ROI groups


def test_nc_results_read_back(tmp_path):
    pytest.importorskip("xarray")
    pytest.importorskip("h5netcdf")
    from berg_core.store.userfiles import write_responses

    rng = np.random.default_rng(1)
    values = rng.standard_normal((4, 3))
    sentences = ["one", "two words", "a third one", "4"]
    write_responses(tmp_path / "r.nc", values, ["IFG", "AntTemp", "AG"], rows=sentences, attrs={"model_id": "m"})
    res = read_encode_result(tmp_path / "r.nc")
    np.testing.assert_array_equal(res.values, values)
    assert res.columns == ["IFG", "AntTemp", "AG"] and res.rows == sentences and res.times is None
    # N-D (rows x electrode x lag), flattened like the CSV: electrode@lag, last axis fastest
    nd = rng.standard_normal((5, 2, 3))
    axes = {"electrode": ["LGA1", "LGA2"], "lag": ["-1s", "0s", "1s"]}
    onsets = np.arange(5) * 2.0
    write_responses(tmp_path / "nd.nc", nd, [], axes=axes, rows=onsets, row_name="tr_onset_s", attrs={})
    res = read_encode_result(tmp_path / "nd.nc")
    assert res.columns == [f"{e}@{lag}" for e in axes["electrode"] for lag in axes["lag"]]
    np.testing.assert_array_equal(res.values, np.array([[nd[r, e, lag] for e in range(2) for lag in range(3)] for r in range(5)]))
    np.testing.assert_array_equal(res.times, onsets)
    out = tmp_path / "nd.png"
    assert main(["plot", str(tmp_path / "nd.nc"), "--kind", "timecourse", "--columns", "LGA2@0s", "-o", str(out), "-q"]) == 0
    assert_png(out, 3000)


def test_bad_nc_one_line(tmp_path, capsys):
    xr = pytest.importorskip("xarray")
    pytest.importorskip("h5netcdf")
    (tmp_path / "junk.nc").write_bytes(b"CDF\x01 garbage")
    one_line_error(capsys, ["plot", str(tmp_path / "junk.nc")], "junk.nc", "netCDF-4")
    xr.Dataset({"foo": ("x", np.arange(3.0))}).to_netcdf(tmp_path / "foreign.nc", engine="h5netcdf")
    one_line_error(capsys, ["plot", str(tmp_path / "foreign.nc")], "foreign.nc", "no variable 'responses'")


COLUMNS = ["v0", "v1", "v2", "v3", "v4"]
GROUPS = {"A": [0, 2], "B": [1, 3, 4]}


def grouped_result(tmp_path, fmt, values):
    """``values`` with the ROI groups written in brief D's format for ``fmt``."""
    from berg_core.store.userfiles import write_responses

    path = tmp_path / f"g.{fmt}"
    write_responses(path, values, COLUMNS, rows=list(np.arange(len(values)) * 2.0), row_name="tr_onset_s", attrs={"subject": "S1"})
    member = np.zeros((len(GROUPS), len(COLUMNS)), bool)
    for g, idx in enumerate(GROUPS.values()):
        member[g, idx] = True
    if fmt == "h5":
        import h5py

        with h5py.File(path, "a") as f:
            f.create_dataset("column_groups", data=member)
            f.create_dataset("column_group_names", data=np.array(list(GROUPS), dtype=object), dtype=h5py.string_dtype())
    elif fmt == "nc":
        import xarray as xr

        ds = xr.load_dataset(path, engine="h5netcdf")
        ds["column_groups"] = xr.DataArray(member, dims=("group", "neuroid"), coords={"group": list(GROUPS)})
        path.unlink()
        ds.to_netcdf(path, engine="h5netcdf")
    else:
        side = tmp_path / "g.json"
        meta = json.loads(side.read_text(encoding="utf-8"))
        side.write_text(json.dumps({**meta, "column_groups": GROUPS}), encoding="utf-8")
    return path


@pytest.mark.parametrize("fmt", ["h5", "nc", "csv"])
def test_roi_time_courses_are_means_over_each_rois_columns(tmp_path, fmt):
    if fmt == "nc":
        pytest.importorskip("xarray")
        pytest.importorskip("h5netcdf")
    values = np.random.default_rng(2).standard_normal((8, len(COLUMNS)))
    path = grouped_result(tmp_path, fmt, values)
    out = tmp_path / "tc.png"
    assert main(["plot", str(path), "--kind", "timecourse", "--rois", "B,A", "-o", str(out), "-q"]) == 0
    assert_png(out, 3000)
    [(_, fig)] = figures_for(path, "timecourse", rois=["B", "A"])
    lines = fig.axes[0].get_lines()
    assert [ln.get_label() for ln in lines] == ["B", "A"]
    np.testing.assert_allclose(lines[0].get_ydata(), (values[:, 1] + values[:, 3] + values[:, 4]) / 3)
    np.testing.assert_allclose(lines[1].get_ydata(), (values[:, 0] + values[:, 2]) / 2)
    np.testing.assert_allclose(lines[0].get_xdata(), np.arange(8) * 2.0)


@pytest.mark.parametrize("ext", [".h5", ".nc", ".csv", ".tsv"])
def test_roi_groups_written_by_berg_encode_outputs_are_read(tmp_path, ext):
    """The groups as userfiles.write_responses records them (berg encode's writer) give the same ROI means."""
    if ext == ".nc":
        pytest.importorskip("xarray")
        pytest.importorskip("h5netcdf")
    from berg_core.store.userfiles import write_responses

    values = np.random.default_rng(4).standard_normal((6, len(COLUMNS)))
    path = tmp_path / f"w{ext}"
    write_responses(path, values, COLUMNS, rows=[f"s{i}" for i in range(6)], attrs={"model_id": "m"}, column_groups=GROUPS)
    res = read_encode_result(path)
    assert {k: v.tolist() for k, v in res.groups.items()} == GROUPS
    means = res.roi_means(["A", "B"]).values
    np.testing.assert_allclose(means, np.stack([values[:, [0, 2]].mean(1), values[:, [1, 3, 4]].mean(1)], axis=1))


def test_rois_without_groups_and_unknown_roi_one_line(tmp_path, capsys):
    from berg_core.store.userfiles import write_responses

    write_responses(tmp_path / "plain.csv", np.ones((3, 2)), ["a", "b"])
    one_line_error(capsys, ["plot", str(tmp_path / "plain.csv"), "--kind", "timecourse", "--rois", "A"], "no ROI groups", "--columns")
    path = grouped_result(tmp_path, "csv", np.ones((3, len(COLUMNS))))
    one_line_error(capsys, ["plot", str(path), "--kind", "timecourse", "--rois", "C"], "no ROI group", "'C'")
    side = tmp_path / "g.json"
    side.write_text(json.dumps({"column_groups": {"A": [0, 99]}}), encoding="utf-8")
    one_line_error(capsys, ["plot", str(path), "--rois", "A"], "column_groups")


# ------------------------------------------------------------------------------------- train folders


@pytest.fixture
def train_folder(tmp_path):
    """A berg train folder as brief A writes it: scores, noise_ceiling.npy, cc_norm_raw.npy, map_r_raw.nii.gz + reference."""
    rng = np.random.default_rng(3)
    n = 10
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps({"suffix": "raw", "n_voxels": n, "model_id": "m", "scores": {"mean_cc": 0.1},
                                                     "training": {"alphas": [0.1, 1.0, 10.0]}}), encoding="utf-8")
    cc = rng.uniform(-0.1, 0.6, n)
    ceiling = rng.uniform(0.5, 0.9, n)
    np.save(folder / "cc_raw.npy", cc)
    np.save(folder / "alphas_raw.npy", rng.choice([0.1, 1.0, 10.0], n))
    np.save(folder / "noise_ceiling.npy", ceiling)
    np.save(folder / "cc_norm_raw.npy", cc / ceiling)
    rmap = np.full(SHAPE, np.nan, np.float32)
    rmap[2:4, 3:8, 2] = cc.reshape(2, 5)
    rmap[5, 7, 3] = 0.95  # the peak
    save_nifti(folder / "map_r_raw.nii.gz", rmap)
    save_nifti(folder / "space_reference.nii.gz", rng.uniform(100, 200, SHAPE))
    return folder, cc, ceiling


def test_train_folder_r_map_noise_ceiling_and_cc_norm(train_folder):
    pytest.importorskip("nilearn")
    folder, cc, ceiling = train_folder
    figs = dict(figures_for(folder))
    assert list(figs) == ["r_hist", "roi_r", "alphas", "r_map"]
    x, y, z = (AFFINE @ np.array([5, 7, 3, 1.0]))[:3]
    np.testing.assert_allclose(crosses(figs["r_map"]), [(y, z), (x, z), (x, y)], atol=1e-6)
    assert all(len(ax.images) == 2 for ax in figs["r_map"].axes if len(ax.get_lines()) == 2)  # on space_reference
    # noise_ceiling.npy is used without --noise-ceiling
    np.testing.assert_allclose(figs["roi_r"].axes[0].collections[0].get_offsets()[:, 1], [ceiling.mean()])
    written = write_defaults(folder)
    assert folder / "fig_r_map.png" in written
    assert_png(folder / "fig_r_map.png")
    html = (folder / "report.html").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == 4 and "test r map" in html
    assert f"{np.mean(cc / ceiling):.4f}" in html  # mean cc_norm per ROI (all voxels)
    out = folder / "map.png"
    assert main(["plot", str(folder), "--kind", "train-map", "-o", str(out), "-q"]) == 0
    assert_png(out)


# ------------------------------------------------------------------------------------- laziness


def test_berg_list_imports_no_plotting_or_volume_library():
    code = ("import sys, json\nfrom berg_core.cli import main\nmain(['list'])\nimport berg_core.figures, berg_core.cli.plot\n"
            "print(json.dumps(sorted(m for m in ('matplotlib', 'nilearn', 'nibabel', 'xarray', 'h5netcdf') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []


def test_berg_train_with_a_subject_space_writes_the_r_map_figure(tmp_path):
    """End to end: berg train --space-mask/--space-reference/--noise-ceiling writes fig_r_map.png, cut at the voxel of the
    largest |test r| (found here from cc_raw.npy and the mask in pycortex order: (z, y, x) C-order)."""
    pytest.importorskip("nilearn")
    rng = np.random.default_rng(5)
    mask = rng.random((6, 5, 4)) < 0.5
    n_vox = int(mask.sum())
    X = rng.standard_normal((200, 8))
    Y = X @ (rng.standard_normal((8, n_vox)) * (np.arange(n_vox) % 3 == 0)) + rng.standard_normal((200, n_vox))
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "Y.npy", Y)
    np.save(tmp_path / "ceiling.npy", rng.uniform(0.4, 1.0, n_vox))
    save_nifti(tmp_path / "mask.nii.gz", mask.astype(np.float32))
    save_nifti(tmp_path / "ref.nii.gz", rng.uniform(100, 200, mask.shape))
    out = tmp_path / "run"
    assert main(["train", "--features", str(tmp_path / "X.npy"), "--responses", str(tmp_path / "Y.npy"), "--test", "150:200",
                 "--alphas", "logspace:-2:4:7", "--out", str(out), "--quiet", "--space-mask", str(tmp_path / "mask.nii.gz"),
                 "--space-reference", str(tmp_path / "ref.nii.gz"), "--noise-ceiling", str(tmp_path / "ceiling.npy")]) == 0
    assert_png(out / "fig_r_map.png")
    cc = np.load(out / "cc_raw.npy")
    z, y, x = np.nonzero(mask.T)
    best = int(np.argmax(np.abs(cc)))
    wx, wy, wz = (AFFINE @ np.array([x[best], y[best], z[best], 1.0]))[:3]
    fig = dict(figures_for(out))["r_map"]
    np.testing.assert_allclose(crosses(fig), [(wy, wz), (wx, wz), (wx, wy)], atol=1e-6)
    assert "test r map" in (out / "report.html").read_text(encoding="utf-8")
