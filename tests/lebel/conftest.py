"""Shared fixtures for the berg-lebel tests: a tiny random OPT, BERG-format fixture files, a story."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from berg_core.testing import isolated_berg

# before huggingface_hub is imported (it reads these once): tests never touch the network
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytest.importorskip("torch")
pytest.importorskip("transformers")

from lebel_helpers import HIDDEN, N_VOXELS  # noqa: E402

from berg_core.testing.hf import tiny_opt  # noqa: E402
from berg_lebel.testing import make_berg_tree  # noqa: E402


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """Own berg_dir / cache per test, offline hub, fresh registry and feature memory cache."""
    with isolated_berg(monkeypatch, tmp_path):
        yield


@pytest.fixture(scope="session")
def opt_dir(tmp_path_factory) -> Path:
    """A random 4-block OPT (hidden 32) with 4096 positions (512 words x several tokens fit a window)."""
    return tiny_opt(tmp_path_factory.mktemp("opt") / "tiny-opt", n_layer=4, hidden=HIDDEN, n_head=4, max_positions=4096)


@pytest.fixture
def berg_tree(tmp_path) -> dict:
    """BERG's weights + metadata files for UTS01/UTS02 under $BERG_DIR: {subject: (W float64, metadata)}."""
    return make_berg_tree(tmp_path / "berg", list(N_VOXELS), hidden=HIDDEN, n_voxels=N_VOXELS, seed=3)
