"""`berg fetch` from a loopback mirror, auto-fetch on first use, and `berg encode ... --output x.csv`."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from tuckute_helpers import SIX

from berg_core import BERG
from berg_core.cli import main
from berg_core.testing import serve_directory
from berg_core.testing.hf import fake_hub_cache
from berg_tuckute.plugin import METADATA_PATH, MODEL_ID, ROIS, WEIGHTS_PATH
from berg_tuckute.testing import write_berg_files


def cached(kind: str) -> list[Path]:
    return sorted((Path(os.environ["BERG_CACHE_DIR"]) / "tuckute").glob(f"{kind}-*.npz"))


def test_berg_fetch_gets_both_files_then_encode(tmp_path, berg_dir, tiny_gpt2_dir, reference, monkeypatch, capsys):
    bucket = tmp_path / "bucket"
    files = write_berg_files(bucket, n_features=32, scale=5.0)
    with serve_directory(bucket) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        assert main(["--berg-dir", str(berg_dir), "fetch", MODEL_ID, "--quiet", "-O", f"backbone={tiny_gpt2_dir}"]) == 0
        assert url.gets(WEIGHTS_PATH) == 1 and url.gets(METADATA_PATH) == 1
        printed = capsys.readouterr().out.split()
        assert printed == [str(berg_dir / WEIGHTS_PATH), str(berg_dir / METADATA_PATH), str(tiny_gpt2_dir)]  # a local backbone: checked
        assert (berg_dir / WEIGHTS_PATH).read_bytes() == files.weights.read_bytes()
        assert (berg_dir / METADATA_PATH).read_bytes() == files.metadata_file.read_bytes()
        assert len(cached("readout")) == 1 and len(cached("metadata")) == 1  # `prepare` converted both
        with BERG(berg_dir).get_encoding_model(MODEL_ID, backbone=str(tiny_gpt2_dir), layer=2, device="cpu") as model:
            got = model.encode(SIX)
            assert model.metadata["optimal_layer"] == 22
        assert main(["--berg-dir", str(berg_dir), "fetch", MODEL_ID, "--quiet", "--no-backbone"]) == 0  # already there: no download
        assert url.gets() == 2
    np.testing.assert_allclose(got, reference(tiny_gpt2_dir, SIX, 2, files.clf, files.neuroid_order), atol=1e-5, rtol=0)


def test_first_use_fetches_automatically(tmp_path, berg_dir, tiny_gpt2_dir, monkeypatch):
    bucket = tmp_path / "bucket"
    write_berg_files(bucket, n_features=32)
    with serve_directory(bucket) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        meta = BERG(berg_dir).get_model_metadata(MODEL_ID)
        assert url.gets(METADATA_PATH) == 1 and url.gets(WEIGHTS_PATH) == 0  # metadata alone needs no weights
        with BERG(berg_dir).get_encoding_model(MODEL_ID, backbone=str(tiny_gpt2_dir), layer=2, device="cpu") as model:
            assert model.encode(SIX).shape == (3, 6)
        assert url.gets(WEIGHTS_PATH) == 1
    assert list(meta["rois"]) == list(ROIS)


def test_cli_encode_default_backbone_to_csv(tmp_path, berg_dir, reference):
    """`berg encode fmri-tuckute_2024-GPT2_XL "..." --output x.csv` with every default option.

    "gpt2-xl" resolves (offline) to a tiny random GPT-2 of 24 blocks placed in a private HF cache, so the
    default layer 22 and the default backbone name are what runs.
    """
    from berg_core.testing.hf import tiny_gpt2

    deep = tiny_gpt2(tmp_path / "deep-gpt2", n_layer=24, n_embd=16, n_head=2, seed=5)
    hf_home = tmp_path / "hf"
    fake_hub_cache(hf_home / "hub", "gpt2-xl", deep)
    files = write_berg_files(berg_dir, n_features=16, scale=5.0)
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_CACHE": str(hf_home / "hub"), "BERG_DIR": str(berg_dir)}
    sentences = ["Taste that fowl and those fish.", "I'm progressive and you fall right."]
    out = tmp_path / "x.csv"
    for args, rois in ((["--output", str(out)], list(ROIS)),
                       (["--roi", "lang_LH_netw", "--roi", "lang_LH_IFG", "--output", str(out)], ["lang_LH_netw", "lang_LH_IFG"])):
        run = subprocess.run([sys.executable, "-m", "berg_core.cli", "encode", MODEL_ID, *sentences, "--device", "cpu", *args],
                             capture_output=True, text=True, env=env, timeout=300)
        assert run.returncode == 0, run.stderr
        with open(out, newline="") as fh:
            rows = list(csv.reader(fh))
        assert rows[0] == ["stimulus", *rois] and [r[0] for r in rows[1:]] == sentences  # the sentence column (issue 11)
        got = np.array([r[1:] for r in rows[1:]], dtype=np.float64)
        np.testing.assert_allclose(got, reference(deep, sentences, 22, files.clf, files.neuroid_order, rois), atol=1e-5, rtol=0)


def test_cli_error_is_one_line(berg_files, berg_dir, tiny_gpt2_dir, capsys):
    code = main(["--berg-dir", str(berg_dir), "encode", MODEL_ID, "a b", "--roi", "lang_LH_Nope"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert err[0].startswith("berg: error: unknown ROI 'lang_LH_Nope'") and "lang_LH_netw" in err[0]


def test_fetch_puts_default_backbone_check_offline(tmp_path, berg_dir):
    """`berg fetch MODEL` also handles the default backbone "gpt2-xl": offline and not cached it is one line (before
    any BERG file is downloaded); offline and cached (a past fetch) the cached snapshot is checked and printed."""
    from berg_core.testing.hf import tiny_gpt2

    write_berg_files(berg_dir, n_features=16)
    hf_home = tmp_path / "hf"
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_CACHE": str(hf_home / "hub"), "HF_HUB_OFFLINE": "1", "BERG_DIR": str(berg_dir),
           "BERG_BASE_URL": "http://127.0.0.1:9"}
    cmd = [sys.executable, "-m", "berg_core.cli", "fetch", MODEL_ID, "--quiet"]
    empty = {**env, "BERG_DIR": str(tmp_path / "empty")}  # BERG's files unreachable too: the backbone is checked first
    run = subprocess.run(cmd, capture_output=True, text=True, env=empty, stdin=subprocess.DEVNULL, timeout=300)
    assert run.returncode == 1 and run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("berg: error: backbone 'gpt2-xl' is not in the Hugging Face cache"), run.stderr
    assert "HF_HUB_OFFLINE" in lines[0] and "berg fetch" in lines[0]
    fake_hub_cache(hf_home / "hub", "gpt2-xl", tiny_gpt2(tmp_path / "deep", n_layer=24, n_embd=16, n_head=2))
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=300)
    assert run.returncode == 0, run.stderr
    snapshot = hf_home / "hub" / "models--gpt2-xl" / "snapshots" / ("0" * 40)
    assert run.stdout.split() == [str(berg_dir / WEIGHTS_PATH), str(berg_dir / METADATA_PATH), str(snapshot)]
    (snapshot / "model.safetensors").unlink()  # a cache entry without weights is not "fetched"
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=300)
    assert run.returncode == 1 and "gpt2-xl" in run.stderr and "PyTorch weights" in run.stderr and len(run.stderr.strip().splitlines()) == 1
