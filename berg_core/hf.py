"""Hugging Face backbones run only up to the layer an encoder reads.

``load_backbone(name, layer=k)`` builds the model with its first ``k`` blocks only (the remaining
blocks' weights are never materialised) and with the final LayerNorm (and OPT's ``project_out``)
removed, so ``model(...).last_hidden_state`` equals the full model's ``hidden_states[k]`` — the raw
residual stream after block ``k`` (for ``k`` = the model's depth, HF's ``hidden_states[k]`` includes the
final norm, and so does ours). Pitfall avoided: simply cutting the block list leaves ``ln_f`` on the
last hidden state.

torch and transformers are imported inside the functions, never at module import.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from berg_core.device import default_dtype
from berg_core.errors import InvalidParameterError, ModelLoadError, StimulusError
from berg_core.progress import progress_bar

#: per architecture: (path to the block list, final-norm attribute names to disable, layer-count config key)
_ARCH: dict[str, tuple[str, tuple[str, ...]]] = {
    "gpt2": ("h", ("ln_f",)),
    "opt": ("decoder.layers", ("decoder.final_layer_norm", "decoder.project_out")),
    "gpt_neo": ("h", ("ln_f",)),
    "gpt_neox": ("layers", ("final_layer_norm",)),
    "llama": ("layers", ("norm",)),
    "mistral": ("layers", ("norm",)),
    "qwen2": ("layers", ("norm",)),
}


@dataclass
class Backbone:
    """A tokenizer and a model truncated after block ``layer``, on ``device`` in ``dtype``."""

    name: str
    layer: int
    device: str
    dtype: str
    tokenizer: Any
    model: Any
    revision: str
    hidden_size: int
    max_tokens: int | None = None  # longest input the position embeddings allow (None: no limit known)

    def forward(self, input_ids: Any, attention_mask: Any) -> Any:
        """Hidden states after block ``layer``: (batch, tokens, hidden) torch tensor, in inference mode."""
        import torch

        with torch.inference_mode():
            out = self.model(input_ids=input_ids.to(self.device), attention_mask=attention_mask.to(self.device), use_cache=False)
        return out.last_hidden_state

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` alone, no special tokens added."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def release(self) -> None:
        self.model = None
        self.tokenizer = None


def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _set(obj: Any, dotted: str, value: Any) -> None:
    parent, _, last = dotted.rpartition(".")
    setattr(_get(obj, parent) if parent else obj, last, value)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"} or os.environ.get("TRANSFORMERS_OFFLINE", "").lower() in {"1", "true", "yes"}


def load_backbone(
    name: str,
    *,
    layer: int,
    device: str = "cpu",
    dtype: str | None = None,
    revision: str | None = None,
) -> Backbone:
    """Load ``name`` (hub id or local folder) truncated after block ``layer`` (1-based; 0 = embeddings).

    ``dtype``: ``"float32"``, ``"float16"`` or ``"bfloat16"``; default float32 on CPU, float16 on GPU.
    """
    try:
        import torch
        import transformers
        from transformers import AutoConfig, AutoModel, AutoTokenizer
    except ImportError as exc:
        raise ModelLoadError(f"this model needs torch and transformers: pip install torch transformers ({exc})") from exc
    dtype = dtype or default_dtype(device)
    if dtype not in {"float32", "float16", "bfloat16"}:
        raise InvalidParameterError(f"unknown dtype {dtype!r}; use 'float32', 'float16' or 'bfloat16'")
    try:
        config = AutoConfig.from_pretrained(name, revision=revision)
        tokenizer = AutoTokenizer.from_pretrained(name, revision=revision)
    except (OSError, ValueError) as exc:
        where = os.environ.get("HF_HOME", "~/.cache/huggingface")
        how = "it is not in the Hugging Face cache and the hub is offline" if _offline() else "it could not be downloaded or found"
        raise ModelLoadError(
            f"backbone {name!r}: {how} (HF_HOME={where}); download it once online "
            f"(python -c \"from transformers import AutoModel; AutoModel.from_pretrained('{name}')\") or pass backbone=/local/folder"
        ) from exc
    if config.model_type not in _ARCH:
        raise InvalidParameterError(f"backbone architecture {config.model_type!r} is not supported; supported: {', '.join(sorted(_ARCH))}")
    blocks_path, final_norms = _ARCH[config.model_type]
    n_layers = int(config.num_hidden_layers)
    if not isinstance(layer, int) or not 0 <= layer <= n_layers:
        raise InvalidParameterError(f"layer must be an int in 0..{n_layers} for {name!r}, got {layer!r}")
    config.num_hidden_layers = layer  # only blocks 1..layer are built and loaded
    verbosity = transformers.logging.get_verbosity()
    bars = transformers.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()  # the unused deeper blocks are expected
    transformers.logging.disable_progress_bar()  # no "Loading weights" bar on every model load
    try:
        model = AutoModel.from_pretrained(name, config=config, revision=revision)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"backbone {name!r} could not be loaded: {exc}; check the name or pass backbone=/local/folder") from exc
    finally:
        transformers.logging.set_verbosity(verbosity)
        if bars:
            transformers.logging.enable_progress_bar()
    if len(_get(model, blocks_path)) != layer:
        raise ModelLoadError(f"backbone {name!r} built {len(_get(model, blocks_path))} blocks, expected {layer}")
    for attr in final_norms if layer < n_layers else ():  # HF applies the final norm to hidden_states[n_layers] only
        try:
            current = _get(model, attr)
        except AttributeError:
            continue
        if current is not None:
            _set(model, attr, None if attr.endswith("project_out") or config.model_type == "opt" else torch.nn.Identity())
    model.eval()
    model.to(device=device, dtype=getattr(torch, dtype))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    rev = getattr(config, "_commit_hash", None) or revision or "local"
    hidden = int(getattr(config, "hidden_size", getattr(config, "n_embd", 0)))
    max_tokens = getattr(config, "max_position_embeddings", None) if config.model_type in {"gpt2", "opt", "gpt_neo"} else None  # learned positions
    return Backbone(name=name, layer=layer, device=device, dtype=dtype, tokenizer=tokenizer, model=model, revision=str(rev), hidden_size=hidden,
                    max_tokens=int(max_tokens) if max_tokens else None)


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[Any, Any]:
    """Right-pad token id lists into (input_ids, attention_mask) long tensors of shape (batch, max_len)."""
    import torch

    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, seq in enumerate(sequences):
        ids[i, : len(seq)] = torch.as_tensor(list(seq), dtype=torch.long)
        mask[i, : len(seq)] = 1
    return ids, mask


def sentence_features(
    backbone: Backbone,
    sentences: Sequence[str],
    *,
    batch_size: int = 32,
    pooling: str = "last",
    show_progress: bool = False,
) -> np.ndarray:
    """One feature vector per sentence, each sentence run alone (no context across sentences).

    Returns float32 (n_sentences, hidden_size): the block-``layer`` output at the last real token
    (``pooling="last"``) or averaged over the sentence's tokens (``"mean"``). Sentences are tokenized
    without special tokens, sorted by length and batched with right padding + attention mask; a
    duplicate sentence is computed once. Rows come back in input order.
    """
    import torch

    if pooling not in {"last", "mean"}:
        raise InvalidParameterError(f"unknown pooling {pooling!r}; use 'last' or 'mean'")
    if batch_size < 1:
        raise InvalidParameterError(f"batch_size must be >= 1, got {batch_size}")
    unique = list(dict.fromkeys(sentences))
    token_ids = [backbone.tokenize(s) for s in unique]
    for s, ids in zip(unique, token_ids):
        if not ids:
            raise InvalidParameterError(f"sentence {s!r} has no tokens")
        if backbone.max_tokens is not None and len(ids) > backbone.max_tokens:
            raise StimulusError(f"sentence {s[:40]!r}... has {len(ids)} tokens; {backbone.name} reads at most {backbone.max_tokens}: split it")
    order = sorted(range(len(unique)), key=lambda i: len(token_ids[i]))
    feats = np.empty((len(unique), backbone.hidden_size), dtype=np.float32)
    bar = progress_bar(show=show_progress, total=len(sentences), desc=backbone.name.rsplit("/", 1)[-1], unit="sent")
    try:
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            ids, mask = pad_batch([token_ids[i] for i in rows], backbone.tokenizer.pad_token_id)
            hidden = backbone.forward(ids, mask).float()
            mask_dev = mask.to(hidden.device)
            if pooling == "last":
                last = mask_dev.sum(dim=1) - 1
                pooled = hidden[torch.arange(len(rows), device=hidden.device), last]
            else:
                pooled = (hidden * mask_dev[..., None]).sum(dim=1) / mask_dev.sum(dim=1, keepdim=True)
            feats[rows] = pooled.cpu().numpy()
            bar.update(len(rows))
        bar.update(len(sentences) - len(unique))
    finally:
        bar.close()
    index = {s: i for i, s in enumerate(unique)}
    return feats[[index[s] for s in sentences]]
