"""``berg train`` on synthetic data: outputs checked against independent computations, and bad input."""

import json

import numpy as np
import pytest

from berg_core.cli import main
from berg_core.errors import InvalidParameterError, ResourceError
from berg_core.features.timeseries import delay
from berg_core.fit.train import TrainConfig, load_matrix, parse_test, segment_bounds, train

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

ALPHAS = [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0]


@pytest.fixture
def data(tmp_path):
    rng = np.random.default_rng(0)
    n, d, v = 240, 6, 12
    F = rng.standard_normal((n, d))
    W = rng.standard_normal((d, v))
    Y = F @ W * np.linspace(0.05, 1.0, v) + rng.standard_normal((n, v)) + 5.0
    np.save(tmp_path / "F.npy", F)
    np.save(tmp_path / "Y.npy", Y)
    return tmp_path, F, Y


def cli(*args):
    return main(["train", *map(str, args), "--quiet"])


def test_train_outputs_match_independent_computations(data):
    from scipy.stats import false_discovery_control
    from sklearn.linear_model import Ridge

    tmp, F, Y = data
    out = tmp / "out"
    assert cli("--features", tmp / "F.npy", "--responses", tmp / "Y.npy", "--test", "200:240", "--folds", 4,
               "--alphas", ",".join(map(str, ALPHAS)), "--permutations", 99, "--perm-block", 5, "--perm-mode", "voxel", "--out", out) == 0
    for name in ("cv_cc", "cc", "coef", "alphas", "pvalues", "pvalues_corrected", "preds"):
        assert (out / f"{name}_raw.npy").is_file(), name
    assert (out / "dist_raw.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    alphas = np.load(out / "alphas_raw.npy")
    coef = np.load(out / "coef_raw.npy")
    preds = np.load(out / "preds_raw.npy")
    assert coef.shape == (6, 12) and preds.shape == (40, 12)
    for j in range(12):  # coef and preds = sklearn Ridge on the training rows at the chosen alpha
        ref = Ridge(alpha=alphas[j]).fit(F[:200], Y[:200, j])
        np.testing.assert_allclose(coef[:, j], ref.coef_, atol=1e-6)
        np.testing.assert_allclose(preds[:, j], ref.predict(F[200:]), atol=1e-6)
    cc = np.load(out / "cc_raw.npy")
    np.testing.assert_allclose(cc, [np.corrcoef(preds[:, j], Y[200:, j])[0, 1] for j in range(12)], atol=1e-10)
    p = np.load(out / "pvalues_raw.npy")
    assert np.all((p >= 0.01) & (p <= 1)) and np.allclose(p * 100, np.round(p * 100))  # (k+1)/(N+1), N = 99
    np.testing.assert_allclose(np.load(out / "pvalues_corrected_raw.npy"), false_discovery_control(p, method="bh"), atol=1e-12)
    assert cc[-1] > 0.5 and p[-1] == pytest.approx(0.01)  # the strongest voxel is significant
    summary = json.loads((out / "summary.json").read_text())
    assert summary["suffix"] == "raw" and summary["n_voxels"] == 12
    assert summary["scores"]["mean_cc"] == pytest.approx(cc.mean())
    assert summary["training"]["n_train"] == 200 and summary["training"]["n_test"] == 40
    assert len(summary["training"]["inputs"]["responses"]["sha256"]) == 64
    cv_cc = np.load(out / "cv_cc_raw.npy")
    assert cv_cc.shape == (12,) and cv_cc[-1] > 0.5
    card = json.loads((out / "berg_encoder.json").read_text())
    assert card["outputs"]["n"] == 12 and card["feature_spaces"][0]["backbone"] is None


def test_pca_fir_delays_and_suffix(data):
    from sklearn.decomposition import PCA as SkPCA
    from sklearn.linear_model import Ridge

    tmp, F, Y = data
    res = train(TrainConfig(features=[str(tmp / "F.npy")], responses=str(tmp / "Y.npy"), out=str(tmp / "o"), test="-40:",
                            reduce="pca:3", delays=[1, 2], delay_mode="fir", folds=4, alphas=ALPHAS, permutations=0))
    assert res.suffix == "3PCs" and (tmp / "o" / "cc_3PCs.npy").is_file() and not (tmp / "o" / "pvalues_3PCs.npy").exists()
    assert res.coef.shape == (6, 12)  # 3 components × 2 delays, delay-major
    pca = SkPCA(3, svd_solver="full").fit(F[:200])  # fit on training rows only
    Z = pca.transform(F)
    ours = res.coef  # compare the fit on an independently built design (component signs do not matter for predictions)
    X = delay(Z, [1, 2], mode="fir")
    alphas = np.load(tmp / "o" / "alphas_3PCs.npy")
    for j in (0, 11):
        ref = Ridge(alpha=alphas[j]).fit(X[:200], Y[:200, j])
        np.testing.assert_allclose(res.preds[:, j], ref.predict(X[200:]), atol=1e-6)
    assert ours.shape[0] == X.shape[1]


def test_mean_delays_keep_width_and_segments_stop_delays(data):
    tmp, F, Y = data
    labels = np.repeat(["s1", "s2", "s3"], 80)
    (tmp / "seg.txt").write_text("\n".join(labels))
    assert segment_bounds(str(tmp / "seg.txt"), 240) == [(0, 80), (80, 160), (160, 240)]
    res = train(TrainConfig(features=[str(tmp / "F.npy")], responses=str(tmp / "Y.npy"), out=str(tmp / "o"), test="160:240",
                            delays=[8, 9, 10], delay_mode="mean", segments=str(tmp / "seg.txt"), folds=4, alphas=ALPHAS, permutations=0))
    assert res.coef.shape == (6, 12)
    X = np.concatenate([delay(F[a:b], [8, 9, 10], mode="mean") for a, b in [(0, 80), (80, 160), (160, 240)]])
    alphas = np.load(tmp / "o" / "alphas_raw.npy")
    from sklearn.linear_model import Ridge

    ref = Ridge(alpha=alphas[3]).fit(X[:160], Y[:160, 3])
    np.testing.assert_allclose(res.preds[:, 3], ref.predict(X[160:]), atol=1e-6)


def test_cv_groups_file(data):
    from berg_core.fit.ridge import RidgeCV

    tmp, F, Y = data
    groups = np.repeat([0, 1, 2, 3], 60)
    np.save(tmp / "g.npy", groups)
    res = train(TrainConfig(features=[str(tmp / "F.npy")], responses=str(tmp / "Y.npy"), out=str(tmp / "o"), test="200:240",
                            cv_groups=str(tmp / "g.npy"), alphas=ALPHAS, permutations=0))
    ref = RidgeCV(ALPHAS, scoring="r2").fit(F[:200], Y[:200], groups=groups[:200])  # berg train picks alphas by r2 by default
    np.testing.assert_allclose(res.cv_cc, ref.cv_score_, atol=1e-12)


def test_banded_two_spaces_and_h5_input(data):
    pytest.importorskip("himalaya")
    import h5py

    tmp, F, Y = data
    with h5py.File(tmp / "G.h5", "w") as fh:
        fh.create_dataset("layer9", data=F[:, :3] ** 2)
    res = train(TrainConfig(features=[str(tmp / "F.npy"), f"{tmp / 'G.h5'}:layer9"], responses=str(tmp / "Y.npy"), out=str(tmp / "o"),
                            feature_names=["semantic", "squares"], test="200:240", folds=4, alphas=ALPHAS, n_iter=5, permutations=20, perm_block=4))
    o = tmp / "o"
    assert res.coef.shape == (9, 12)
    for name in ("semantic", "squares"):
        assert np.load(o / f"preds_raw_{name}.npy").shape == (40, 12)
        assert np.load(o / f"cc_raw_{name}.npy").shape == (12,)
    parts = np.load(o / "preds_raw_semantic.npy") + np.load(o / "preds_raw_squares.npy")
    np.testing.assert_allclose(parts + Y[:200].mean(0), res.preds, atol=1e-8)
    split_sum = np.load(o / "cc_raw_semantic.npy") + np.load(o / "cc_raw_squares.npy")
    np.testing.assert_allclose(split_sum, res.cc, atol=1e-8)
    np.testing.assert_allclose(np.load(o / "coef_raw_semantic.npy"), res.coef[:6])
    assert "banded" in res.summary["training"]["solver"]


def test_load_matrix_formats_and_errors(tmp_path):
    import h5py

    np.save(tmp_path / "a.npy", np.arange(6.0))
    assert load_matrix(tmp_path / "a.npy").shape == (6, 1)
    with h5py.File(tmp_path / "two.h5", "w") as fh:
        fh["x"] = np.zeros((3, 2))
        fh["y"] = np.zeros((3, 2))
    with pytest.raises(InvalidParameterError, match="name the dataset"):
        load_matrix(tmp_path / "two.h5")
    assert load_matrix(f"{tmp_path / 'two.h5'}:y").shape == (3, 2)
    with pytest.raises(ResourceError):
        load_matrix(tmp_path / "missing.npy")
    (tmp_path / "a.csv").write_text("1,2")
    with pytest.raises(InvalidParameterError, match=".npy or .h5"):
        load_matrix(tmp_path / "a.csv")


def test_parse_test():
    np.testing.assert_array_equal(parse_test("8:10", 10), [8, 9])
    np.testing.assert_array_equal(parse_test("-3:", 20), [17, 18, 19])
    with pytest.raises(InvalidParameterError, match="no rows"):
        parse_test("5:5", 10)
    with pytest.raises(InvalidParameterError, match="training rows"):
        parse_test("0:9", 10)


def test_parse_test_files(tmp_path):
    np.save(tmp_path / "idx.npy", np.array([3, 1]))
    np.testing.assert_array_equal(parse_test(str(tmp_path / "idx.npy"), 20), [1, 3])
    mask = np.zeros(20)
    mask[[0, 19]] = 1
    (tmp_path / "mask.txt").write_text(" ".join(map(str, mask.astype(int))))
    np.testing.assert_array_equal(parse_test(str(tmp_path / "mask.txt"), 20), [0, 19])
    with pytest.raises(InvalidParameterError, match="0..2"):
        parse_test(str(tmp_path / "idx.npy"), 3)


def test_clear_errors(data, capsys):
    tmp, F, Y = data
    np.save(tmp / "short.npy", F[:100])
    bad = F.copy()
    bad[5, 1] = np.nan
    np.save(tmp / "nan.npy", bad)
    base = ["--responses", tmp / "Y.npy", "--out", tmp / "o", "--permutations", 0]
    cases = [
        (["--features", tmp / "short.npy"], "sample counts differ"),
        (["--features", tmp / "nan.npy"], "NaN"),
        (["--features", tmp / "F.npy", "--folds", 150], "too few samples per fold"),
        (["--features", tmp / "F.npy", "--backend", "jax"], "unknown backend"),
        (["--features", tmp / "F.npy", "--reduce", "ica:3"], "unknown reduction"),
        (["--features", tmp / "F.npy", "--backbone", "gpt2", "--layer", 3, "--delays", 1, 2], "takes no --delays"),
        (["--features", tmp / "F.npy", "--backbone", "gpt2"], "needs --layer"),
        (["--features", tmp / "F.npy", "--stimulus", "timed_words", "--backbone", "gpt2", "--layer", 1], "needs --tr"),
        (["--features", tmp / "F.npy", "--test", "nofile.npy"], "neither START:STOP"),
    ]
    for args, message in cases:
        assert cli(*args, *base) == 1
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (args, err)
    assert not (tmp / "o").exists()  # nothing written half-way


def test_bad_card_inputs_are_one_line_before_the_fit(data, capsys, monkeypatch):
    """--rois / --output-names / --model-id that would make an unreadable card are refused before any fitting."""
    tmp, F, Y = data
    monkeypatch.setattr("berg_core.fit.ridge.RidgeCV.fit", lambda *a, **k: (_ for _ in ()).throw(AssertionError("fitted")))
    (tmp / "latin1.txt").write_bytes("\n".join(f"vöxel{i}" for i in range(12)).encode("latin-1"))
    (tmp / "bad.json").write_text("{not json")
    (tmp / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp / "strings.json").write_text(json.dumps({"a": ["0", "1"]}))
    (tmp / "range.json").write_text(json.dumps({"a": [0, 12]}))
    (tmp / "nested.json").write_text(json.dumps({"a": [[0]]}))
    base = ["--features", tmp / "F.npy", "--responses", tmp / "Y.npy", "--out", tmp / "o", "--permutations", 0]
    cases = [
        (["--output-names", tmp / "latin1.txt"], "not UTF-8"),
        (["--output-names", tmp / "missing.txt"], "cannot be read"),
        (["--rois", tmp / "bad.json"], "not valid JSON"),
        (["--rois", tmp / "deep.json"], "not valid JSON"),
        (["--rois", tmp / "strings.json"], "list of column indices"),
        (["--rois", tmp / "nested.json"], "list of column indices"),
        (["--rois", tmp / "range.json"], "in 0..11"),
        (["--model-id", "my model/v1"], "--model-id 'my model/v1'"),
        (["--description", "x\x1b[2J"], "--description: give text"),
        (["--card", tmp / "latin1.txt"], "--card"),
    ]
    for args, message in cases:
        assert cli(*base, *args) == 1
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (args, err)
    assert not (tmp / "o").exists()


def test_out_must_be_new_unless_overwrite(data, capsys):
    tmp, F, Y = data
    base = ["--features", tmp / "F.npy", "--responses", tmp / "Y.npy", "--out", tmp / "o", "--permutations", 0, "--alphas", "1"]
    assert cli(*base) == 0
    first = np.load(tmp / "o" / "coef_raw.npy")
    capsys.readouterr()
    assert cli(*base[:-1], "1000") == 1
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    np.testing.assert_array_equal(np.load(tmp / "o" / "coef_raw.npy"), first)
    assert cli(*base[:-1], "1000", "--overwrite") == 0
    assert not np.allclose(np.load(tmp / "o" / "coef_raw.npy"), first)
    assert sorted(p.name for p in tmp.iterdir()) == ["F.npy", "Y.npy", "o"]  # no stage left beside it


def test_permutation_block_from_the_data_and_short_block_noted(tmp_path, capsys):
    """No --perm-block: the block comes from the test residuals (longer for smooth noise); a given block
    shorter than their correlation length gives a one-line notice and a note in summary.json."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(4)
    n = 1400
    F = rng.standard_normal((n, 3))
    Y = F @ rng.standard_normal((3, 8)) * 0.2 + lfilter([1.0], [1.0, -0.9], rng.standard_normal((n, 8)), axis=0)
    np.save(tmp_path / "F.npy", F)
    np.save(tmp_path / "Y.npy", Y)
    base = dict(features=[str(tmp_path / "F.npy")], responses=str(tmp_path / "Y.npy"), test="400:", folds=4, alphas=ALPHAS, permutations=50)
    auto = train(TrainConfig(**base, out=str(tmp_path / "auto")))
    training = auto.summary["training"]
    assert training["perm_block_from"] == "data" and training["perm_block"] >= 30 and training["perm_mode"] == "voxel"
    assert training["notes"] == []
    short = train(TrainConfig(**base, out=str(tmp_path / "short"), perm_block=2))
    assert short.summary["training"]["perm_block"] == 2
    assert "shorter than the residuals' correlation length" in short.summary["training"]["notes"][0]
    err = capsys.readouterr().err
    assert err.count("shorter than the residuals' correlation length") == 1


def test_drama2brain_and_huthlab_choices_reachable_by_flags(data):
    """drama2brain: alphas by CV correlation, pooled null over blocks of 10; HuthLab: λ = α² with correlation."""
    from sklearn.linear_model import Ridge

    from berg_core.fit.ridge import RidgeCV
    from berg_core.fit.stats import permutation_null, permutation_pvalues

    tmp, F, Y = data
    common = ["--features", tmp / "F.npy", "--responses", tmp / "Y.npy", "--test", "160:240", "--folds", 4, "--alphas", ",".join(map(str, ALPHAS))]
    assert cli(*common, "--scoring", "correlation", "--perm-mode", "pooled", "--perm-block", 10, "--permutations", 50, "--out", tmp / "d2b") == 0
    ref = RidgeCV(ALPHAS, cv=4, scoring="correlation").fit(F[:160], Y[:160])
    np.testing.assert_allclose(np.load(tmp / "d2b" / "alphas_raw.npy"), ref.best_alphas_)
    preds = np.load(tmp / "d2b" / "preds_raw.npy")
    null = permutation_null(Y[160:], preds, n_permutations=50, block=10, seed=0)
    r = np.load(tmp / "d2b" / "cc_raw.npy")
    np.testing.assert_allclose(np.load(tmp / "d2b" / "pvalues_raw.npy"), permutation_pvalues(r, null, mode="pooled"))
    summary = json.loads((tmp / "d2b" / "summary.json").read_text())
    assert summary["training"]["perm_mode"] == "pooled" and summary["training"]["perm_block"] == 10

    assert cli(*common, "--scoring", "correlation", "--alpha-convention", "huth", "--permutations", 0, "--out", tmp / "huth") == 0
    alphas = np.load(tmp / "huth" / "alphas_raw.npy")
    coef = np.load(tmp / "huth" / "coef_raw.npy")
    for j in (0, 11):  # the weights are sklearn's Ridge at λ = α²
        np.testing.assert_allclose(coef[:, j], Ridge(alpha=alphas[j] ** 2).fit(F[:160], Y[:160, j]).coef_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(alphas, RidgeCV(ALPHAS, cv=4, scoring="correlation", alpha_convention="huth").fit(F[:160], Y[:160]).best_alphas_)
