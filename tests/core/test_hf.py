"""Truncated backbones equal the full model's hidden_states[layer] (independent reference: HF itself)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from berg_core import InvalidParameterError, ModelLoadError  # noqa: E402
from berg_core.hf import load_backbone, sentence_features  # noqa: E402
from berg_core.testing_hf import tiny_gpt2, tiny_opt  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    return {"gpt2": tiny_gpt2(root / "gpt2", n_layer=5), "opt": tiny_opt(root / "opt", n_layer=5)}


def full_hidden(folder, layer, ids):
    model = transformers.AutoModel.from_pretrained(folder).eval()
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[layer][0].numpy()


@pytest.mark.parametrize("arch", ["gpt2", "opt"])
@pytest.mark.parametrize("layer", [0, 2, 5])
def test_truncated_forward_equals_full_hidden_states(models, arch, layer):
    backbone = load_backbone(str(models[arch]), layer=layer)
    ids = backbone.tokenize("The audience erupted into laughter.")
    if arch == "opt":
        ids = [backbone.tokenizer.bos_token_id, *ids]
    out = backbone.forward(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long))[0].numpy()
    ref = full_hidden(models[arch], layer, ids)
    np.testing.assert_allclose(out, ref, atol=1e-5, rtol=0)
    if 0 < layer < 5:  # a cut model must not apply the final LayerNorm to block `layer`'s output
        norm = backbone.model.ln_f if arch == "gpt2" else None
        assert norm is None or isinstance(norm, torch.nn.Identity)


def test_only_needed_blocks_are_built(models):
    backbone = load_backbone(str(models["gpt2"]), layer=2)
    assert len(backbone.model.h) == 2
    assert isinstance(backbone.model.ln_f, torch.nn.Identity)


def test_sentence_features_batched_equal_one_at_a_time(models):
    sentences = ["Hi.", "The quick brown fox jumps over the lazy dog.", "Hi.", "What's the weather like in Boston today?"]
    backbone = load_backbone(str(models["gpt2"]), layer=3)
    feats = sentence_features(backbone, sentences, batch_size=3)
    for i, s in enumerate(sentences):
        ref = full_hidden(models["gpt2"], 3, backbone.tokenize(s))[-1]
        np.testing.assert_allclose(feats[i], ref, atol=1e-5, rtol=0)
    mean = sentence_features(backbone, sentences[:2], pooling="mean")
    ref = full_hidden(models["gpt2"], 3, backbone.tokenize(sentences[1])).mean(axis=0)
    np.testing.assert_allclose(mean[1], ref, atol=1e-5, rtol=0)


def test_bad_layer_and_missing_backbone(models, monkeypatch):
    with pytest.raises(InvalidParameterError, match="layer must be an int in 0..5"):
        load_backbone(str(models["gpt2"]), layer=9)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="'berg-no-such/model'.*not in the Hugging Face cache"):
        load_backbone("berg-no-such/model", layer=1)
