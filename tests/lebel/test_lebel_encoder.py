"""LebelEncoder end to end on a tiny random OPT and BERG-format fixture files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from lebel_helpers import LAYER, N_VOXELS, make_story
from lebel_reference import incremental_word_features, predict

import berg_core.features.backbones
from berg_core import BERG
from berg_core.errors import BergError, InvalidParameterError, ModelLoadError, StimulusError
from berg_core.features import cache as features
from berg_core.testing.hf import tiny_opt
from berg_lebel.encoder import LebelEncoder

MODEL = "fmri-lebel2023-opt_1_3b"
pytestmark = pytest.mark.usefixtures("berg_tree")


def load(opt_dir, subject="UTS01", selection=None, **options):
    options = {"backbone": str(opt_dir), "layer": LAYER, "progress": False, **options}
    return BERG().get_encoding_model(MODEL, subject=subject, selection=selection, device="cpu", **options)


def test_registered_with_schema_and_remote_files():
    berg = BERG()
    assert MODEL in berg.list_models()
    from berg_core.facade import resolve_spec

    spec = resolve_spec(MODEL)
    assert spec.subjects == tuple(f"UTS0{i}" for i in range(1, 9))
    assert set(spec.selection) == {"roi", "voxel_index"} and spec.stimulus == "timed_words"
    paths = [f.path for f in spec.files_for("UTS03")]
    assert any(p.endswith("encoding_models_weights/weights_UTS03.npy") for p in paths)
    assert any(p.endswith("metadata/metadata_UTS03.npy") for p in paths)
    assert spec.options["backbone"] == "facebook/opt-1.3b" and spec.options["layer"] == 18
    assert spec.plugin.startswith("berg-lebel ")


def test_pipeline_equals_independent_step_by_step_reference(opt_dir, berg_tree):
    story = make_story(150, seed=7)
    w, meta = berg_tree["UTS01"]
    index = np.zeros(N_VOXELS["UTS01"], dtype=int)
    index[[2, 40, 59]] = 1
    model = load(opt_dir, selection={"roi": ["V1", "AC"], "voxel_index": index})
    expected_cols = np.flatnonzero(meta["roi"]["V1"] | meta["roi"]["AC"] | (index == 1))
    np.testing.assert_array_equal(model.columns, expected_cols)
    out = BERG().encode(model, story)
    ref_feats = incremental_word_features(opt_dir, story["words"], LAYER)
    ref = predict(ref_feats, story["word_onsets"], w, expected_cols)
    assert out.dtype == np.float32 and out.shape == ref.shape
    assert ref.std() > 0.3  # a meaningful scale for the tolerance below
    np.testing.assert_allclose(out, ref, atol=1e-5, rtol=0)
    assert model.output_names == [f"voxel_{i}" for i in expected_cols]


def test_all_voxels_by_default_and_metadata(opt_dir, berg_tree):
    story = make_story(40, seed=2)
    with load(opt_dir, subject="UTS02") as model:
        responses, meta = BERG().encode(model, story, return_metadata=True)
        assert responses.shape[1] == N_VOXELS["UTS02"] and model.columns is None
        assert meta["fmri"]["subject_id"] == "UTS02" and set(meta["roi"]) == {"AC", "Broca", "V1"}
        x = model.features(story)
        assert x.shape == (responses.shape[0], 4 * 32)
        np.testing.assert_allclose(responses, x @ berg_tree["UTS02"][0].astype(np.float32), atol=1e-5)
    with pytest.raises(Exception, match="closed"):
        model.encode(story)


def test_feature_cache_runs_the_backbone_once_for_several_subjects(opt_dir, monkeypatch):
    loads = []
    real = berg_core.features.backbones.load_backbone

    def counting(*args, **kwargs):
        loads.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(berg_core.features.backbones, "load_backbone", counting)
    story = make_story(700, seed=3)
    out1 = load(opt_dir, "UTS01").encode(story)
    out2 = load(opt_dir, "UTS02").encode(story)
    assert len(loads) == 1 and features.stats["computed"] == 1 and features.stats["memory"] == 1
    features.clear_memory()  # a new process: the disk entry is used, the backbone is never loaded
    again = load(opt_dir, "UTS02").encode(story)
    assert len(loads) == 1 and features.stats == {"memory": 0, "disk": 1, "computed": 0}
    np.testing.assert_array_equal(again, out2)
    fresh = load(opt_dir, "UTS01", feature_cache=False).encode(story)
    assert len(loads) == 2
    np.testing.assert_allclose(fresh, out1, atol=1e-6)
    load(opt_dir, "UTS01", layer=2).encode(story)  # another layer is another cache entry
    assert len(loads) == 3 and features.stats["computed"] == 2


def test_cache_key_depends_on_words_not_onsets(opt_dir):
    story = make_story(50, seed=4)
    model = load(opt_dir)
    model.encode(story)
    shifted = {"words": story["words"], "word_onsets": [t + 1.5 for t in story["word_onsets"]]}
    model.encode(shifted)
    assert features.stats["computed"] == 1  # same words: features reused (they do not depend on timing)
    model.encode({"words": [*story["words"][:-1], "fox"], "word_onsets": story["word_onsets"]})
    assert features.stats["computed"] == 2


@pytest.mark.parametrize("stimulus,match", [
    ({"words": ["a", "b"], "word_onsets": [0.0]}, "2 words but 1 onsets"),
    ({"words": ["a", "b"], "word_onsets": [0.0, float("nan")]}, "NaN or inf"),
    ({"words": ["a", "b"], "word_onsets": [0.0, float("inf")]}, "NaN or inf"),
    ({"words": ["a", "b"], "word_onsets": [1.0, 0.5]}, "decrease"),
    ({"words": [], "word_onsets": []}, "empty"),
    ({"words": ["a", 3], "word_onsets": [0.0, 1.0]}, "not a str"),
    (["a sentence"], "dict"),
    ({"words": ["a"]}, "word_onsets"),
])
def test_bad_stimuli(opt_dir, stimulus, match):
    model = load(opt_dir)
    with pytest.raises(StimulusError, match=match):
        model.encode(stimulus)


@pytest.mark.parametrize("selection,match", [
    ({"roi": ["AC", "FFA"]}, r"unknown ROI 'FFA' for subject UTS01; valid ROIs: AC, Broca, V1"),
    ({"roi": 3}, "ROI name"),
    ({"voxel_index": np.ones(10)}, r"length 10, but UTS01 has 61 voxels"),
    ({"voxel_index": np.full(61, 2)}, "only 0 and 1"),
    ({"voxel_index": np.zeros(61)}, "all zeros"),
    ({"roi": []}, "selects no voxel"),
    ({"voxels": [1]}, "unknown selection key"),
])
def test_bad_selections(opt_dir, selection, match):
    with pytest.raises(InvalidParameterError, match=match):
        load(opt_dir, selection=selection)


def test_bad_subject_options_and_backbones(opt_dir, tmp_path):
    with pytest.raises(InvalidParameterError, match="unknown subject 'UTS09'.*UTS01, UTS02"):
        load(opt_dir, subject="UTS09")
    with pytest.raises(InvalidParameterError, match="needs a subject"):
        load(opt_dir, subject=None)
    with pytest.raises(InvalidParameterError, match="layer must be an int in 0..4"):
        load(opt_dir, layer=9)
    with pytest.raises(InvalidParameterError, match="unknown option"):
        load(opt_dir, pooling="mean")
    with pytest.raises(ModelLoadError, match="not in the Hugging Face cache"):
        load(opt_dir, backbone="berg-no-such/opt")
    other = tiny_opt(tmp_path / "opt16", n_layer=4, hidden=16, n_head=4)
    with pytest.raises(ModelLoadError, match="16-d features.*128 rows"):
        load(other)


def test_missing_weights_offline_says_fetch(opt_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("BERG_OFFLINE", "1")
    monkeypatch.setenv("BERG_DIR", str(tmp_path / "empty"))
    with pytest.raises(Exception, match="berg fetch"):
        load(opt_dir)


def test_short_stimulus_warns(opt_dir):
    model = load(opt_dir)
    with pytest.warns(UserWarning, match="only 5 TRs"):
        out = model.encode({"words": ["The", "quick", "fox"], "word_onsets": [0.0, 0.5, 1.0]})
    assert out.shape == (5, N_VOXELS["UTS01"])


def test_metadata_and_berg_info_without_loading_opt(tmp_path):
    meta = BERG().get_model_metadata(MODEL, subject="UTS01")
    assert meta["fmri"]["n_voxels"] == N_VOXELS["UTS01"]
    with pytest.raises(InvalidParameterError, match="needs a subject"):
        BERG().get_model_metadata(MODEL)
    code = (f"import json, sys\nfrom berg_core.cli import main\nrc = main(['info', {MODEL!r}, '--subject', 'UTS02', '--json'])\n"
            "print(json.dumps(sorted(m for m in ('torch', 'transformers') if m in sys.modules)))")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    first, _, last = out.strip().rpartition("\n")
    assert json.loads(last) == []
    info = json.loads(first)
    assert info["metadata"]["fmri"]["n_voxels"] == N_VOXELS["UTS02"] and "AC" in info["metadata"]["roi"]


def test_encoder_class_is_the_factory():
    from berg_core.facade import resolve_spec

    assert resolve_spec(MODEL).factory == f"{LebelEncoder.__module__}:{LebelEncoder.__name__}"


# ---------------------------------------------------------------------------------------------- issue 9


def test_last_layer_equals_the_full_models_last_hidden_state(opt_dir, berg_tree):
    """layer = number of blocks: the final layer norm belongs to hidden_states[-1] (HF applies it there only)."""
    from transformers import AutoConfig

    n_blocks = AutoConfig.from_pretrained(str(opt_dir)).num_hidden_layers
    story = make_story(60, seed=8)
    model = load(opt_dir, layer=n_blocks)
    out = model.encode(story)
    ref_feats = incremental_word_features(opt_dir, story["words"], -1)  # the full model's hidden_states[-1]
    np.testing.assert_allclose(model.word_features(story["words"]), ref_feats, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(out, predict(ref_feats, story["word_onsets"], berg_tree["UTS01"][0], np.arange(N_VOXELS["UTS01"])),
                               atol=1e-5, rtol=0)
    # the final norm matters here: without it the features are those of the last block's residual stream
    pre_norm = incremental_word_features(opt_dir, story["words"], n_blocks - 1)
    assert np.abs(ref_feats - pre_norm).max() > 0.1


def test_closed_encoder_refuses_every_step_with_one_line(opt_dir, monkeypatch):
    story = make_story(60, seed=1)
    model = load(opt_dir)
    model.encode(story)
    model.close()
    model.close()  # twice is fine
    loads = []
    monkeypatch.setattr(berg_core.features.backbones, "load_backbone", lambda *a, **k: loads.append(a))
    features.clear_memory()
    for step in (lambda: model.encode(story), lambda: model.features(story), lambda: model.word_features(story["words"]),
                 lambda: BERG().encode(model, story)):
        with pytest.raises(BergError, match=f"{MODEL} was closed; load it again"):
            step()
    assert not loads  # a closed encoder never loads its backbone again
    assert model.output_names[:2] == ["voxel_0", "voxel_1"]  # cheap facts still answer


def test_damaged_feature_cache_never_changes_predictions(opt_dir):
    """Single-byte flips of the cached word features: each is harmless or detected (recomputed): the
    predictions always equal the clean run's."""
    story = make_story(60, seed=6)
    model = load(opt_dir)
    clean = model.encode(story)
    path = next((Path(os.environ["BERG_CACHE_DIR"]) / "features").glob("*.np[yz]"))  # .npy before issue 9
    good = path.read_bytes()
    data_start = good.index(np.asarray(model.word_features(story["words"])).tobytes()[:64])
    rng = np.random.default_rng(0)
    positions = sorted({*range(0, data_start, 7), *rng.integers(data_start, len(good) - 200, 25).tolist(),
                        *range(len(good) - 200, len(good), 9)})
    changed_values = 0
    for i in positions:
        damaged = bytearray(good)
        damaged[i] ^= 0x5A
        path.write_bytes(bytes(damaged))
        features.clear_memory()
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            out = model.encode(story)
        np.testing.assert_array_equal(out, clean, err_msg=f"byte {i} of {len(good)}")
        changed_values += data_start <= i < len(good) - 200
    assert changed_values >= 20


def test_onsets_a_hair_apart_give_finite_predictions(opt_dir):
    """Onsets 1e-200 s apart made the Lanczos weight 0/0 = NaN: all predictions were NaN."""
    words = ["The", "quick", "brown", "fox", "jumps", "over", "it"]
    exact = [0.0, 0.0, 1.0, 2.0, 2.0, 3.5, 4.0]
    hair = [0.0, 1e-200, 1.0, 2.0, 2.0 + 1e-13, 3.5, 4.0]
    model = load(opt_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a short story
        a = model.encode({"words": words, "word_onsets": hair})
        b = model.encode({"words": words, "word_onsets": exact})
    assert np.isfinite(a).all()
    np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)


@pytest.mark.parametrize("stimulus,match", [
    ({"words": ["a"] * 3, "word_onsets": [0.0, 300.0, 600000.0]}, "milliseconds"),
    ({"words": ["a", "b\udc80"], "word_onsets": [0.0, 1.0]}, "unpaired surrogate"),
    ({"words": ["a", "b\x00"], "word_onsets": [0.0, 1.0]}, "NUL"),
])
def test_nonsense_stimuli_are_refused_before_the_backbone_runs(opt_dir, monkeypatch, stimulus, match):
    model = load(opt_dir)
    monkeypatch.setattr(berg_core.features.backbones, "load_backbone", lambda *a, **k: pytest.fail("the backbone was loaded"))
    with pytest.raises(StimulusError, match=match):
        model.encode(stimulus)
