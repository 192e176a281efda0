"""berg's own Text2fMRI head: BERG's ``Text2fMRIModel`` (an x-transformers ``Encoder``) written out in PyTorch.

For a TR sequence F (T, n_features) of one subject s:

    x = inp(concat(F, subj_emb[s]))                           Linear(n_features + 128 -> dim), bias
    per layer:  x = x + Attn(ScaleNorm(x));  x = x + FF(ScaleNorm(x))                    (pre-norm)
    y = ScaleNorm(x) @ out.weight[sel].T + out_bias[s, sel]                               (T, n_sel)

* ``ScaleNorm(x) = x / max(||x||, 1e-12) · sqrt(dim) · (1 + g)``, g one learned scalar per norm stored with
  x-transformers 2.x's unit offset (its ``norm_add_unit_offset=True`` default: a stored g of 0 scales by 1);
* Attn: bidirectional (no mask), ``heads`` heads of ``dim_head``; q, k, v, out without bias; scores scaled by
  ``dim_head^-1/2``; rotary position embeddings on all ``dim_head`` dims with ``inv_freq_j = theta^(-2j/dim_head)``
  (theta 10000), **interleaved pairs** (GPT-J: dims (2j, 2j+1) rotate by angle ``t·inv_freq_j``), the convention of
  x-transformers >= 1.35 (checked: 1.35 ... 2.3; 1.27 and 1.30 rotated halves, NeoX style);
* FF: Linear(dim -> 4·dim, bias), exact (erf) GELU, Linear(4·dim -> dim, bias); dropouts are off at inference.

``XT_KEY_MAP`` maps the state dict of BERG's module (x-transformers 2.x key names) onto this one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ScaleNorm(nn.Module):  # type: ignore[misc]  # torch is read as Any (pyproject)
    """``normalize(x) · sqrt(dim) · (1 + g)`` along the last axis; ``g`` a learned scalar (shape (1,)), stored with
    x-transformers 2.x's unit offset (``norm_add_unit_offset=True``: g = 0 is the identity scale)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = dim ** 0.5
        self.g = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(x, dim=-1) * self.scale * (self.g + 1.0)


def rotate_pairs(x: Tensor) -> Tensor:
    """Interleaved rotation by 90°: each pair (x_{2j}, x_{2j+1}) -> (-x_{2j+1}, x_{2j}) along the last axis."""
    pairs = x.unflatten(-1, (-1, 2))
    return torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)


def apply_rope(x: Tensor, inv_freq: Tensor) -> Tensor:
    """(..., T, d) -> the same with position t's pair j rotated by ``t · inv_freq[j]`` (interleaved pairs, float32)."""
    t = torch.arange(x.shape[-2], device=x.device, dtype=inv_freq.dtype)
    angles = torch.repeat_interleave(torch.outer(t, inv_freq), 2, dim=-1)  # (T, d): [a0, a0, a1, a1, ...]
    return x * angles.cos() + rotate_pairs(x) * angles.sin()


class Layer(nn.Module):  # type: ignore[misc]
    """One pre-norm attention sublayer and one pre-norm feed-forward sublayer, both residual."""

    def __init__(self, dim: int, heads: int, dim_head: int, ff_mult: int = 4) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.attn_norm = ScaleNorm(dim)
        self.to_q, self.to_k, self.to_v = (nn.Linear(dim, inner, bias=False) for _ in range(3))
        self.to_out = nn.Linear(inner, dim, bias=False)
        self.ff_norm = ScaleNorm(dim)
        self.ff_in = nn.Linear(dim, ff_mult * dim)
        self.ff_out = nn.Linear(ff_mult * dim, dim)

    def forward(self, x: Tensor, inv_freq: Tensor) -> Tensor:
        """(B, T, dim) -> (B, T, dim)."""
        h = self.attn_norm(x)
        q, k, v = (proj(h).unflatten(-1, (self.heads, -1)).transpose(1, 2) for proj in (self.to_q, self.to_k, self.to_v))
        q, k = apply_rope(q, inv_freq), apply_rope(k, inv_freq)
        attn = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(dim_head)) v, no mask
        x = x + self.to_out(attn.transpose(1, 2).flatten(-2))
        return x + self.ff_out(F.gelu(self.ff_in(self.ff_norm(x))))


class Text2fMRIHead(nn.Module):  # type: ignore[misc]
    """The head of one variant, sized from its ``config.json`` (see ``from_config``)."""

    def __init__(self, *, n_features: int, n_subjects: int, n_rois: int, dim: int, depth: int, heads: int,
                 subject_dim: int, theta: float = 10000.0) -> None:
        super().__init__()
        if dim % heads or (dim // heads) % 2:
            raise ValueError(f"transformer_dim {dim} must split into {heads} heads of an even size")
        dim_head = dim // heads
        self.subj_emb = nn.Embedding(n_subjects, subject_dim)
        self.inp = nn.Linear(n_features + subject_dim, dim)
        self.layers = nn.ModuleList(Layer(dim, heads, dim_head) for _ in range(depth))
        self.final_norm = ScaleNorm(dim)
        self.out = nn.Linear(dim, n_rois, bias=False)
        self.out_bias = nn.Embedding(n_subjects, n_rois)
        self.register_buffer("inv_freq", 1.0 / theta ** (torch.arange(0, dim_head, 2, dtype=torch.float32) / dim_head))

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Text2fMRIHead:
        """Sizes from a variant's ``config.json`` (BERG's ``Text2fMRIConfig`` fields)."""
        dim, heads = int(config["transformer_dim"]), int(config["num_transformer_heads"])
        return cls(n_features=int(config["extractor_LLM_feature_size"]), n_subjects=int(config["num_subjects"]),
                   n_rois=int(config["num_rois"]), dim=dim, depth=int(config["num_transformer_layers"]), heads=heads,
                   subject_dim=int(config["subject_embedding_dim"]))

    def forward(self, features: Tensor, subject: int, rois: Tensor | None = None) -> Tensor:
        """(T, n_features) float32 TR features of subject row ``subject`` -> (T, n_rois or len(rois)) float32."""
        s = self.subj_emb.weight[subject].expand(features.shape[0], -1)
        x = self.inp(torch.cat([features, s], dim=-1))[None]
        inv_freq: Tensor = self.inv_freq
        for layer in self.layers:
            x = layer(x, inv_freq)
        h = self.final_norm(x)[0]
        weight, bias = self.out.weight, self.out_bias.weight[subject]
        if rois is not None:
            weight, bias = weight[rois], bias[rois]
        return F.linear(h, weight) + bias


#: x-transformers Encoder key (inside BERG's ``encoder.``) -> this module's key; layers alternate attention, FF
_XT_RULES: tuple[tuple[str, str], ...] = (
    (r"encoder\.layers\.(\d+)\.0\.0\.g", "norm"),
    (r"encoder\.layers\.(\d+)\.1\.(to_q|to_k|to_v|to_out)\.weight", "attn"),
    (r"encoder\.layers\.(\d+)\.1\.ff\.0\.0\.(weight|bias)", "ff_in"),
    (r"encoder\.layers\.(\d+)\.1\.ff\.2\.(weight|bias)", "ff_out"),
)
XT_KEY_MAP = {"encoder.rotary_pos_emb.inv_freq": "inv_freq", "encoder.final_norm.g": "final_norm.g",
              "subj_emb.weight": "subj_emb.weight", "inp.weight": "inp.weight", "inp.bias": "inp.bias",
              "out.weight": "out.weight", "out_bias.weight": "out_bias.weight"}


def map_key(key: str) -> str | None:
    """BERG's (x-transformers) state-dict key -> this head's key, or None for a key the head has no place for."""
    if key in XT_KEY_MAP:
        return XT_KEY_MAP[key]
    for pattern, kind in _XT_RULES:
        m = re.fullmatch(pattern, key)
        if m is None:
            continue
        i = int(m.group(1))
        layer, is_attn = i // 2, i % 2 == 0
        if kind == "norm":
            return f"layers.{layer}.{'attn_norm' if is_attn else 'ff_norm'}.g"
        if (kind == "attn") != is_attn:
            return None
        return f"layers.{layer}.{m.group(2) if kind == 'attn' else kind}" + ("" if kind == "attn" else f".{m.group(2)}") + \
            (".weight" if kind == "attn" else "")
    return None


def convert_state_dict(state: Mapping[str, Tensor], head: Text2fMRIHead) -> dict[str, Tensor]:
    """BERG's state dict -> ``head``'s, every key mapped exactly once; ``KeyError`` naming unknown/missing keys,
    ``ValueError`` when a tensor's shape or the rotary frequencies differ from the config's."""
    out: dict[str, Tensor] = {}
    unknown = []
    for key, value in state.items():
        mapped = map_key(key)
        if mapped is None:
            unknown.append(key)
        else:
            out[mapped] = value
    want = head.state_dict()
    missing = sorted(set(want) - set(out))
    if unknown or missing:
        raise KeyError(f"unexpected keys {unknown[:3]}, missing keys {missing[:3]}")
    for key, value in out.items():
        if tuple(value.shape) != tuple(want[key].shape):
            raise ValueError(f"{key} has shape {tuple(value.shape)}, the config makes {tuple(want[key].shape)}")
    if not torch.allclose(out["inv_freq"].float(), want["inv_freq"], rtol=1e-6, atol=0):
        raise ValueError("the rotary frequencies differ from theta=10000 over the head dimension")
    return out
