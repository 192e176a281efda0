"""Fixtures for the Tuckute plugin: a tiny random GPT-2, BERG-format files, an independent reference.

Nothing downloads: the backbone is a random ``GPT2Model`` with a BPE tokenizer trained on the spot
(``berg_core.testing.hf.tiny_gpt2``), the BERG files are written by ``berg_tuckute.testing``, and
``BERG_BASE_URL`` points at a dead loopback port unless a test starts a mirror.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tuckute_helpers import N_EMBD, N_LAYER

from berg_core.testing import isolated_berg, unused_url
from berg_tuckute.plugin import ROIS
from berg_tuckute.testing import write_berg_files


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    """Own cache and berg_dir per test, hub offline, no reachable mirror, fresh registry, six-word warning not yet given."""
    monkeypatch.setattr("berg_tuckute.encoder._LENGTH_WARNED", set())
    with isolated_berg(monkeypatch, tmp_path, BERG_BASE_URL=unused_url()):
        yield


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory) -> Path:
    """A random 4-block, 32-d GPT-2 with its tokenizer, saved like a hub checkpoint."""
    from berg_core.testing.hf import tiny_gpt2

    return tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"), n_layer=N_LAYER, n_embd=N_EMBD, n_head=4, seed=1)


@pytest.fixture
def berg_dir(tmp_path) -> Path:
    return tmp_path / "berg"


@pytest.fixture
def berg_files(berg_dir):
    """BERG's two files, fitted for the tiny GPT-2's width, in berg_dir."""
    return write_berg_files(berg_dir, n_features=N_EMBD, scale=5.0)


@pytest.fixture(scope="session")
def reference():
    """``reference(model_dir, sentences, layer, clf, neuroid_order, rois)``: BERG's computation, independently.

    The full ``GPT2Model`` (all blocks, nothing truncated) with ``output_hidden_states=True``, one sentence at
    a time tokenized as BERG does, ``hidden_states[layer][0, -1] @ coef.T + intercept`` in float64 with the
    sklearn estimator's own ``coef_``/``intercept_``; columns reordered to ``rois`` by name.
    """
    cache: dict[str, tuple] = {}

    def compute(model_dir, sentences, layer, clf, neuroid_order, rois=ROIS) -> np.ndarray:
        import torch
        from transformers import AutoTokenizer, GPT2Model

        key = str(model_dir)
        if key not in cache:
            cache[key] = (AutoTokenizer.from_pretrained(key), GPT2Model.from_pretrained(key).eval())
        tokenizer, model = cache[key]
        rows = []
        for sentence in sentences:
            enc = tokenizer(sentence, return_tensors="pt")
            with torch.no_grad():
                hidden = model(enc.input_ids, output_hidden_states=True).hidden_states
            rows.append(hidden[layer][0, -1].double().numpy())
        features = np.stack(rows)
        order = [list(neuroid_order).index(r) for r in rois]
        return features @ np.asarray(clf.coef_)[order].T + np.asarray(clf.intercept_)[order]

    return compute
