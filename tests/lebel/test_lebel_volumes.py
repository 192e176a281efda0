"""LeBel predictions as brain volumes (issue 11, item 2): synthetic pycortex-db files (mask_thick + reference with a
known affine) served by the loopback mirror as ``$BERG_OPENNEURO_URL``; every voxel of the NIfTI is checked against the
``.npy`` column at its mask position, found independently with ``np.nonzero`` in (z, y, x) order."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from lebel_helpers import LAYER, N_VOXELS, make_story

from berg_core.cli import main
from berg_core.testing import serve_directory
from berg_lebel import plugin

nib = pytest.importorskip("nibabel")

MODEL = "fmri-lebel2023-opt_1_3b"
SUBJECT = "UTS01"
GRID = (7, 6, 5)  # (x, y, z) of the synthetic functional space
AFFINE = np.array([[-2.6, 0.0, 0.1, 90.0], [0.0, 2.6, 0.0, -110.5], [0.0, -0.2, 2.5, -40.0], [0.0, 0.0, 0.0, 1.0]])
pytestmark = pytest.mark.usefixtures("berg_tree")


def _folder(bucket: Path, subject: str = SUBJECT) -> Path:
    return bucket / plugin.PYCORTEX_DIR.format(subject=subject)


def write_pycortex_db(bucket: Path, n_voxels: int, seed: int = 0) -> np.ndarray:
    """mask_thick.nii.gz (written as pycortex does: ``Nifti1Image(mask_zyx.T, affine)``) and reference.nii.gz under the
    OpenNeuro layout; returns the (z, y, x) bool mask."""
    rng = np.random.default_rng(seed)
    mask_zyx = np.zeros(GRID[::-1], dtype=bool)
    mask_zyx.flat[rng.choice(mask_zyx.size, n_voxels, replace=False)] = True
    folder = _folder(bucket)
    folder.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(mask_zyx.T.astype(np.uint8), AFFINE), str(folder / "mask_thick.nii.gz"))
    nib.save(nib.Nifti1Image(rng.random(GRID).astype(np.float32), AFFINE), str(folder / "reference.nii.gz"))
    return mask_zyx


def publish(monkeypatch, bucket: Path) -> None:
    """Record the served files' sizes and MD5s as the plugin's known values (as the spec's table does for OpenNeuro)."""
    for name, table in (("mask_thick.nii.gz", plugin.MASK_FILES), ("reference.nii.gz", plugin.REFERENCE_FILES)):
        data = (_folder(bucket) / name).read_bytes()
        monkeypatch.setitem(table, SUBJECT, (len(data), hashlib.md5(data).hexdigest()))


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    bucket = tmp_path / "openneuro"
    mask_zyx = write_pycortex_db(bucket, N_VOXELS[SUBJECT])
    publish(monkeypatch, bucket)
    with serve_directory(bucket) as url:
        monkeypatch.setenv("BERG_OPENNEURO_URL", url)
        yield url, bucket, mask_zyx


@pytest.fixture
def story(tmp_path) -> Path:
    path = tmp_path / "story.json"
    path.write_text(json.dumps(make_story(120, seed=5)))
    return path


def encode(opt_dir, story, out, *extra) -> int:
    return main(["encode", MODEL, "--subject", SUBJECT, "--input", str(story), "--output", str(out), "-O", f"backbone={opt_dir}",
                 "-O", f"layer={LAYER}", "-O", "progress=false", "--device", "cpu", "-q", *extra])


def test_4d_volume_puts_every_voxel_at_its_mask_position(opt_dir, story, mirror, tmp_path, capsys):
    url, _, mask_zyx = mirror
    assert encode(opt_dir, story, tmp_path / "pred.npy") == 0, capsys.readouterr().err
    pred = np.load(tmp_path / "pred.npy")
    assert encode(opt_dir, story, tmp_path / "pred.nii.gz") == 0, capsys.readouterr().err
    img = nib.load(tmp_path / "pred.nii.gz")
    vol = np.asarray(img.dataobj)
    assert vol.dtype == np.float32 and vol.shape == (*GRID, pred.shape[0])
    np.testing.assert_allclose(img.affine, AFFINE, atol=1e-6)
    assert img.header.get_zooms()[3] == pytest.approx(2.0) and img.header.get_xyzt_units() == ("mm", "sec")
    z, y, x = np.nonzero(mask_zyx)  # pycortex's voxel order: C-order over (z, y, x)
    assert len(z) == pred.shape[1]
    for j in range(len(z)):
        np.testing.assert_array_equal(vol[x[j], y[j], z[j], :], pred[:, j])
    outside = np.ones(GRID, dtype=bool)
    outside[x, y, z] = False
    assert np.isnan(vol[outside]).all()
    side = json.loads((tmp_path / "pred.json").read_text())
    assert side["model_id"] == MODEL and side["subject"] == SUBJECT and side["tr_s"] == 2.0 and side["n_trs"] == pred.shape[0]
    # the background berg plot draws on: the cached copy of the subject's reference
    served = (_folder(mirror[1]) / "reference.nii.gz").read_bytes()
    assert Path(side["reference"]).is_absolute() and Path(side["reference"]).read_bytes() == served
    assert url.gets(plugin.PYCORTEX_DIR.format(subject=SUBJECT) + "mask_thick.nii.gz") == 1
    # cached: a second run downloads nothing
    assert encode(opt_dir, story, tmp_path / "again.nii.gz", "--summary", "max") == 0
    assert url.gets(plugin.PYCORTEX_DIR.format(subject=SUBJECT) + "mask_thick.nii.gz") == 1


def test_selection_leaves_nan_elsewhere_and_summary_is_3d(opt_dir, story, mirror, tmp_path, capsys):
    _, _, mask_zyx = mirror
    chosen = [3, 17, 18, 60]
    voxels = tmp_path / "v.txt"
    voxels.write_text("\n".join("1" if i in chosen else "0" for i in range(N_VOXELS[SUBJECT])))
    assert encode(opt_dir, story, tmp_path / "sel.npy", "--voxels", str(voxels)) == 0, capsys.readouterr().err
    pred = np.load(tmp_path / "sel.npy")
    assert pred.shape[1] == len(chosen)
    for summary, fn in (("mean", np.mean), ("std", np.std)):
        out = tmp_path / f"sel_{summary}.nii.gz"
        assert encode(opt_dir, story, out, "--voxels", str(voxels), "--summary", summary) == 0, capsys.readouterr().err
        vol = np.asarray(nib.load(out).dataobj)
        assert vol.shape == GRID
        z, y, x = np.nonzero(mask_zyx)
        for k, j in enumerate(chosen):
            assert vol[x[j], y[j], z[j]] == pytest.approx(fn(pred[:, k].astype(np.float64)), rel=1e-5, abs=1e-6)
        assert int(np.isfinite(vol).sum()) == len(chosen)


def test_md5_mismatch_is_refused_and_the_file_deleted(opt_dir, story, mirror, tmp_path, capsys, monkeypatch):
    _, bucket, _ = mirror
    path = _folder(bucket) / "reference.nii.gz"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size, other bytes
    path.write_bytes(bytes(data))
    assert encode(opt_dir, story, tmp_path / "pred.nii.gz") == 1
    err = capsys.readouterr().err.strip()
    assert "MD5" in err and "BERG_OPENNEURO_URL" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "pred.nii.gz").exists()
    assert not list((Path(tmp_path / "cache") / "external").rglob("reference.nii.gz"))


def test_voxel_count_mismatch_is_one_line_and_writes_nothing(opt_dir, story, tmp_path, capsys, monkeypatch):
    bucket = tmp_path / "openneuro"
    write_pycortex_db(bucket, N_VOXELS[SUBJECT] - 1)
    publish(monkeypatch, bucket)
    with serve_directory(bucket) as url:
        monkeypatch.setenv("BERG_OPENNEURO_URL", url)
        assert encode(opt_dir, story, tmp_path / "pred.nii.gz") == 1
    err = capsys.readouterr().err.strip()
    assert f"has {N_VOXELS[SUBJECT] - 1} voxels but the model has {N_VOXELS[SUBJECT]} columns" in err and len(err.splitlines()) == 1
    assert not list(tmp_path.glob("pred*"))


def test_summary_needs_nifti(tmp_path, capsys, story):
    # (a .nii.gz for a model without voxel space: tests/core/test_outputs.py, where the test plugin is installed)
    assert main(["encode", MODEL, "--subject", SUBJECT, "--input", str(story), "-o", str(tmp_path / "p.npy"), "--summary", "mean"]) == 1
    assert "--summary makes a 3-D brain map" in capsys.readouterr().err


def test_berg_fetch_gets_the_mask_and_reference(mirror, tmp_path, capsys):
    url, bucket, _ = mirror
    assert main(["fetch", MODEL, "--subject", SUBJECT, "--no-backbone", "-q"]) == 0, capsys.readouterr().err
    assert url.gets(plugin.PYCORTEX_DIR.format(subject=SUBJECT) + "reference.nii.gz") == 1
    cached = sorted((tmp_path / "cache" / "external").rglob("*.nii.gz"))  # in berg's cache, the export's layout
    assert [p.name for p in cached] == ["mask_thick.nii.gz", "reference.nii.gz"]
    for p in cached:
        assert p.read_bytes() == (_folder(bucket) / p.name).read_bytes()


def test_a_missing_file_names_the_openneuro_setting(opt_dir, story, mirror, tmp_path, capsys):
    _, bucket, _ = mirror
    (_folder(bucket) / "mask_thick.nii.gz").unlink()
    assert encode(opt_dir, story, tmp_path / "pred.nii.gz") == 1
    err = capsys.readouterr().err.strip()
    assert "HTTP 404" in err and "$BERG_OPENNEURO_URL" in err and "BERG_BASE_URL" not in err and len(err.splitlines()) == 1


def test_csv_rows_are_tr_onsets_in_seconds(opt_dir, story, tmp_path, capsys):
    """The rows of a LeBel output are TRs: t_k = onsets[0] + 2 s * k, k < ceil((onsets[-1] + 8 s - onsets[0]) / 2 s)."""
    import csv
    import math

    assert encode(opt_dir, story, tmp_path / "pred.csv") == 0, capsys.readouterr().err
    assert encode(opt_dir, story, tmp_path / "pred.npy") == 0
    rows = list(csv.reader((tmp_path / "pred.csv").open()))
    onsets = json.loads(story.read_text())["word_onsets"]
    n = math.ceil((onsets[-1] + 8.0 - onsets[0]) / 2.0)
    assert rows[0][0] == "tr_onset_s" and rows[0][1:3] == ["voxel_0", "voxel_1"]
    np.testing.assert_allclose([float(r[0]) for r in rows[1:]], onsets[0] + 2.0 * np.arange(n))
    np.testing.assert_array_equal(np.array([[float(v) for v in r[1:]] for r in rows[1:]], dtype=np.float32), np.load(tmp_path / "pred.npy"))
    xr = pytest.importorskip("xarray")
    assert encode(opt_dir, story, tmp_path / "pred.nc", "--voxels", str(_voxel_file(tmp_path, [3, 17]))) == 0
    with xr.open_dataarray(tmp_path / "pred.nc", engine="h5netcdf") as da:
        assert list(da["voxel_num"].values) == [3, 17] and set(da["subject"].values) == {SUBJECT}
        np.testing.assert_allclose(da["tr_onset_s"].values, onsets[0] + 2.0 * np.arange(n))
        # a 2-column product may round differently in float32 than the whole-cortex one
        np.testing.assert_allclose(da.values, np.load(tmp_path / "pred.npy")[:, [3, 17]], rtol=1e-5, atol=1e-6)
    side = json.loads((tmp_path / "pred.json").read_text())
    assert side["rows"] == "tr_onset_s" and side["backbone"] == str(opt_dir) and side["layer"] == LAYER and side["units"].startswith("z")


def _voxel_file(tmp_path, chosen):
    path = tmp_path / "voxels.txt"
    path.write_text("\n".join("1" if i in chosen else "0" for i in range(N_VOXELS[SUBJECT])))
    return path


def test_nifti_without_nibabel_is_refused_before_the_model_loads(story, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "nibabel", None)  # import nibabel -> ImportError
    assert main(["encode", MODEL, "--subject", SUBJECT, "--input", str(story), "-o", str(tmp_path / "p.nii.gz"),
                 "-O", "backbone=/nowhere"]) == 1  # refused before the (missing) backbone is looked at
    err = capsys.readouterr().err.strip()
    assert "berg-core[maps]" in err and len(err.splitlines()) == 1
