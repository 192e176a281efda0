"""fmri-cneuromod_algo2025-text2fmri end to end on a tiny Qwen2 and a random head: BERG's pipeline, selection,
subjects, hub-cache variants offline, licence notice, `berg info`, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points

import numpy as np
import pytest
from text2fmri_helpers import TRS, raw_labels, reference_encode

from berg_core import BERG, InvalidParameterError, ResourceError, StimulusError
from berg_core.cli import main
from berg_core.registry import get_registry
from berg_text2fmri import weights
from berg_text2fmri.plugin import DEFAULT_VARIANT, METADATA_PATH, MODEL_ID, VARIANTS
from berg_text2fmri.testing import head_config, roi_masks, write_head, write_metadata

pytest.importorskip("x_transformers", reason="the reference head needs x-transformers==2.3.0 (plugins/berg_text2fmri[test])")


def load(berg_dir, head_dir, subject="1", **kwargs):
    return BERG(berg_dir).get_encoding_model(MODEL_ID, subject=subject, model_variant=str(head_dir), device="cpu", **kwargs)


def test_entry_point_and_spec():
    eps = [ep for ep in entry_points(group="berg") if ep.name == "text2fmri"]
    assert len(eps) == 1 and eps[0].value == "berg_text2fmri.plugin" and eps[0].dist.name == "berg-text2fmri"
    spec = get_registry().get(MODEL_ID)
    assert spec.family == "text2fmri" and spec.stimulus == "tr_texts" and spec.subjects == ("1", "2", "3", "5")
    assert [f.for_subject(None) for f in spec.remote_files] == [
        "encoding_models/modality-fmri/train_dataset-cneuromod_algo2025/model-text2fmri/metadata/metadata.npy"]
    assert spec.options["model_variant"] == DEFAULT_VARIANT and set(VARIANTS) >= {DEFAULT_VARIANT}


def test_plugin_import_is_light():
    code = ("import sys, berg_text2fmri.plugin\n"
            "print(sorted(m for m in ('numpy', 'torch', 'transformers', 'huggingface_hub', 'x_transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_encode_equals_bergs_pipeline(berg_dir, head_dir, tiny_qwen2_dir):
    with load(berg_dir, head_dir, subject=2) as model:  # an int subject is accepted (CNeuroMod sub-02 = row 1)
        out = model.encode(TRS)
        names = model.output_names
    want = reference_encode(tiny_qwen2_dir, head_dir, TRS, subject_row=1)
    assert out.dtype == np.float32 and out.shape == (len(TRS), 1000)
    np.testing.assert_allclose(out, want, rtol=0, atol=1e-5)
    assert names[0] == "7Networks_LH_Vis_1" and names[-1] == "7Networks_RH_Cont_PCC_2"
    assert np.abs(want - reference_encode(tiny_qwen2_dir, head_dir, TRS, subject_row=0)).max() > 1e-2  # subjects differ


def test_one_tr_and_one_parcel_are_not_squeezed(berg_dir, head_dir):
    sel = np.zeros(1000, dtype=int)
    sel[7] = 1
    with load(berg_dir, head_dir, subject="5", selection={"voxel_index": sel}) as model:
        assert model.encode(["hello"]).shape == (1, 1)


def test_selection_is_networks_union_parcels(berg_dir, head_dir, tiny_qwen2_dir):
    sel = np.zeros(1000, dtype=int)
    sel[[3, 700, 999]] = 1
    labels = raw_labels()  # read from the shipped file's lines here, not through the plugin
    with load(berg_dir, head_dir, subject=3, selection={"roi": ["Limbic", "Vis"], "voxel_index": sel}) as model:
        out = model.encode(TRS[:5])
        names = model.output_names
    in_nets = [i for i, name in enumerate(labels) if name.split("_")[2] in ("Limbic", "Vis")]
    want_cols = np.array(sorted(set(in_nets) | {3, 700, 999}))
    assert names == [labels[i] for i in want_cols]
    full = reference_encode(tiny_qwen2_dir, head_dir, TRS[:5], subject_row=2)
    np.testing.assert_allclose(out, full[:, want_cols], rtol=0, atol=1e-5)


def test_capitalised_metadata_keys_are_read(tmp_path):
    path = write_metadata(tmp_path, capitalised=True, key="ROI_masks")
    got = weights.read_roi_masks(path)
    assert list(got) == ["Vis", "SomMot", "DorsAttn", "SalVentAttn", "Limbic", "Cont", "Default"]
    np.testing.assert_array_equal(got["Default"], roi_masks()["Default"])


def test_low_mem_use_gives_the_same_numbers(berg_dir, head_dir):
    with load(berg_dir, head_dir) as model, load(berg_dir, head_dir, low_mem_use=True) as lean:
        assert lean.backbone is None
        np.testing.assert_allclose(lean.encode(TRS), model.encode(TRS), rtol=0, atol=1e-6)
        assert lean.backbone is None


def test_the_default_variant_from_the_hub_cache_offline(berg_dir, tiny_qwen2_dir, tmp_path, monkeypatch, capsys):
    """The default variant read from a hub-cache entry (HF_HUB_OFFLINE=1), built from ITS config (backbone, sizes)."""
    from berg_core.testing.hf import fake_hub_cache

    hub = tmp_path / "hf-hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    src = write_head(tmp_path / "src", head_config(str(tiny_qwen2_dir), dim=32, heads=2, depth=1), seed=7, licence=None)
    fake_hub_cache(hub, DEFAULT_VARIANT, src)
    weights._shown_licences.clear()
    model = BERG(berg_dir).get_encoding_model(MODEL_ID, subject="1", device="cpu")
    first = capsys.readouterr().err
    BERG(berg_dir).get_encoding_model(MODEL_ID, subject="2", device="cpu").close()
    assert "declares no licence" in first and capsys.readouterr().err == ""  # printed once
    with model:
        out = model.encode(TRS[:4])
    np.testing.assert_allclose(out, reference_encode(tiny_qwen2_dir, src, TRS[:4], 0), rtol=0, atol=1e-5)


def test_missing_head_offline_names_berg_fetch(berg_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    with pytest.raises(ResourceError, match=f"not in the Hugging Face cache; run `berg fetch {MODEL_ID}`") as info:
        BERG(berg_dir).get_encoding_model(MODEL_ID, subject="1", device="cpu")
    assert "\n" not in str(info.value)


def test_missing_metadata_offline_names_berg_fetch(tmp_path, head_dir, monkeypatch):
    monkeypatch.setenv("BERG_OFFLINE", "1")
    with pytest.raises(ResourceError, match=f"berg fetch {MODEL_ID}") as info:
        load(tmp_path / "empty-berg", head_dir)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("stimulus", "message"), [
    ("So the quokka", "not one str; split the transcript by TR"),
    ([], "the stimulus is empty"),
    (["a", 3], "TR 1 is a int"),
])
def test_bad_stimuli_are_one_line_errors(berg_dir, head_dir, stimulus, message):
    with load(berg_dir, head_dir) as model, pytest.raises(StimulusError, match=message) as info:
        model.encode(stimulus)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"subject": "4"}, "unknown subject '4'"),
    ({"subject": 0}, "unknown subject '0'"),
    ({"selection": {"roi": ["Visual"]}}, "unknown ROI 'Visual'"),
    ({"selection": {"voxel_index": [1, 0]}}, "length 2"),
    ({"model_variant": "ShreyDixit/text2fmri"}, "unknown model_variant 'ShreyDixit/text2fmri'"),
    ({"dtype": "float64"}, "dtype"),
])
def test_bad_parameters_are_one_line_errors(berg_dir, head_dir, kwargs, message):
    kwargs = {"subject": "1", "model_variant": str(head_dir), "device": "cpu", **kwargs}
    with pytest.raises(InvalidParameterError, match=message) as info:
        BERG(berg_dir).get_encoding_model(MODEL_ID, **kwargs)
    assert "\n" not in str(info.value)


def test_berg_info_shows_the_licence_and_the_stimulus(capsys):
    assert main(["info", MODEL_ID, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["stimulus"] == "tr_texts" and "no licence found" in data["info"]["licence"]
    assert "UNVERIFIED" in data["info"]["revisions"]
    assert main(["info", MODEL_ID]) == 0
    text = capsys.readouterr().out
    assert "one response row per TR" in text and "licence" in text


def test_metadata_reads_the_masks_without_loading_models(berg_dir, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the metadata loaded a model")

    monkeypatch.setattr("berg_core.features.backbones.load_backbone", refuse)
    meta = BERG(berg_dir).get_model_metadata(MODEL_ID, subject="1")
    assert sorted(meta["roi_masks"]) == sorted(roi_masks()) and meta["roi_masks"]["Vis"].sum() == 162
    assert (berg_dir / METADATA_PATH).is_file()


def test_berg_info_reads_the_licence_of_a_cached_hub_card(tmp_path, monkeypatch, capsys, tiny_qwen2_dir):
    from berg_core.testing.hf import fake_hub_cache

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    src = write_head(tmp_path / "src", head_config(str(tiny_qwen2_dir)), licence="cc-by-nc-4.0")
    fake_hub_cache(tmp_path / "hub", DEFAULT_VARIANT, src)
    assert main(["info", MODEL_ID, "--json"]) == 0
    licence = json.loads(capsys.readouterr().out)["info"]["licence"]
    assert "cc-by-nc-4.0 (NON-COMMERCIAL) (from its hub card)" in licence
    assert weights.licence_notice(src, DEFAULT_VARIANT) == (f"note: the Text2fMRI head {DEFAULT_VARIANT} is under cc-by-nc-4.0 "
                                                           "(non-commercial): research use only")
    assert weights.licence_notice(write_head(tmp_path / "mit", head_config("x"), licence="mit"), "x") is None


def test_berg_fetch_gets_metadata_and_head_then_encodes_offline(tmp_path, tiny_qwen2_dir, monkeypatch):
    """`berg fetch` (a fresh process: huggingface_hub reads HF_ENDPOINT at import) against a loopback bucket and a
    loopback hub; then everything loads with HF_HUB_OFFLINE=1 and BERG_OFFLINE=1."""
    import os

    from berg_core.testing import serve_directory
    from berg_core.testing.hf import serve_hub

    bucket, berg_dir, hub = tmp_path / "bucket", tmp_path / "berg-fetched", tmp_path / "hub"
    write_metadata(bucket)
    src = write_head(tmp_path / "src", head_config(str(tiny_qwen2_dir)), seed=3)
    env = {k: v for k, v in os.environ.items() if k not in {"HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"}}
    with serve_directory(bucket) as url, serve_hub(DEFAULT_VARIANT, src) as (hub_url, log):
        env.update(BERG_BASE_URL=str(url), HF_ENDPOINT=hub_url, HF_HUB_CACHE=str(hub), HF_HOME=str(tmp_path / "hf"))
        run = subprocess.run([sys.executable, "-m", "berg_core.cli", "--berg-dir", str(berg_dir), "fetch", MODEL_ID, "--quiet"],
                             capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=300)
        assert run.returncode == 0, run.stderr
        assert url.gets(METADATA_PATH) == 1
    got = {path.rsplit("/", 1)[-1] for method, path in log if method == "GET" and "/resolve/" in path}
    assert got == {"config.json", "model.pt", "README.md"}
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("BERG_OFFLINE", "1")
    with BERG(berg_dir).get_encoding_model(MODEL_ID, subject="3", device="cpu") as model:
        out = model.encode(TRS[:3])
    np.testing.assert_allclose(out, reference_encode(tiny_qwen2_dir, src, TRS[:3], 2), rtol=0, atol=1e-5)


def test_the_lm_dtype_float16_config_runs_float32_on_cpu_unless_asked(berg_dir, tmp_path, tiny_qwen2_dir):
    fp16 = write_head(tmp_path / "fp16", head_config(str(tiny_qwen2_dir), dtype="float16"))
    with load(berg_dir, fp16) as model:
        assert model.dtype == "float32" and str(next(model.backbone.model.parameters()).dtype) == "torch.float32"
        full = model.encode(TRS[:4])
    with load(berg_dir, fp16, dtype="float16") as model:
        assert str(next(model.backbone.model.parameters()).dtype) == "torch.float16"
        half = model.encode(TRS[:4])
    assert half.dtype == np.float32 and np.abs(half - full).max() < 0.05 * np.abs(full).max()


def test_missing_backbone_offline_names_berg_fetch(berg_dir, tmp_path, monkeypatch):
    """The head is cached but its config's language model (a hub id) is not: one line naming `berg fetch`."""
    from berg_core import ModelLoadError
    from berg_core.testing.hf import fake_hub_cache

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    fake_hub_cache(tmp_path / "hub", DEFAULT_VARIANT, write_head(tmp_path / "src", head_config("Qwen/Qwen2.5-0.5B")))
    with pytest.raises(ModelLoadError, match=r"'Qwen/Qwen2.5-0.5B@main' is not in the Hugging Face cache.*run `berg fetch`") as info:
        BERG(berg_dir).get_encoding_model(MODEL_ID, subject="1", device="cpu")
    assert "\n" not in str(info.value)


def test_berg_encode_a_json_list_of_tr_texts_to_csv(berg_dir, head_dir, tiny_qwen2_dir, tmp_path):
    import csv

    src, out = tmp_path / "run.json", tmp_path / "pred.csv"
    src.write_text(json.dumps(TRS[:6]))  # empty strings = silent TRs
    assert main(["--berg-dir", str(berg_dir), "encode", MODEL_ID, "--subject", "5", "-O", f"model_variant={head_dir}",
                 "--input", str(src), "-o", str(out), "--quiet"]) == 0
    rows = list(csv.reader(out.open()))
    first = rows[0].index("7Networks_LH_Vis_1")
    assert rows[0][first:] == raw_labels()
    got = np.array([[float(v) for v in r[first:]] for r in rows[1:]])
    assert got.shape == (6, 1000)
    np.testing.assert_allclose(got, reference_encode(tiny_qwen2_dir, head_dir, TRS[:6], 3), rtol=1e-5, atol=1e-5)


def test_long_runs_warn_that_every_row_sees_the_whole_call(berg_dir, head_dir, monkeypatch):
    from berg_text2fmri import encoder

    monkeypatch.setattr(encoder, "LONG_RUN_TRS", 4)
    with load(berg_dir, head_dir) as model:
        with pytest.warns(UserWarning, match="5 TRs in one call: the head is bidirectional"):
            long = model.encode(TRS[:5])
        short = model.encode(TRS[:4])
    assert np.abs(long[:4] - short).max() > 1e-4  # appending a TR changes earlier rows (BERG's behaviour, documented)
