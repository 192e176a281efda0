"""Registration, a light plugin.py, `berg info`/`list`, `berg fetch` from a loopback mirror and `berg encode` to files."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from importlib.metadata import entry_points

import h5py
import numpy as np
from ecog_helpers import LAYER, N_EMBD, WORDS, reference_features, reference_readout

from berg_core.cli import main
from berg_core.registry import get_registry
from berg_core.testing import serve_directory
from berg_ecog.plugin import ELECTRODES, METADATA_PATH, MODEL_ID, SUBJECTS, WEIGHTS_PATH
from berg_ecog.testing import write_berg_files


def test_entry_point_and_spec():
    eps = [ep for ep in entry_points(group="berg") if ep.name == "ecog"]
    assert len(eps) == 1 and eps[0].value == "berg_ecog.plugin" and eps[0].dist.name == "berg-ecog"
    spec = get_registry().get(MODEL_ID)
    assert spec.family == "ecog" and spec.modality == "ecog" and spec.stimulus == "words"
    assert spec.subjects == SUBJECTS == tuple(f"0{i}" for i in range(1, 10))
    assert sum(ELECTRODES.values()) == 1268 and list(spec.selection) == ["electrode_index", "lags"]
    assert [f.for_subject("03") for f in spec.remote_files] == [
        "encoding_models/modality-ecog/train_dataset-zada2025/model-gpt2_xl/encoding_models_weights/weights_sub-03.npy",
        "encoding_models/modality-ecog/train_dataset-zada2025/model-gpt2_xl/metadata/metadata_sub-03.npy"]
    assert spec.options == {"backbone": "gpt2-xl", "layer": 24, "context_tokens": 32, "batch_size": 64, "dtype": None,
                            "revision": None}


def test_plugin_import_is_light():
    code = ("import sys, berg_ecog.plugin\n"
            "print(sorted(m for m in ('numpy', 'torch', 'transformers', 'h5py', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_berg_info_and_list(capsys):
    assert main(["info", MODEL_ID, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["stimulus"] == "words" and data["options"]["context_tokens"] == 32
    assert main(["info", MODEL_ID]) == 0
    assert "one response row per word" in capsys.readouterr().out
    assert main(["list", "ecog"]) == 0
    assert MODEL_ID in capsys.readouterr().out


def test_fetch_from_a_mirror_then_encode_to_h5_and_csv(tmp_path, berg_dir, tiny_gpt2_dir, monkeypatch, capsys):
    bucket = tmp_path / "bucket"
    files = write_berg_files(bucket, "02", n_features=N_EMBD, n_electrodes=4, feature_scale=0.02)
    with serve_directory(bucket) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        assert main(["--berg-dir", str(berg_dir), "fetch", MODEL_ID, "--subject", "02", "--quiet", "--no-backbone"]) == 0
        assert url.gets(WEIGHTS_PATH.format(subject="02")) == 1 and url.gets(METADATA_PATH.format(subject="02")) == 1
    capsys.readouterr()
    monkeypatch.setenv("BERG_OFFLINE", "1")  # everything is local now
    out_h5, out_csv = tmp_path / "r.h5", tmp_path / "r.csv"
    common = ["--berg-dir", str(berg_dir), "encode", MODEL_ID, "--subject", "02", "-O", f"backbone={tiny_gpt2_dir}",
              "-O", f"layer={LAYER}", "--quiet"]
    assert main([*common, "--input", str(_words_file(tmp_path)), "-o", str(out_h5)]) == 0
    want = reference_readout(reference_features(tiny_gpt2_dir, WORDS, LAYER), files.weights)
    with h5py.File(out_h5) as f:
        np.testing.assert_allclose(f["responses"][()], want, rtol=1e-5, atol=1e-5)
        assert [d.decode() if isinstance(d, bytes) else d for d in f.attrs["dims"]] == ["row", "electrode", "lag"]
        assert [s.decode() for s in f["axis_electrode"][()]] == ["G1", "G2", "G3", "G4"]
        assert f["axis_lag"][64].decode() == "+0.00000s"
    assert main([*common, *WORDS[:3], "-o", str(out_csv)]) == 0
    rows = list(csv.reader(out_csv.open()))
    header = rows[0]
    first = header.index("G1@-2.00000s")  # after a row-label column, if the writer adds one
    assert header[first:] == [f"G{e}@{t:+.5f}s" for e in range(1, 5) for t in -2 + np.arange(129) / 32]  # electrode-major
    assert len(rows) == 4 and all(len(r) == len(header) for r in rows)


def _words_file(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("\n".join(WORDS) + "\n")
    return path
