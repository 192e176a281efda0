"""Fixture files in BERG's formats, for offline tests (the real head and bucket files are not shipped).

* ``write_metadata(root)``: BERG's ``metadata.npy`` (a dict in a 0-d object array) at its bucket path under
  ``root``: ``{"roi_masks": {network: (1000,) bool}}`` (``capitalised=False``: lower-case network names), the
  networks of the shipped Schaefer label table;
* ``write_head(folder, ...)``: a hub-like variant folder: ``config.json`` (BERG's ``Text2fMRIConfig`` fields),
  ``model.pt`` (a random state dict with the exact key names of BERG's ``Text2fMRIModel`` built on x-transformers
  2.x) and optionally ``README.md`` with a ``license:`` header.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from berg_text2fmri.plugin import METADATA_PATH, N_PARCELS


def roi_masks(capitalised: bool = True) -> dict[str, np.ndarray]:
    """{network: (1000,) bool} as BERG's metadata holds them: the shipped Schaefer table's networks."""
    from berg_text2fmri.weights import shipped_masks

    return {net if capitalised else net.lower(): mask for net, mask in shipped_masks().items()}


def write_metadata(root: Path | str, *, capitalised: bool = False, key: str = "roi_masks") -> Path:
    """BERG's ``metadata.npy`` under ``root`` (a berg_dir or a bucket folder); returns its path."""
    path = Path(root) / METADATA_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, {key: roi_masks(capitalised), "tr": 1.49}, allow_pickle=True)  # type: ignore[arg-type]
    return path


def head_config(extractor: str, *, feature_size: int = 32, dim: int = 64, depth: int = 2, heads: int = 4,
                subject_dim: int = 8, dtype: str = "float32") -> dict[str, Any]:
    """A small ``Text2fMRIConfig`` as the hub's config.json writes it."""
    return {"tr": 1.49, "num_subjects": 4, "num_rois": N_PARCELS, "num_transformer_layers": depth,
            "num_transformer_heads": heads, "transformer_dim": dim, "subject_embedding_dim": subject_dim,
            "extractor_LLM": extractor, "extractor_LLM_feature_size": feature_size, "extractor_LLM_dtype": dtype,
            "extractor_LLM_num_last_hidden_states": 4}


def xt_state_dict(config: dict[str, Any], seed: int = 0) -> dict[str, Any]:
    """Random weights under BERG's key names (x-transformers 2.x ``Encoder`` inside ``encoder.``); ScaleNorm g's
    are stored with the unit offset (near 0); the rotary buffer holds theta=10000 frequencies."""
    import torch

    g = torch.Generator().manual_seed(seed)
    d, f, s, n = (int(config[k]) for k in ("transformer_dim", "extractor_LLM_feature_size", "subject_embedding_dim", "num_rois"))
    dh = d // int(config["num_transformer_heads"])

    def rnd(*shape: int, scale: float | None = None) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * (scale if scale is not None else shape[-1] ** -0.5)

    sd: dict[str, torch.Tensor] = {"subj_emb.weight": rnd(4, s, scale=1.0), "inp.weight": rnd(d, f + s), "inp.bias": rnd(d, scale=0.1)}
    for i in range(int(config["num_transformer_layers"])):
        a, b = f"encoder.layers.{2 * i}", f"encoder.layers.{2 * i + 1}"
        sd[f"{a}.0.0.g"], sd[f"{b}.0.0.g"] = rnd(1, scale=0.2), rnd(1, scale=0.2)
        for name in ("to_q", "to_k", "to_v", "to_out"):
            sd[f"{a}.1.{name}.weight"] = rnd(d, d)
        sd[f"{b}.1.ff.0.0.weight"], sd[f"{b}.1.ff.0.0.bias"] = rnd(4 * d, d), rnd(4 * d, scale=0.1)
        sd[f"{b}.1.ff.2.weight"], sd[f"{b}.1.ff.2.bias"] = rnd(d, 4 * d), rnd(d, scale=0.1)
    sd["encoder.rotary_pos_emb.inv_freq"] = 1.0 / 10000 ** (torch.arange(0, dh, 2).float() / dh)
    sd["encoder.final_norm.g"] = rnd(1, scale=0.2)
    sd["out.weight"], sd["out_bias.weight"] = rnd(n, d), rnd(4, n, scale=0.1)
    return sd


def write_head(folder: Path | str, config: dict[str, Any], *, seed: int = 0, licence: str | None = "mit") -> Path:
    """``config.json`` + ``model.pt`` (+ ``README.md`` with ``licence`` unless None) in ``folder``; returns it."""
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    torch.save(xt_state_dict(config, seed), folder / "model.pt")
    if licence is not None:
        (folder / "README.md").write_text(f"---\nlicense: {licence}\nlibrary_name: pytorch\n---\n# Text2fMRI test head\n")
    return folder
