"""Hugging Face backbones run only up to the layer an encoder reads.

``load_backbone(name, layer=k)`` builds the model with its first ``k`` blocks only (the remaining
blocks' weights are never materialised) and with the final LayerNorm (and OPT's ``project_out``)
removed, so ``model(...).last_hidden_state`` equals the full model's ``hidden_states[k]`` — the raw
residual stream after block ``k`` (for ``k`` = the model's depth, HF's ``hidden_states[k]`` includes the
final norm, and so does ours). Pitfall avoided: simply cutting the block list leaves ``ln_f`` on the
last hidden state.

Every Hugging Face load berg does (config, tokenizer, model, ``fetch_backbone``'s download) runs inside
``hf_guard()`` with ``trust_remote_code=False``: a backbone that needs custom code (``auto_map`` in its
config or tokenizer config, or a ``model_type`` transformers does not know) is one ``ModelLoadError``
line, never a "run the custom code? [y/N]" prompt, and the hub's retry/warning noise is silenced so the
user sees only berg's message.

torch and transformers are imported inside the functions, never at module import.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from berg_core.console import progress_bar
from berg_core.device import default_dtype
from berg_core.errors import BergError, InvalidParameterError, ModelLoadError, StimulusError

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
        """Drop the model and tokenizer; on CUDA also hand the freed memory back (``torch.cuda.empty_cache``)."""
        was_loaded, self.model, self.tokenizer = self.model is not None, None, None
        if was_loaded and str(self.device).startswith("cuda"):
            import torch

            torch.cuda.empty_cache()


def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _set(obj: Any, dotted: str, value: Any) -> None:
    parent, _, last = dotted.rpartition(".")
    setattr(_get(obj, parent) if parent else obj, last, value)


_TRUE = {"1", "true", "yes", "on"}
#: loggers whose retries ("Retrying in 1s [Retry 1/5]"), connection warnings and deprecations would precede berg's line
_NOISY_LOGGERS = ("huggingface_hub", "transformers", "urllib3", "httpx", "httpcore", "filelock")
#: tokenizer files a backbone folder may need (whichever of them the repo has)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.json",
                   "vocab.txt", "merges.txt", "tokenizer.model", "spiece.model", "sentencepiece.bpe.model")
#: weight layouts transformers reads, in its order of preference: (single file, shard index, shard suffix)
WEIGHT_LAYOUTS = (("model.safetensors", "model.safetensors.index.json", ".safetensors"),
                  ("pytorch_model.bin", "pytorch_model.bin.index.json", ".bin"))


def offline_vars() -> list[str]:
    """The offline switches that are set (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``), for messages that say what to unset."""
    return [var for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE") if os.environ.get(var, "").strip().lower() in _TRUE]


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` is set to a true value."""
    return bool(offline_vars())


def _refuse_dynamic_module(*args: Any, **kwargs: Any) -> Any:
    raise ModelLoadError("this backbone needs custom code from its folder or hub repo, which berg will not run; "
                         "use a backbone transformers supports natively")


@contextlib.contextmanager
def hf_guard() -> Iterator[None]:
    """Around a Hugging Face load: no custom code, no prompt on stdin, no hub/transformers log or warning noise.

    * transformers' "Do you wish to run the custom code? [y/N]" prompt is off (``TIME_OUT_REMOTE_CODE = 0``:
      transformers raises instead of reading stdin), and executing a repo's module (``get_class_in_module``)
      raises ``ModelLoadError`` even for a caller that passed ``trust_remote_code=True``;
    * the loggers in ``_NOISY_LOGGERS`` are raised above CRITICAL and Python warnings are ignored.
    Everything is restored on exit. Not thread-safe (module-level state), like transformers' own logging switches.
    """
    dynamic: Any = None
    with contextlib.suppress(ImportError):
        dynamic = importlib.import_module("transformers.dynamic_module_utils")
    saved_dynamic = (dynamic.TIME_OUT_REMOTE_CODE, dynamic.get_class_in_module) if dynamic is not None else None
    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    levels = [lg.level for lg in loggers]
    try:
        if dynamic is not None:
            dynamic.TIME_OUT_REMOTE_CODE = 0
            dynamic.get_class_in_module = _refuse_dynamic_module
        for lg in loggers:
            lg.setLevel(logging.CRITICAL + 1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
        if dynamic is not None and saved_dynamic is not None:
            dynamic.TIME_OUT_REMOTE_CODE, dynamic.get_class_in_module = saved_dynamic


def _missing(name: str, revision: str | None = None, exc: BaseException | None = None) -> ModelLoadError:
    if Path(name).expanduser().is_dir():
        detail = " ".join(str(exc).split())[:200] if exc is not None else ""
        return ModelLoadError(f"backbone folder {name!r} has no readable config.json or tokenizer_config.json ({detail}); "
                              "pass the folder of a saved Hugging Face model")
    if Path(name).expanduser().is_absolute() or name.startswith((".", "~")):
        return ModelLoadError(f"backbone folder {name!r} does not exist; pass the folder of a saved Hugging Face model or a hub id")
    cache = os.environ.get("HF_HUB_CACHE") and f"HF_HUB_CACHE={os.environ['HF_HUB_CACHE']}" or f"HF_HOME={os.environ.get('HF_HOME', '~/.cache/huggingface')}"
    switches = " and ".join(offline_vars())
    if revision:
        name = f"{name}@{revision}"
    if switches:
        return ModelLoadError(f"backbone {name!r} is not in the Hugging Face cache ({cache}; {switches} set): run `berg fetch` of its "
                              f"model without {switches} (it puts the backbone in the cache), or pass backbone=/local/folder")
    return ModelLoadError(f"backbone {name!r} could not be downloaded or found ({cache}): check the name{', revision' if revision else ''} "
                          "and your network, or pass backbone=/local/folder")


def _custom_code(name: str, why: str) -> ModelLoadError:
    return ModelLoadError(f"backbone {name!r} needs custom code ({why}), which berg will not run; "
                          f"use a backbone transformers supports natively ({', '.join(sorted(_ARCH))})")


def _check_native(name: str, config: dict[str, Any], tokenizer_config: dict[str, Any]) -> None:
    """Refuse a backbone whose config files point at code of its own (``auto_map``) or name an unknown architecture."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    for file, cfg in (("config.json", config), ("tokenizer_config.json", tokenizer_config)):
        if cfg.get("auto_map"):
            raise _custom_code(name, f"its {file} has an auto_map naming its own Python classes")
    model_type = config.get("model_type")  # absent in some old configs: transformers then guesses from the name, or refuses
    if model_type is not None and (not isinstance(model_type, str) or model_type not in CONFIG_MAPPING_NAMES):
        raise _custom_code(name, f"model_type {model_type!r} is not an architecture transformers knows")


def backbone_config(name: str, revision: str | None = None) -> Any:
    """The ``transformers`` config of backbone ``name`` (hub id or local folder), loaded without custom code.

    Reads only ``config.json`` and ``tokenizer_config.json`` (downloading them if needed), checks them with
    ``_check_native``, then builds the config with ``trust_remote_code=False``. Raises ``ModelLoadError``
    (one line) when the backbone is missing, offline and not cached, or needs custom code.
    """
    if not isinstance(name, str) or not name.strip():
        raise InvalidParameterError(f"backbone must be a hub id or a folder path (a non-empty str), got {name!r}")
    try:
        from transformers import AutoConfig, PretrainedConfig
        from transformers.models.auto.tokenization_auto import get_tokenizer_config
    except ImportError as exc:
        raise ModelLoadError(f"this model needs torch and transformers: pip install torch transformers ({exc})") from exc
    with hf_guard():
        try:
            raw, _ = PretrainedConfig.get_config_dict(name, revision=revision)
            tok_raw = get_tokenizer_config(name, revision=revision)
        except BergError:
            raise
        except Exception as exc:  # OSError/ValueError (missing, offline, bad JSON), RecursionError (absurd nesting), ...
            raise _missing(name, revision, exc) from exc
        if not isinstance(raw, dict) or not isinstance(tok_raw, dict):
            raise ModelLoadError(f"backbone {name!r}: its config.json or tokenizer_config.json is not a JSON object; re-download it")
        _check_native(name, raw, tok_raw)
        try:
            return AutoConfig.from_pretrained(name, revision=revision, trust_remote_code=False)
        except BergError:
            raise
        except Exception as exc:  # wrong value types in config.json raise TypeError/AttributeError inside transformers
            raise ModelLoadError(f"backbone {name!r}: its config could not be read ({' '.join(str(exc).split())[:200]})") from exc


def load_tokenizer(name: str, revision: str | None = None) -> Any:
    """``AutoTokenizer`` of ``name`` with ``trust_remote_code=False`` (call ``backbone_config`` first)."""
    from transformers import AutoTokenizer

    with hf_guard():
        try:
            tokenizer = AutoTokenizer.from_pretrained(name, revision=revision, trust_remote_code=False)
        except BergError:
            raise
        except Exception as exc:  # a broken folder raises anything (TypeError, ImportError for a missing converter, ...)
            raise ModelLoadError(f"backbone {name!r}: its tokenizer could not be loaded ({' '.join(str(exc).split())[:200]}); "
                                 "re-download it or pass backbone=/local/folder") from exc
    if len(tokenizer) < 2:  # transformers 5 builds an empty tokenizer when the vocabulary files are missing
        raise ModelLoadError(f"backbone {name!r}: its tokenizer could not be loaded (no vocabulary: tokenizer.json / vocab files "
                             "missing); re-download it or pass backbone=/local/folder")
    return tokenizer


def _weight_files(name: str, files: Sequence[str]) -> list[str]:
    """The weight files transformers would read among a repo's top-level ``files`` (safetensors first)."""
    top = [f for f in files if "/" not in f]
    for single, index, suffix in WEIGHT_LAYOUTS:
        if single in top:
            return [single]
        if index in top:
            stem = single.split(".")[0]  # "model" / "pytorch_model"
            return [index, *sorted(f for f in top if f.startswith(stem + "-") and f.endswith(suffix))]
    raise ModelLoadError(f"backbone {name!r} has no PyTorch weights (model.safetensors or pytorch_model.bin) at its top level; "
                         "use another revision or backbone")


def fetch_backbone(name: str, *, revision: str | None = None, show_progress: bool = False) -> Path:
    """Make backbone ``name`` loadable offline; return its folder (the local folder, or the cache snapshot).

    A local folder is only checked: its config and tokenizer load without custom code. A hub id gets exactly
    the files ``load_backbone`` reads (``config.json``, the tokenizer files, the weights: ``model.safetensors``
    or its shards, else ``pytorch_model.bin`` or its shards) at ``revision`` (default ``main``) downloaded into
    the Hugging Face cache (``HF_HOME``/``HF_HUB_CACHE``) with ``huggingface_hub.snapshot_download``; its config
    is checked before any weight is downloaded. With ``HF_HUB_OFFLINE`` set, a cached copy is checked and a
    missing one is one ``ModelLoadError`` line. The architecture must be one ``load_backbone`` supports.
    """
    config = backbone_config(name, revision)  # config.json only: refuses custom code, unknown or offline-missing backbones
    if config.model_type not in _ARCH:
        raise InvalidParameterError(f"backbone {name!r}: architecture {config.model_type!r} is not supported; supported: {', '.join(sorted(_ARCH))}")
    local = Path(name).expanduser()
    if local.is_dir():
        load_tokenizer(name, revision)
        return local
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    bars_were_off = are_progress_bars_disabled()
    with hf_guard():
        if not show_progress:
            disable_progress_bars()
        try:
            if hub_offline():
                folder = Path(snapshot_download(name, revision=revision, local_files_only=True))
                needed = [f for f in ("config.json", *TOKENIZER_FILES) if (folder / f).is_file()]
                needed += _weight_files(name, [p.name for p in folder.iterdir()])
            else:
                files = HfApi().list_repo_files(name, revision=revision)
                needed = [f for f in ("config.json", *TOKENIZER_FILES) if f in files] + _weight_files(name, files)
                folder = Path(snapshot_download(name, revision=revision, allow_patterns=needed))
        except ModelLoadError:
            raise
        except Exception as exc:  # huggingface_hub's errors (HTTP, offline, validation) have no common base below Exception
            raise _missing(name, revision) from exc
        finally:
            if not show_progress and not bars_were_off:
                enable_progress_bars()
    absent = [f for f in needed if not (folder / f).is_file()]
    if absent:
        raise ModelLoadError(f"backbone {name!r}: {', '.join(absent)} missing from {folder} after the download; run `berg fetch` again")
    load_tokenizer(str(folder))
    return folder


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
        from transformers import AutoModel
    except ImportError as exc:
        raise ModelLoadError(f"this model needs torch and transformers: pip install torch transformers ({exc})") from exc
    dtype = dtype or default_dtype(device)
    if dtype not in {"float32", "float16", "bfloat16"}:
        raise InvalidParameterError(f"unknown dtype {dtype!r}; use 'float32', 'float16' or 'bfloat16'")
    config = backbone_config(name, revision)
    tokenizer = load_tokenizer(name, revision)
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
        with hf_guard():
            model = AutoModel.from_pretrained(name, config=config, revision=revision, trust_remote_code=False)
    except BergError:
        raise
    except Exception as exc:  # missing or corrupt weights (OSError, safetensors' own error, a shape mismatch's RuntimeError, ...)
        detail = " ".join(str(exc).split())[:300]
        raise ModelLoadError(f"backbone {name!r} could not be loaded: {detail}; check the name or pass backbone=/local/folder") from exc
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
