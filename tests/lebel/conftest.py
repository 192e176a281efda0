"""Shared fixtures for the berg-lebel tests: a tiny random OPT, BERG-format fixture files, a story."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

# before huggingface_hub is imported (it reads these once): tests never touch the network
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytest.importorskip("torch")
pytest.importorskip("transformers")

from berg_core import features  # noqa: E402
from berg_core.registry import reset_registry  # noqa: E402
from berg_core.testing_hf import CORPUS, tiny_opt  # noqa: E402
from berg_lebel.testing import make_berg_tree  # noqa: E402

HIDDEN = 32
LAYER = 3
N_VOXELS = {"UTS01": 61, "UTS02": 90}  # UTS02: 128 x 90 float64 > 64 KiB, so its payload lies outside pickle frames


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """Own berg_dir / cache per test, offline hub, fresh registry and feature memory cache."""
    for var in ("BERG_LOAD_PLUGINS", "BERG_DISABLE_PLUGINS", "BERG_STRICT_PLUGINS", "BERG_OFFLINE", "BERG_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BERG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("BERG_DIR", str(tmp_path / "berg"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    reset_registry()
    features.clear_memory()
    yield
    features.clear_memory()
    reset_registry()


@pytest.fixture(scope="session")
def opt_dir(tmp_path_factory) -> Path:
    """A random 4-block OPT (hidden 32) with 4096 positions (512 words x several tokens fit a window)."""
    return tiny_opt(tmp_path_factory.mktemp("opt") / "tiny-opt", n_layer=4, hidden=HIDDEN, n_head=4, max_positions=4096)


@pytest.fixture
def berg_tree(tmp_path) -> dict:
    """BERG's weights + metadata files for UTS01/UTS02 under $BERG_DIR: {subject: (W float64, metadata)}."""
    return make_berg_tree(tmp_path / "berg", list(N_VOXELS), hidden=HIDDEN, n_voxels=N_VOXELS, seed=3)


def make_story(n_words: int, seed: int = 0) -> dict:
    """A story of corpus words (some ``'s``, blanks and punctuation), onsets ~0.3 s apart (some equal)."""
    rng = np.random.default_rng(seed)
    vocab = sorted({w for line in CORPUS for w in line.split()})
    words = [str(w) for w in rng.choice(vocab, n_words)]
    for i in rng.choice(n_words, max(1, n_words // 40), replace=False):
        words[i] = "'s"
    for i in rng.choice(n_words, max(1, n_words // 60), replace=False):
        words[i] = " " if i % 2 else ""
    words[0] = ""  # a non-real word first: its vector must be zeros
    gaps = rng.choice([0.0, 0.2, 0.3, 0.45], n_words)
    gaps[0] = 0.0
    onsets = 3.7 + np.cumsum(gaps)
    return {"words": words, "word_onsets": onsets.tolist()}
