"""A trained sentence encoder on a tiny random GPT-2 (layer 2, mean pooling, 3 outputs), as `berg train` writes it:
the small backbone of tests/slurm and benchmarks/scaleout.py (offline, ~1 MB)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def vocabulary() -> list[str]:
    from berg_core.testing.hf import CORPUS

    return sorted({w.strip(".,!?'") for s in CORPUS for w in s.split() if w.strip(".,!?'")})


def tiny_sentence_encoder(folder: Path, *, n_train: int = 80, layers: int | None = None) -> Path:
    """Train the encoder in ``folder`` (``folder/enc``, model id ``lab-tiny_gpt2``) and return that folder."""
    from berg_core.cli import main
    from berg_core.features.backbones import load_backbone, sentence_features
    from berg_core.testing.hf import tiny_gpt2

    folder = Path(folder)
    gpt2 = tiny_gpt2(folder / "gpt2")
    words = vocabulary()
    rng = np.random.default_rng(0)
    sents = [" ".join(rng.choice(words, size=rng.integers(3, 9))) + "." for _ in range(n_train)]
    F = sentence_features(load_backbone(str(gpt2), layer=2), sents, pooling="mean").astype(np.float64)
    np.save(folder / "F.npy", F)
    np.save(folder / "Y.npy", F @ rng.standard_normal((F.shape[1], 3)) + rng.standard_normal((n_train, 3)))
    out = folder / "enc"
    code = main(["train", "--features", str(folder / "F.npy"), "--responses", str(folder / "Y.npy"), "--test", f"{n_train * 3 // 4}:",
                 "--folds", "3", "--alphas", "1,100", "--permutations", "0", "--backbone", str(gpt2), "--layer", "2",
                 "--pooling", "mean", "--model-id", "lab-tiny_gpt2", "--out", str(out), "--quiet"])
    if code != 0:
        raise RuntimeError("berg train of the tiny encoder failed")
    return out


def write_corpus(path: Path, n: int, seed: int = 1) -> Path:
    """``n`` sentences of the tiny vocabulary, a few repeated, one blank line."""
    rng = np.random.default_rng(seed)
    words = vocabulary()
    lines = [" ".join(rng.choice(words, size=rng.integers(2, 8))) for _ in range(n)]
    for i in (10, 50, n - 40):
        lines[i % n] = "the same sentence again"  # repeats, kept once
    lines[7 % n] = ""
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
