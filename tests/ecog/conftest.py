"""Fixtures for the ECoG plugin: a tiny random GPT-2, BERG-format files (``berg_ecog.testing``), no network.

``BERG_BASE_URL`` points at a dead loopback port unless a test starts a mirror.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ecog_helpers import N_EMBD, N_LAYER

from berg_core.testing import isolated_berg, unused_url
from berg_ecog.testing import BergFiles, write_berg_files


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    """Own cache and berg_dir per test, hub offline, no reachable mirror, fresh registry."""
    with isolated_berg(monkeypatch, tmp_path, BERG_BASE_URL=unused_url()):
        yield


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory) -> Path:
    """A random 4-block, 32-d GPT-2 with its tokenizer (no pad token, id 0 = its first special token)."""
    from berg_core.testing.hf import tiny_gpt2

    return tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"), n_layer=N_LAYER, n_embd=N_EMBD, n_head=4, seed=3)


@pytest.fixture
def berg_dir(tmp_path) -> Path:
    return tmp_path / "berg"


@pytest.fixture
def berg_files(berg_dir) -> BergFiles:
    """Subject 01's two files (3 electrodes x 129 lags), fitted for the tiny GPT-2's width, in berg_dir."""
    return write_berg_files(berg_dir, "01", n_features=N_EMBD, n_electrodes=3, feature_scale=0.02)  # standardised features O(1)
