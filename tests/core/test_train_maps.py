"""``berg train --space-mask/--space-reference/--noise-ceiling``: brain maps of a trained encoder in a subject space.

Every check indexes the volumes independently of ``berg_core.store.volumes``: the response columns are the mask's
nonzero voxels in pycortex order, ``np.nonzero(mask_xyz.T != 0)`` = (z, y, x) C-order; a volume is (x, y, z).
"""

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

nib = pytest.importorskip("nibabel")

from berg_core.cli import main  # noqa: E402
from berg_core.errors import ModelLoadError  # noqa: E402
from berg_core.trained.cards import read_card  # noqa: E402

SHAPE = (6, 5, 4)  # (x, y, z)
#: a rotation + shear with an offset: the maps must carry it unchanged (no diagonal shortcut)
AFFINE = np.array([[2.0, 0.3, 0.1, -7.0], [-0.2, 2.5, 0.4, 3.0], [0.15, -0.1, 3.0, 11.0], [0, 0, 0, 1]])


def mask_xyz() -> np.ndarray:
    """An irregular, asymmetric 6×5×4 mask (x, y, z), about half the voxels."""
    rng = np.random.default_rng(7)
    mask = rng.random(SHAPE) < 0.5
    mask[0, 0, 0], mask[5, 4, 3], mask[5, 0, 0] = True, False, True
    return mask


def zyx_positions(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, z) index arrays of the response columns: pycortex's order, the mask read (z, y, x) and flattened C-order."""
    z, y, x = np.nonzero(mask.T)
    return x, y, z


def write_space(folder: Path, mask: np.ndarray, *, ref_shape=SHAPE, gz_reference=False) -> tuple[Path, Path]:
    """The mask as a NIfTI of 0/3 values (not only 0/1) and a reference (EPI-like values) with ``AFFINE``."""
    folder.mkdir(parents=True, exist_ok=True)
    m = folder / "mask.nii.gz"
    nib.save(nib.Nifti1Image(mask.astype(np.float32) * 3, AFFINE), m)
    r = folder / ("ref.nii.gz" if gz_reference else "ref.nii")  # an uncompressed reference: berg stores it gzipped
    nib.save(nib.Nifti1Image(np.random.default_rng(1).random(ref_shape).astype(np.float32) * 100, AFFINE), r)
    return m, r


@pytest.fixture()
def data(tmp_path):
    """Features, responses (signal planted in a third of the voxels), noise ceiling, and the space files."""
    mask = mask_xyz()
    n_vox = int(mask.sum())
    rng = np.random.default_rng(0)
    n, p = 240, 12
    X = rng.standard_normal((n, p))
    W = rng.standard_normal((p, n_vox)) * (np.arange(n_vox) % 3 == 0)
    Y = X @ W * 0.8 + rng.standard_normal((n, n_vox))
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "Y.npy", Y)
    ceiling = rng.uniform(0.3, 1.0, n_vox)
    np.save(tmp_path / "ceiling.npy", ceiling)
    m, r = write_space(tmp_path / "space", mask)
    return {"tmp": tmp_path, "mask": mask, "n_vox": n_vox, "ceiling": ceiling, "mask_file": m, "ref_file": r}


def train_args(d, out, *extra):
    t = d["tmp"]
    return ["train", "--features", str(t / "X.npy"), "--responses", str(t / "Y.npy"), "--test", "180:240", "--folds", "3",
            "--alphas", "logspace:-2:4:7", "--out", str(out), "--quiet", "--no-plots", *extra]


def space_args(d, mask=None, ref=None):
    return ["--space-mask", str(mask or d["mask_file"]), "--space-reference", str(ref or d["ref_file"])]


def check_map(path: Path, mask: np.ndarray, expected: np.ndarray) -> None:
    """The 3-D map holds ``expected`` (n_vox,) at the columns' voxels, NaN outside the mask, the reference's affine."""
    img = nib.load(path)
    vol = np.asarray(img.dataobj)
    assert vol.shape == SHAPE and vol.dtype == np.float32
    np.testing.assert_allclose(img.affine, AFFINE, atol=1e-6)
    assert img.header.get_xyzt_units() == ("mm", "sec")
    x, y, z = zyx_positions(mask)
    np.testing.assert_array_equal(vol[x, y, z], np.asarray(expected, dtype=np.float32))
    assert np.isnan(vol[~mask]).all()


def test_maps_r_cc_norm_and_significance(data):
    d, out = data, data["tmp"] / "out"
    assert main(train_args(d, out, "--permutations", "200", "--noise-ceiling", str(d["tmp"] / "ceiling.npy"),
                           "--space-name", "UTS99", *space_args(d))) == 0
    mask, s = d["mask"], "raw"
    cc = np.load(out / f"cc_{s}.npy")
    assert (cc[::3] > 0.3).all()  # the planted voxels are found (the maps below are not all noise)
    check_map(out / f"map_r_{s}.nii.gz", mask, cc)
    # cc_norm = r / CCmax (the formula, not the code's helper)
    np.testing.assert_allclose(np.load(out / f"cc_norm_{s}.npy"), cc / d["ceiling"], rtol=1e-12)
    np.testing.assert_array_equal(np.load(out / "noise_ceiling.npy"), d["ceiling"])
    check_map(out / f"map_cc_norm_{s}.nii.gz", mask, cc / d["ceiling"])
    pcorr = np.load(out / f"pvalues_corrected_{s}.npy")
    significant = (pcorr <= 0.05).astype(np.float32)
    assert 0 < significant.sum() < len(significant)
    check_map(out / f"map_significant_{s}.nii.gz", mask, significant)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scores"]["mean_cc_norm"] == pytest.approx(float(np.mean(cc / d["ceiling"])))
    assert {"map_r_raw.nii.gz", "map_r_raw.json", "noise_ceiling.npy", "space_mask.nii.gz"} <= set(summary["files"])
    side = json.loads((out / f"map_cc_norm_{s}.json").read_text())
    assert side["units"] == "cc_norm" and side["model_id"] == summary["model_id"] and side["space"] == "UTS99"
    assert side["reference"] == "space_reference.nii.gz"  # beside the map, so the folder can move
    assert json.loads((out / f"map_significant_{s}.json").read_text())["units"] == "0/1"
    # the copies: gzip, same image as the user's files; the card names and pins them
    for name, src in (("space_mask.nii.gz", d["mask_file"]), ("space_reference.nii.gz", d["ref_file"])):
        assert (out / name).read_bytes()[:2] == b"\x1f\x8b"
        np.testing.assert_array_equal(np.asarray(nib.load(out / name).dataobj), np.asarray(nib.load(src).dataobj))
    space = read_card(out)["space"]
    assert space["mask"] == "space_mask.nii.gz" and space["reference"] == "space_reference.nii.gz"
    assert space["n_voxels"] == d["n_vox"] and space["name"] == "UTS99"
    assert set(space["sha256"]) == {"space_mask.nii.gz", "space_reference.nii.gz"}


def test_xyz_order_would_misplace_the_voxels(data):
    """The fixture tells (z, y, x) from (x, y, z) order: the same mask flattened x-major puts the columns elsewhere."""
    mask = data["mask"]
    x, y, z = zyx_positions(mask)
    xs, ys, zs = np.nonzero(mask)  # x-major order
    assert not (np.array_equal(x, xs) and np.array_equal(y, ys) and np.array_equal(z, zs))


def test_no_significance_map_without_permutations(data):
    d, out = data, data["tmp"] / "out"
    assert main(train_args(d, out, "--permutations", "0", *space_args(d))) == 0
    check_map(out / "map_r_raw.nii.gz", d["mask"], np.load(out / "cc_raw.npy"))
    assert not (out / "map_significant_raw.nii.gz").exists() and not (out / "map_cc_norm_raw.nii.gz").exists()
    assert read_card(out)["space"]["name"] is None


def _refused(capsys, argv, out, *needles):
    capsys.readouterr()
    assert main(argv) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("berg: error:"), err
    for needle in needles:
        assert needle in err, err
    assert not out.exists() and not any(p.name.startswith(".out.tmp") for p in out.parent.iterdir())


def test_bad_space_or_ceiling_refused_before_fitting(data, capsys, monkeypatch):
    d, out = data, data["tmp"] / "out"
    t = d["tmp"]
    smaller = d["mask"].copy()
    smaller[0, 0, 0] = False
    m2, _ = write_space(t / "small", smaller)
    _refused(capsys, train_args(d, out, *space_args(d, mask=m2)), out, f"{d['n_vox'] - 1} nonzero voxels", f"{d['n_vox']} columns")
    _, r2 = write_space(t / "grid", d["mask"], ref_shape=(6, 5, 5))
    _refused(capsys, train_args(d, out, *space_args(d, ref=r2)), out, "grid")
    (t / "junk.nii.gz").write_bytes(b"not a nifti at all" * 20)
    _refused(capsys, train_args(d, out, *space_args(d, mask=t / "junk.nii.gz")), out, "junk.nii.gz", "not a readable NIfTI")
    _refused(capsys, train_args(d, out, *space_args(d, ref=t / "junk.nii.gz")), out, "not a readable NIfTI")
    _refused(capsys, train_args(d, out, "--space-mask", str(d["mask_file"])), out, "--space-reference")
    for bad, needle in ((d["ceiling"][:-1], "shape"), (np.where(np.arange(d["n_vox"]) == 2, np.nan, d["ceiling"]), "column 2"),
                        (np.where(np.arange(d["n_vox"]) == 4, 0.0, d["ceiling"]), "(0, 1]")):
        np.save(t / "bad.npy", bad)
        _refused(capsys, train_args(d, out, "--noise-ceiling", str(t / "bad.npy")), out, "--noise-ceiling", needle)
    monkeypatch.setitem(__import__("sys").modules, "nibabel", None)  # as if nibabel were not installed
    _refused(capsys, train_args(d, out, *space_args(d)), out, "pip install 'berg-core[maps]'")


def test_card_space_field_checked(data):
    d, out = data, data["tmp"] / "out"
    assert main(train_args(d, out, "--permutations", "0", *space_args(d))) == 0
    card_file = out / "berg_encoder.json"
    good = json.loads(card_file.read_text())
    for change, field in ((lambda c: c["space"].update(n_voxels=3), "space.n_voxels"),
                          (lambda c: c["space"].update(mask="../mask.nii.gz", sha256={**c["space"]["sha256"], "../mask.nii.gz": "0" * 64}),
                           "space.mask"),
                          (lambda c: c["space"]["sha256"].pop("space_reference.nii.gz"), "space.sha256"),
                          (lambda c: c["space"].update(name=["UTS03"]), "space.name")):
        card = json.loads(json.dumps(good))
        change(card)
        card_file.write_text(json.dumps(card))
        with pytest.raises(ModelLoadError, match=field.replace(".", r"\.")):
            read_card(out)
    card = json.loads(json.dumps(good))
    del card["space"]  # a card without the field stays valid
    card_file.write_text(json.dumps(card))
    assert "space" not in read_card(out)


# ------------------------------------------------------------------------------------------------
# berg encode DIR --output pred.nii.gz for a trained sentence encoder with a space
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from berg_core.testing.hf import tiny_gpt2

    return tiny_gpt2(tmp_path_factory.mktemp("gpt2"))


@pytest.fixture()
def sentence_encoder(data, gpt2):
    from berg_core.features.backbones import load_backbone, sentence_features
    from berg_core.testing.hf import CORPUS

    d, t = data, data["tmp"]
    vocab = sorted({w.strip(".,!?'") for s in CORPUS for w in s.split() if w.strip(".,!?'")})
    rng = np.random.default_rng(3)
    sents = [" ".join(rng.choice(vocab, size=rng.integers(3, 9))) + "." for _ in range(60)]
    F = sentence_features(load_backbone(str(gpt2), layer=2), sents, pooling="mean").astype(np.float64)
    Y = (F - F.mean(0)) / F.std(0) @ rng.standard_normal((F.shape[1], d["n_vox"])) * 0.3 + rng.standard_normal((60, d["n_vox"]))
    np.save(t / "F.npy", F)
    np.save(t / "YS.npy", Y)
    out = t / "enc"
    assert main(["train", "--features", str(t / "F.npy"), "--responses", str(t / "YS.npy"), "--test", "45:60", "--folds", "3",
                 "--alphas", "logspace:-1:3:5", "--permutations", "0", "--backbone", str(gpt2), "--layer", "2", "--pooling", "mean",
                 "--out", str(out), "--quiet", "--no-plots", *space_args(d)]) == 0
    (t / "s.txt").write_text("\n".join(sents[:5]) + "\n")
    return out


def test_encode_trained_encoder_as_volume(data, sentence_encoder, capsys):
    d, out, t = data, sentence_encoder, data["tmp"]
    base = ["encode", str(out), "--input", str(t / "s.txt"), "--device", "cpu"]
    assert main([*base, "--output", str(t / "x.npy")]) == 0
    assert main([*base, "--output", str(t / "x.nii.gz")]) == 0
    preds = np.load(t / "x.npy")
    img = nib.load(t / "x.nii.gz")
    vol = np.asarray(img.dataobj)
    assert vol.shape == (*SHAPE, 5)
    np.testing.assert_allclose(img.affine, AFFINE, atol=1e-6)
    x, y, z = zyx_positions(d["mask"])
    np.testing.assert_array_equal(vol[x, y, z].T, preds.astype(np.float32))
    assert np.isnan(vol[~d["mask"]]).all()
    # rows are sentences, not time: the 4th axis has no time unit and a step of 1
    assert img.header.get_xyzt_units() == ("mm", "unknown") and img.header.get_zooms()[3] == 1.0
    assert json.loads((t / "x.json").read_text())["tr_s"] is None
    # a voxel selection leaves NaN at the others
    sel = np.zeros(d["n_vox"], int)
    sel[[1, 4, 6]] = 1
    np.save(t / "sel.npy", sel)
    assert main([*base, "--voxels", str(t / "sel.npy"), "--summary", "mean", "--output", str(t / "m.nii.gz")]) == 0
    mean_vol = np.asarray(nib.load(t / "m.nii.gz").dataobj)
    assert mean_vol.shape == SHAPE
    expect = np.full(d["n_vox"], np.nan, np.float32)
    expect[[1, 4, 6]] = preds[:, [1, 4, 6]].mean(0)
    np.testing.assert_allclose(mean_vol[x, y, z], expect, rtol=1e-5)
    # a space file whose bytes changed is refused, naming it
    bad = t / "bad_enc"
    shutil.copytree(out, bad)
    raw = bytearray(gzip.decompress((bad / "space_reference.nii.gz").read_bytes()))
    raw[-1] ^= 0xFF
    (bad / "space_reference.nii.gz").write_bytes(gzip.compress(bytes(raw)))
    capsys.readouterr()
    assert main(["encode", str(bad), "--input", str(t / "s.txt"), "--device", "cpu", "--output", str(t / "y.nii.gz")]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "space_reference.nii.gz is corrupt" in err, err
    assert not (t / "y.nii.gz").exists()


def test_new_plugin_ships_the_space_files(data):
    """`berg new-plugin --encoder DIR` copies the space's files with the card, still matching their pinned hashes."""
    from berg_core.cli.new_plugin import create_plugin
    from berg_core.trained.cards import verify_space_files

    d, out = data, data["tmp"] / "out"
    assert main(train_args(d, out, "--permutations", "0", "--model-id", "lab-maps", *space_args(d))) == 0
    root = create_plugin("mapslab", [out], out=d["tmp"] / "pkg")
    shipped = next((root / "berg_mapslab" / "encoders").iterdir())
    files = verify_space_files(shipped, read_card(shipped))
    assert files["mask"].read_bytes() == (out / "space_mask.nii.gz").read_bytes()
    assert files["reference"].read_bytes() == (out / "space_reference.nii.gz").read_bytes()


def test_encode_timed_words_encoder_as_volume(data, gpt2):
    """A timed-words encoder's volume: one volume per TR, pixdim[4] = the card's tr in seconds."""
    from berg_core.features.backbones import load_backbone
    from berg_core.stimulus import as_timed_words
    from berg_core.testing.hf import CORPUS
    from berg_core.trained.encoder import stimulus_features

    d, t = data, data["tmp"]
    vocab = sorted({w.strip(".,!?'") for s in CORPUS for w in s.split() if w.strip(".,!?'")})
    rng = np.random.default_rng(4)
    stories = [{"words": list(rng.choice(vocab, size=60)), "word_onsets": np.cumsum(rng.uniform(0.2, 0.6, 60)).tolist()} for _ in range(3)]
    bb = load_backbone(str(gpt2), layer=2)
    feats = [stimulus_features({"layer": 2}, bb, as_timed_words(s), stimulus_kind="timed_words", tr=2.0) for s in stories]
    F = np.concatenate(feats)
    np.save(t / "F.npy", F)
    np.save(t / "YT.npy", F @ rng.standard_normal((F.shape[1], d["n_vox"])) * 0.2 + rng.standard_normal((len(F), d["n_vox"])))
    n_test = len(feats[-1])
    out = t / "timed"
    assert main(["train", "--features", str(t / "F.npy"), "--responses", str(t / "YT.npy"), "--test", f"{len(F) - n_test}:{len(F)}", "--folds", "3",
                 "--alphas", "logspace:-1:3:5", "--permutations", "0", "--stimulus", "timed_words", "--tr", "2.0",
                 "--backbone", str(gpt2), "--layer", "2", "--out", str(out), "--quiet", "--no-plots", *space_args(d)]) == 0
    (t / "story.json").write_text(json.dumps(stories[-1]))
    base = ["encode", str(out), "--input", str(t / "story.json"), "--device", "cpu"]
    assert main([*base, "--output", str(t / "p.npy")]) == 0
    assert main([*base, "--output", str(t / "p.nii.gz")]) == 0
    preds, img = np.load(t / "p.npy"), nib.load(t / "p.nii.gz")
    vol = np.asarray(img.dataobj)
    assert vol.shape == (*SHAPE, len(preds))
    x, y, z = zyx_positions(d["mask"])
    np.testing.assert_array_equal(vol[x, y, z].T, preds.astype(np.float32))
    assert img.header.get_xyzt_units() == ("mm", "sec") and img.header.get_zooms()[3] == pytest.approx(2.0)
