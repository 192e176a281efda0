"""Trained-encoder folders: ``berg train`` on a tiny GPT-2's features, then the generic family loads the
folder and reproduces ``preds``; outputs checked against the full HF model run independently."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("sklearn")

from berg_core import BERG  # noqa: E402
from berg_core.cli import main  # noqa: E402
from berg_core.errors import InvalidParameterError, ModelLoadError  # noqa: E402
from berg_core.features.timeseries import delay, lanczos_kernel, tr_grid  # noqa: E402
from berg_core.fit.train import TrainConfig, train  # noqa: E402
from berg_core.registry import get_registry, reset_registry  # noqa: E402
from berg_core.testing.hf import CORPUS, tiny_gpt2  # noqa: E402
from berg_core.trained.encoder import read_card, spec_from_dir, stimulus_features  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
VOCAB = sorted({w.strip(".,!?'") for s in CORPUS for w in s.split() if w.strip(".,!?'")})


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    return tiny_gpt2(tmp_path_factory.mktemp("gpt2"))


def make_sentences(n, seed=0):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(VOCAB, size=rng.integers(3, 10))) + "." for _ in range(n)]


def full_model_hidden(folder, text_ids, layer):
    """hidden_states[layer] of the full GPT2Model for one token sequence (independent reference)."""
    import torch
    from transformers import GPT2Model

    model = GPT2Model.from_pretrained(str(folder)).eval()
    with torch.no_grad():
        out = model(torch.tensor([text_ids]), output_hidden_states=True)
    return out.hidden_states[layer][0].double().numpy()


def tokenizer(folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))


@pytest.fixture(scope="module")
def sentence_encoder(gpt2, tmp_path_factory):
    """A trained sentence encoder folder (mean pooling, layer 2) and its inputs."""
    from berg_core.features.backbones import load_backbone, sentence_features

    tmp = tmp_path_factory.mktemp("sent")
    sents = make_sentences(150)
    F = sentence_features(load_backbone(str(gpt2), layer=2), sents, pooling="mean").astype(np.float64)
    rng = np.random.default_rng(1)
    Fz = (F - F.mean(0)) / F.std(0)
    Y = Fz @ rng.standard_normal((F.shape[1], 8)) * 0.3 + rng.standard_normal((150, 8))
    np.save(tmp / "F.npy", F)
    np.save(tmp / "Y.npy", Y)
    (tmp / "names.txt").write_text("\n".join(f"v{i}" for i in range(8)))
    (tmp / "rois.json").write_text(json.dumps({"left": [0, 1, 2], "right": [5, 7]}))
    out = tmp / "enc"
    code = main(["train", "--features", str(tmp / "F.npy"), "--responses", str(tmp / "Y.npy"), "--test", "120:150", "--folds", "4",
                 "--alphas", "logspace:-2:4:13", "--permutations", "0", "--backbone", str(gpt2), "--layer", "2", "--pooling", "mean",
                 "--model-id", "lab-tiny_sentences", "--output-names", str(tmp / "names.txt"), "--rois", str(tmp / "rois.json"),
                 "--out", str(out), "--quiet"])
    assert code == 0
    return out, sents


def test_encoder_reproduces_preds_and_the_full_model(sentence_encoder, gpt2):
    out, sents = sentence_encoder
    preds = np.load(out / "preds_raw.npy")
    with BERG().get_encoding_model(str(out), device="cpu") as model:
        got = model.encode(sents[120:])
        assert model.output_names == [f"v{i}" for i in range(8)]
    np.testing.assert_allclose(got, preds, atol=1e-5)
    # independent: the full model's hidden_states[2] averaged over each sentence's tokens, @ coef + intercept
    tok = tokenizer(gpt2)
    coef = np.load(out / "coef_raw.npy")
    feats = np.stack([full_model_hidden(gpt2, tok(s, add_special_tokens=False)["input_ids"], 2).mean(0) for s in sents[120:125]])
    with np.load(out / "arrays.npz") as npz:
        intercept = npz["intercept"]
    np.testing.assert_allclose(got[:5], feats @ coef + intercept, atol=1e-4)


def test_selection_by_voxels_and_rois(sentence_encoder):
    out, sents = sentence_encoder
    berg = BERG()
    with berg.get_encoding_model(str(out), device="cpu") as model:
        full = model.encode(sents[:4])
    mask = np.zeros(8, dtype=int)
    mask[[6, 3]] = 1
    with berg.get_encoding_model(str(out), selection={"voxel_index": mask, "roi": "right"}, device="cpu") as model:
        assert model.output_names == ["v3", "v5", "v6", "v7"]
        np.testing.assert_allclose(model.encode(sents[:4]), full[:, [3, 5, 6, 7]], atol=1e-6)
    with pytest.raises(InvalidParameterError, match="valid ROIs: left, right"):
        berg.get_encoding_model(str(out), selection={"roi": "middle"}, device="cpu")
    with pytest.raises(InvalidParameterError, match="length 8"):
        berg.get_encoding_model(str(out), selection={"voxel_index": [1, 0]}, device="cpu")
    with pytest.raises(InvalidParameterError, match="empty"):
        berg.get_encoding_model(str(out), selection={"voxel_index": np.zeros(8)}, device="cpu")


def test_metadata_info_and_cli(sentence_encoder, capsys, tmp_path):
    out, sents = sentence_encoder
    meta = BERG().get_model_metadata(str(out))
    np.testing.assert_allclose(meta["encoding_model"]["cv_cc"], np.load(out / "cv_cc_raw.npy"))
    assert meta["card"]["feature_spaces"][0]["layer"] == 2
    spec = spec_from_dir(out)
    assert spec.model_id == "lab-tiny_sentences" and spec.family == "trained" and spec.stimulus == "sentences"
    assert "mean_cv_cc" in spec.info and set(spec.selection) == {"voxel_index", "roi"}
    (tmp_path / "s.txt").write_text("\n".join(sents[120:]) + "\n")
    assert main(["encode", str(out), "--input", str(tmp_path / "s.txt"), "--output", str(tmp_path / "x.npy"), "--device", "cpu"]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "x.npy"), np.load(out / "preds_raw.npy"), atol=1e-5)


def test_encoder_path_env_lists_folders(sentence_encoder, monkeypatch, tmp_path, capsys):
    out, _ = sentence_encoder
    monkeypatch.setenv("BERG_ENCODER_PATH", f"{tmp_path / 'nothing'}:{out.parent}")
    reset_registry()
    assert get_registry().specs["lab-tiny_sentences"].family == "trained"
    assert main(["list", "lab-tiny"]) == 0
    assert "lab-tiny_sentences" in capsys.readouterr().out


def test_folder_errors(sentence_encoder, tmp_path):
    out, _ = sentence_encoder
    with pytest.raises(ModelLoadError, match="no berg_encoder.json"):
        spec_from_dir(tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / "weights.h5").unlink()
    with pytest.raises(ModelLoadError, match="weights.h5 is missing"):
        BERG().get_encoding_model(str(broken), device="cpu")
    card = read_card(out)
    card["feature_spaces"][0]["backbone"] = None
    nobb = tmp_path / "nobb"
    shutil.copytree(out, nobb)
    (nobb / "berg_encoder.json").write_text(json.dumps(card))
    with pytest.raises(ModelLoadError, match="names no backbone"):
        BERG().get_encoding_model(str(nobb), device="cpu")
    (nobb / "berg_encoder.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        spec_from_dir(nobb)


def retrain_args(data, out, *extra):
    """`berg train` of the sentence_encoder fixture's data with another alpha grid (other weights, other predictions)."""
    return ["train", "--features", str(data / "F.npy"), "--responses", str(data / "Y.npy"), "--test", "120:150", "--folds", "4",
            "--alphas", "1e5", "--permutations", "0", "--backbone", str(data.parent / "gpt2"), "--layer", "2", "--pooling", "mean",
            "--model-id", "lab-tiny_sentences", "--out", str(out), "--quiet", *extra]


def folder_bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_train_refuses_an_existing_out_before_any_work(sentence_encoder, gpt2, tmp_path, monkeypatch, capsys):
    out, _ = sentence_encoder
    enc = tmp_path / "enc"
    shutil.copytree(out, enc)
    before = folder_bytes(enc)

    def no_fit(*args, **kwargs):
        raise AssertionError("fitted before checking --out")

    monkeypatch.setattr("berg_core.fit.ridge.RidgeCV.fit", no_fit)
    args = retrain_args(out.parent, enc)
    args[args.index("--backbone") + 1] = str(gpt2)
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"berg: error: --out {enc} already exists; pass --overwrite to replace it (the old folder stays until the new one " \
                  "is complete), or choose another folder"
    assert folder_bytes(enc) == before


KILL_POINTS = ["second .npy", "arrays.npz", "card", "after the switch"]


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_killed_overwrite_leaves_the_old_encoder_or_the_new_one(point, sentence_encoder, gpt2, tmp_path, monkeypatch):
    """`berg train --out EXISTING --overwrite` killed at each step: the folder is the whole old encoder or the whole new one."""
    import berg_core.trained.encoder as trained

    out, sents = sentence_encoder
    enc = tmp_path / "enc"
    shutil.copytree(out, enc)
    old_files = folder_bytes(enc)
    old_preds = np.load(out / "preds_raw.npy")
    args = retrain_args(out.parent, enc, "--overwrite")
    args[args.index("--backbone") + 1] = str(gpt2)

    class Killed(BaseException):  # like SIGKILL: nothing catches it
        pass

    def kill():
        if point != "after the switch":
            assert folder_bytes(enc) == old_files  # at the moment of the kill, the old folder is intact
        raise Killed

    if point == "second .npy":
        real, calls = np.save, []

        def save(*a, **k):
            calls.append(1)
            if len(calls) == 2:
                kill()
            return real(*a, **k)

        monkeypatch.setattr(np, "save", save)
    elif point == "arrays.npz":
        monkeypatch.setattr(trained.np, "savez", lambda *a, **k: kill())
    elif point == "card":
        monkeypatch.setattr(trained, "check_card", lambda *a, **k: kill())
    else:
        import berg_core.store.cache as cache

        monkeypatch.setattr(cache.shutil, "rmtree", lambda *a, **k: kill())  # the old folder, swapped out, is being removed
    with pytest.raises(Killed):
        main(args)
    monkeypatch.undo()
    with BERG().get_encoding_model(str(enc), device="cpu") as model:
        got = model.encode(sents[120:])
    if point == "after the switch":
        new_preds = np.load(enc / "preds_raw.npy")
        assert np.abs(new_preds - old_preds).max() > 1e-3
        np.testing.assert_allclose(got, new_preds, atol=1e-5)
    else:
        assert folder_bytes(enc) == old_files
        np.testing.assert_allclose(got, old_preds, atol=1e-5)
    # the next run cleans what the killed one left and replaces the folder
    assert main(args) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["enc"]
    with BERG().get_encoding_model(str(enc), device="cpu") as model:
        np.testing.assert_allclose(model.encode(sents[120:]), np.load(enc / "preds_raw.npy"), atol=1e-5)


def make_story(n_words, seed):
    rng = np.random.default_rng(seed)
    words = list(rng.choice(VOCAB, size=n_words))
    words[5] = "'s"  # a non-real word copies the previous vector
    onsets = np.cumsum(rng.uniform(0.2, 0.6, size=n_words))
    return {"words": words, "word_onsets": onsets.tolist()}


def test_timed_words_encoder_with_pca_and_fir_delays(gpt2, tmp_path):
    from berg_core.features.backbones import load_backbone
    from berg_core.stimulus import as_timed_words

    bb = load_backbone(str(gpt2), layer=3)
    stories = [make_story(70, s) for s in range(4)]
    space = {"layer": 3, "pooling": None}
    feats = [stimulus_features(space, bb, as_timed_words(s), stimulus_kind="timed_words", tr=2.0) for s in stories]
    F = np.concatenate(feats)
    labels = np.concatenate([[i] * len(f) for i, f in enumerate(feats)])
    rng = np.random.default_rng(2)
    Y = np.concatenate([delay(f, [1, 2]) for f in feats]) @ rng.standard_normal((2 * F.shape[1], 6)) * 0.2 + rng.standard_normal((len(F), 6))
    np.save(tmp_path / "F.npy", F)
    np.save(tmp_path / "Y.npy", Y)
    np.save(tmp_path / "seg.npy", labels)
    np.save(tmp_path / "test.npy", np.flatnonzero(labels == 3))
    res = train(TrainConfig(features=[str(tmp_path / "F.npy")], responses=str(tmp_path / "Y.npy"), out=str(tmp_path / "enc"),
                            test=str(tmp_path / "test.npy"), segments=str(tmp_path / "seg.npy"), delays=[1, 2], reduce="pca:8",
                            folds=3, alphas=list(np.logspace(-2, 4, 7)), permutations=0, stimulus="timed_words", tr=2.0,
                            backbone=[str(gpt2)], layer=[3], model_id="lab-tiny_story"))
    assert res.coef.shape == (16, 6)
    with BERG().get_encoding_model(str(tmp_path / "enc"), device="cpu") as model:
        got = model.encode(stories[3])
    np.testing.assert_allclose(got, res.preds, atol=1e-5)

    # independent reference: one full-model pass over the story (causal: equals the growing context),
    # dense Lanczos, population z-score, the stored PCA, FIR delays, weights
    story = stories[3]
    tok = tokenizer(gpt2)
    ids, last = [tok.bos_token_id], []
    real = [w for w in story["words"] if w.strip() and w != "'s"]
    for i, w in enumerate(real):
        ids += tok(w if i == 0 else " " + w, add_special_tokens=False)["input_ids"]
        last.append(len(ids) - 1)
    hidden = full_model_hidden(gpt2, ids, 3)[last]
    word_vecs, k = [], -1
    for w in story["words"]:
        if w.strip() and w != "'s":
            k += 1
        word_vecs.append(hidden[k])
    word_vecs = np.array(word_vecs)
    onsets = np.array(story["word_onsets"])
    times = tr_grid(onsets, tr=2.0)
    K = lanczos_kernel((times[:, None] - onsets[None, :]) / 2.0)
    R = K @ word_vecs
    Z = (R - R.mean(0)) / R.std(0)
    with np.load(tmp_path / "enc" / "arrays.npz") as npz:
        P = (Z - npz["pca_mean_0"]) @ npz["pca_components_0"].T
        intercept = npz["intercept"]
    ref = delay(P, [1, 2], mode="fir") @ np.load(tmp_path / "enc" / "coef_8PCs.npy") + intercept
    np.testing.assert_allclose(got, ref, atol=2e-4)


def test_new_plugin_renders_the_repository_template(tmp_path):
    from berg_core.cli.new_plugin import create_plugin, render

    for rel, text in render("mylab").items():
        assert (REPO / "plugins" / "template" / rel).read_text() == text, rel
    with pytest.raises(InvalidParameterError, match="lowercase"):
        render("My-Lab")
    root = create_plugin("abc", [], out=tmp_path)
    assert (root / "berg_abc" / "plugin.py").is_file() and (root / "berg_abc" / "encoders").is_dir()
    with pytest.raises(InvalidParameterError, match="already exists"):
        create_plugin("abc", [], out=tmp_path)


def test_banded_encoder_with_two_layers(gpt2, tmp_path):
    pytest.importorskip("himalaya")
    from berg_core.features.backbones import load_backbone, sentence_features

    sents = make_sentences(90, seed=5)
    F1 = sentence_features(load_backbone(str(gpt2), layer=1), sents)
    F3 = sentence_features(load_backbone(str(gpt2), layer=3), sents)
    rng = np.random.default_rng(3)
    Y = (F3 - F3.mean(0)) / F3.std(0) @ rng.standard_normal((F3.shape[1], 4)) * 0.3 + rng.standard_normal((90, 4))
    np.save(tmp_path / "l1.npy", F1)
    np.save(tmp_path / "l3.npy", F3)
    np.save(tmp_path / "Y.npy", Y)
    res = train(TrainConfig(features=[str(tmp_path / "l1.npy"), str(tmp_path / "l3.npy")], responses=str(tmp_path / "Y.npy"),
                            out=str(tmp_path / "enc"), test="70:90", folds=3, alphas=list(np.logspace(-1, 4, 6)), n_iter=6,
                            permutations=0, backbone=[str(gpt2)], layer=[1, 3], model_id="lab-tiny_banded"))
    card = read_card(tmp_path / "enc")
    assert [s["layer"] for s in card["feature_spaces"]] == [1, 3] and res.coef.shape == (64, 4)
    with BERG().get_encoding_model(str(tmp_path / "enc"), device="cpu") as model:
        np.testing.assert_allclose(model.encode(sents[70:]), res.preds, atol=1e-5)
