"""Fixtures for the brainscore family: isolated berg/brainio/cache dirs, the synthetic Pereira data, and
a tiny random GPT-2 served through brainscore's own ``HuggingfaceSubject`` (nothing is downloaded)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from berg_core.testing import isolated_berg

os.environ["BS_INSTALL_DEPENDENCIES"] = "no"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")  # tiny models: 2+ OpenMP threads on a busy machine run ~20x slower
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the `synthetic` helper, also for subprocesses

import synthetic  # noqa: E402

TINY_ID = "berg-tiny-gpt2"
TINY_LAYER = "transformer.h.1"  # block 2 of 3: hidden_states[2] of the full model
TINY_HIDDEN_INDEX = 2


def pytest_configure(config):
    for line in ("ignore::FutureWarning", "ignore::DeprecationWarning", "ignore:xarray subclass:FutureWarning"):
        config.addinivalue_line("filterwarnings", line)


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """A fresh registry and private berg_dir, cache root and brainio home for every test."""
    with isolated_berg(monkeypatch, tmp_path, BRAINIO_HOME=str(tmp_path / "brainio")):
        yield


@pytest.fixture
def pereira(monkeypatch, tmp_path) -> Path:
    """brainscore's load_dataset('Pereira2018.language') returns the synthetic assembly; returns the file
    that gets one line per load."""
    calls = tmp_path / "pereira-loads.txt"
    synthetic.install(calls_file=calls, monkeypatch=monkeypatch)
    return calls


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory) -> Path:
    from berg_core.testing.hf import tiny_gpt2

    return tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"), n_layer=3, n_embd=48, n_head=4)


def hf_last_token(model, tokenizer, text: str) -> np.ndarray:
    """Reference: the full model run on ``text`` alone, hidden_states[2] (= output of transformer.h.1) at the last token, float64."""
    import torch

    with torch.no_grad():
        out = model(**tokenizer(text, truncation=True, return_tensors="pt"), output_hidden_states=True)
    return out.hidden_states[TINY_HIDDEN_INDEX][0, -1].double().numpy()


def tiny_model(folder: Path, max_length: int = 512):
    """(GPT2LMHeadModel in eval mode, its tokenizer truncating on the left at ``max_length`` tokens, as brainscore's loader sets it)."""
    from transformers import AutoTokenizer, GPT2LMHeadModel

    return GPT2LMHeadModel.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder, truncation_side="left", model_max_length=max_length)


def tiny_subject(model, tokenizer, model_id: str = TINY_ID):
    """brainscore's own ``HuggingfaceSubject`` around the tiny GPT-2, reading ``transformer.h.1``."""
    from brainscore_language import ArtificialSubject
    from brainscore_language.model_helpers.huggingface import HuggingfaceSubject

    mapping = {ArtificialSubject.RecordingTarget.language_system: TINY_LAYER}
    return HuggingfaceSubject(model_id=model_id, model=model, tokenizer=tokenizer, region_layer_mapping=mapping)


def register_tiny(monkeypatch, folder: Path, model_id: str = TINY_ID, max_length: int = 512):
    """Registers ``model_id`` (``tiny_subject``) in brainscore's model_registry; returns (berg spec, hf model, tokenizer)."""
    from brainscore_language import model_registry

    from berg_brainscore.enumerate import USABLE, BrainscoreModel
    from berg_brainscore.plugin import make_spec

    model, tokenizer = tiny_model(folder, max_length)
    monkeypatch.setitem(model_registry, model_id, lambda: tiny_subject(model, tokenizer, model_id))
    spec = make_spec(BrainscoreModel(name=model_id, folder="tests", subject_class="HuggingfaceSubject", hub_id=None, layer=TINY_LAYER,
                                     status=USABLE, reason="a tiny random GPT-2 registered by the tests"))
    return spec, model, tokenizer


@pytest.fixture
def tiny(tiny_folder, monkeypatch):
    """Registers ``berg-tiny-gpt2`` (a GPT2LMHeadModel + its tokenizer) in brainscore's model_registry as a
    HuggingfaceSubject reading ``transformer.h.1``; returns (berg spec, hf model, tokenizer)."""
    return register_tiny(monkeypatch, tiny_folder)
