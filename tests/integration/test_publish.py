"""End to end: train an encoder on a tiny backbone's features, run it with `berg encode`, publish it
as a plugin package with `berg new-plugin`, pip-install that package, and find it in `berg list`.

The package is installed with ``pip install --target`` into a temporary folder put on PYTHONPATH of
the subprocesses (a real install for this interpreter: entry points are found through the installed
dist-info), so the shared test environment is never modified and nothing needs uninstalling.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("setuptools")

from berg_core.cli import main  # noqa: E402
from berg_core.testing.hf import CORPUS, tiny_gpt2  # noqa: E402

MODEL_ID = "fmri-tinylab-gpt2_l3"


def sentences(n, seed=0):
    words = sorted({w.strip(".,!?") for s in CORPUS for w in s.split() if w.strip(".,!?")})
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(words, size=rng.integers(3, 12))).capitalize() + "." for _ in range(n)]


def berg(*args, env):
    return subprocess.run([sys.executable, "-m", "berg_core.cli", *map(str, args)], capture_output=True, text=True, env=env, timeout=300)


def test_train_encode_publish_install_list(tmp_path, capsys):
    from berg_core.features.backbones import load_backbone, sentence_features

    gpt2 = tiny_gpt2(tmp_path / "gpt2")
    sents = sentences(200)
    F = sentence_features(load_backbone(str(gpt2), layer=3), sents)
    rng = np.random.default_rng(0)
    Fz = (F - F.mean(0)) / F.std(0)
    Y = Fz @ rng.standard_normal((F.shape[1], 10)) * 0.25 + rng.standard_normal((200, 10))
    np.save(tmp_path / "features.npy", F)
    np.save(tmp_path / "responses.npy", Y)
    (tmp_path / "test_sentences.txt").write_text("\n".join(sents[160:]) + "\n")

    enc = tmp_path / "encoder"
    assert main(["train", "--features", str(tmp_path / "features.npy"), "--responses", str(tmp_path / "responses.npy"),
                 "--test", "160:200", "--folds", "5", "--permutations", "200", "--perm-block", "4", "--backbone", str(gpt2),
                 "--layer", "3", "--model-id", MODEL_ID, "--description", "tiny GPT-2 layer 3, synthetic voxels",
                 "--out", str(enc), "--quiet"]) == 0
    preds = np.load(enc / "preds_raw.npy")
    cc = np.load(enc / "cc_raw.npy")
    assert preds.shape == (40, 10) and cc.mean() > 0.3  # the synthetic signal is found
    card = json.loads((enc / "berg_encoder.json").read_text())
    assert card["feature_spaces"][0]["backbone"] == str(gpt2) and card["feature_spaces"][0]["layer"] == 3

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "BERG_DIR": str(tmp_path / "berg"), "BERG_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("BERG_ENCODER_PATH", None)
    # 1. the folder itself runs
    r = berg("encode", enc, "--input", tmp_path / "test_sentences.txt", "--output", tmp_path / "x.npy", "--device", "cpu", env=env)
    assert r.returncode == 0, r.stderr
    np.testing.assert_allclose(np.load(tmp_path / "x.npy"), preds, atol=1e-5)

    # 2. publish it as a plugin package and install that package
    capsys.readouterr()
    assert main(["new-plugin", "tinylab", "--encoder", str(enc), "--out", str(tmp_path / "pkgs")]) == 0
    pkg = tmp_path / "pkgs" / "berg-tinylab"
    assert f"install it with: pip install {pkg}\n" in capsys.readouterr().err  # a folder path, never a registry name
    assert (pkg / "berg_tinylab" / "encoders" / MODEL_ID / "weights.h5").is_file()
    site = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "--target", str(site),
                          str(pkg)], capture_output=True, text=True, env=env, timeout=300)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    installed = site / "berg_tinylab" / "encoders" / MODEL_ID
    assert (installed / "berg_encoder.json").is_file() and (installed / "weights.h5").is_file()
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)

    # 3. berg list shows it, registered by the installed distribution
    r = berg("list", "--json", env=env)
    assert r.returncode == 0, r.stderr
    listed = {m["model_id"]: m for m in json.loads(r.stdout)}
    assert MODEL_ID in listed
    assert listed[MODEL_ID]["plugin"] == "berg-tinylab 0.1.0" and listed[MODEL_ID]["family"] == "tinylab"
    r = berg("info", MODEL_ID, env=env)
    assert r.returncode == 0 and "tiny GPT-2 layer 3" in r.stdout, r.stderr

    # 4. berg encode by id reproduces the training predictions
    r = berg("encode", MODEL_ID, "--input", tmp_path / "test_sentences.txt", "--output", tmp_path / "y.npy", "--device", "cpu", env=env)
    assert r.returncode == 0, r.stderr
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), preds, atol=1e-5)

    # 5. a trained-encoder folder on $BERG_ENCODER_PATH claiming the installed model's id does not shadow it
    env["BERG_ENCODER_PATH"] = str(enc)
    r = berg("list", "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert {m["model_id"]: m for m in json.loads(r.stdout)}[MODEL_ID]["plugin"] == "berg-tinylab 0.1.0"
    r = berg("plugins", env=env)
    assert r.returncode == 0 and f"claims model id '{MODEL_ID}' of installed plugin tinylab" in r.stdout, r.stdout + r.stderr
