"""Fixtures for the Text2fMRI plugin: a tiny random Qwen2, BERG-format metadata, a hub-like head folder; no network."""

from __future__ import annotations

from pathlib import Path

import pytest

from berg_core.testing import isolated_berg, unused_url
from berg_text2fmri.testing import head_config, write_head, write_metadata


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    """Own cache and berg_dir per test, hub offline, no reachable mirror, fresh registry."""
    with isolated_berg(monkeypatch, tmp_path, BERG_BASE_URL=unused_url()):
        yield


@pytest.fixture(scope="session")
def tiny_qwen2_dir(tmp_path_factory) -> Path:
    """A random 4-layer, 32-d Qwen2 (4 heads, 2 kv heads) with a Qwen-like byte-level BPE tokenizer."""
    from berg_core.testing.hf import tiny_qwen2

    return tiny_qwen2(tmp_path_factory.mktemp("tiny-qwen2"), seed=5)


@pytest.fixture
def berg_dir(tmp_path) -> Path:
    d = tmp_path / "berg"
    write_metadata(d)
    return d


@pytest.fixture
def head_dir(tmp_path, tiny_qwen2_dir) -> Path:
    """A local variant folder: config.json (extractor = the tiny Qwen2, float32), model.pt, README.md (MIT)."""
    return write_head(tmp_path / "head", head_config(str(tiny_qwen2_dir)), seed=1)
