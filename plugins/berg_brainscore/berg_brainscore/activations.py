"""Language-system activations of a brainscore ``ArtificialSubject``.

* ``load_subject(name, device)``: brainscore's ``load_model(name)`` (or the entry already in its
  ``model_registry``), neural recording of ``language_system`` / fMRI started, the torch model in eval
  mode and moved to ``device`` (brainscore itself picks MPS, else CUDA, else CPU at load; a model that
  brainscore spread over several GPUs with ``device_map='auto'`` is left where it is; embedding models
  are numpy and ignore ``device``).
* ``digest(subject, parts)``: ``digest_text(parts)['neural']``, one row per part, where part i is read
  with parts 0..i before it (brainscore's running text, left-truncated to the model's maximum length).
* ``grouped_features(subject, groups)``: ``digest`` of every group (one running text each), by faster
  routes that give the same numbers where brainscore's model class allows (see its docstring).
* ``sentence_features(subject, sentences, context=...)``: ``"running"`` = the whole list as one running
  text (BERG's behaviour); ``"independent"`` = each sentence alone (one group per sentence).

Rows are float64 (n_parts, n_units): the hooked layer's output at the last token (HF models) or the
mean of the word vectors (embedding models).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from berg_brainscore.runtime import brainscore
from berg_core import BergError, InvalidParameterError, ModelLoadError, progress, progress_bar

LANGUAGE_SYSTEM = "language_system"
#: cap on rows x tokens^2 of one padded batch: a padded batch forces the masked (slower) attention kernel,
#: which loses to one-at-a-time runs beyond ~256 tokens (measured on CPU), so long running contexts go alone
MAX_ATTENTION_CELLS = 2**20
CONTEXTS = ("independent", "running")


def load_subject(name: str, device: str) -> Any:
    """brainscore's model ``name`` ready to record the language system, on ``device`` where it is a torch model."""
    from berg_core import hf_guard, offline_vars

    bs = brainscore()
    try:
        # no custom code from a hub repo, no [y/N] prompt, no hub retry noise before berg's line; brainscore's own
        # prints ("Using device: cpu") go to stderr, never into data written to stdout
        with hf_guard(), contextlib.redirect_stdout(sys.stderr):
            if name in bs.model_registry:  # already imported (or registered in-process, e.g. by a test)
                subject = bs.model_registry[name]()
            else:
                subject = bs.load_model(name)
    except BergError:
        raise
    except Exception as exc:
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:400]
        switches = " and ".join(offline_vars())
        how = f"downloadable: unset {switches}" if switches else "downloadable: check your network"
        raise ModelLoadError(f"brainscore could not load model {name!r}: {detail} (a Hugging Face model must be in the HF cache, "
                             f"HF_HOME={os.environ.get('HF_HOME', '~/.cache/huggingface')}, or {how})") from exc
    place_on_device(subject, device)
    subject.start_neural_recording(recording_target=bs.ArtificialSubject.RecordingTarget.language_system,
                                   recording_type=bs.ArtificialSubject.RecordingType.fMRI)
    return subject


def place_on_device(subject: Any, device: str) -> None:
    """Move a subject's torch model (``basemodel``) to ``device`` and set eval mode; others are left alone."""
    model = getattr(subject, "basemodel", None)
    if model is None or not hasattr(model, "to"):
        return
    model.eval()  # HuggingfaceSubject does not call eval() on a model passed in
    device_map = getattr(model, "hf_device_map", None)
    if device_map and len(set(device_map.values())) > 1:
        return  # brainscore spread it over several GPUs
    model.to(device)
    subject.device = device  # HuggingfaceSubject sends its inputs to subject.device


def digest(subject: Any, parts: Sequence[str]) -> np.ndarray:
    """``subject.digest_text(parts)['neural']`` as float64 (len(parts), n_units), part order kept."""
    out = subject.digest_text(list(parts))
    neural = out.get("neural") if isinstance(out, dict) else None
    if neural is None:
        raise ModelLoadError(f"brainscore model {_name(subject)!r} gave no neural output for the language system")
    values = np.asarray(neural.values, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] != len(parts):
        raise ModelLoadError(f"brainscore model {_name(subject)!r} gave neural output of shape {values.shape} for {len(parts)} parts")
    if "part_number" in neural.coords:
        values = values[np.argsort(np.asarray(neural["part_number"].values), kind="stable")]
    return values


def grouped_features(subject: Any, groups: Sequence[Sequence[str]], *, batch_size: int = 16, show_progress: bool = False) -> list[np.ndarray]:
    """``digest(subject, group)`` for every group (each group one running text), float64 (len(group), n_units) each.

    Faster routes that give the same numbers as ``digest_text``:
    * ``EmbeddingSubject`` (its ``digest_text`` reads every part alone and averages the word vectors):
      computed directly with its own ``_encode_sentence`` + ``_average_representations``, skipping
      brainscore's per-part xarray packaging (~50 ms a part);
    * single-layer ``HuggingfaceSubject`` (its ``digest_text`` runs part i's whole context
      ``prepare_context(parts[:i+1])``, truncated by its tokenizer, and reads the last token): those
      contexts are run in length-sorted padded batches (``_hf_last_token``).
    Any other subject goes through ``digest_text`` group by group.
    """
    if batch_size < 1:
        raise InvalidParameterError(f"batch_size must be >= 1, got {batch_size}")
    groups = [list(g) for g in groups]
    if _is_embedding(subject):
        rows = {p: _embedding_row(subject, p) for p in dict.fromkeys(p for g in groups for p in g)}
        return [np.stack([rows[p] for p in g]) for g in groups]
    if _hf_batchable(subject):
        from brainscore_language.model_helpers.preprocessing import prepare_context

        contexts = [[prepare_context(g[: i + 1]) for i in range(len(g))] for g in groups]
        flat = _hf_last_token(subject, [c for cs in contexts for c in cs], batch_size=batch_size, show_progress=show_progress)
        bounds = np.cumsum([0] + [len(g) for g in groups])
        return [flat[bounds[k] : bounds[k + 1]] for k in range(len(groups))]
    unique = list(dict.fromkeys(tuple(g) for g in groups))
    done = {g: digest(subject, g) for g in progress(unique, show=show_progress, desc=_name(subject), unit="text")}
    return [done[tuple(g)] for g in groups]


def sentence_features(subject: Any, sentences: Sequence[str], *, context: str = "independent", batch_size: int = 16,
                      show_progress: bool = False) -> np.ndarray:
    """Language-system features, float64 (n_sentences, n_units); see the module docstring for ``context``."""
    if context not in CONTEXTS:
        raise InvalidParameterError(f"unknown context {context!r}; use 'independent' (each sentence alone) or 'running' (one running text)")
    groups = [list(sentences)] if context == "running" else [[s] for s in sentences]
    return np.concatenate(grouped_features(subject, groups, batch_size=batch_size, show_progress=show_progress))


def _name(subject: Any) -> str:
    ident = getattr(subject, "identifier", None)
    return ident if isinstance(ident, str) else type(subject).__name__


def _is_embedding(subject: Any) -> bool:
    from brainscore_language.model_helpers.embedding import EmbeddingSubject

    return isinstance(subject, EmbeddingSubject) and len(getattr(subject, "neural_recordings", ())) == 1


def _embedding_row(subject: Any, part: str) -> np.ndarray:
    return np.asarray(subject._average_representations(subject._encode_sentence(part)), dtype=np.float64)


def _hf_batchable(subject: Any) -> bool:
    from brainscore_language.model_helpers.huggingface import HuggingfaceSubject

    if not isinstance(subject, HuggingfaceSubject) or subject.use_localizer or len(subject.neural_recordings) != 1:
        return False
    return isinstance(subject.region_layer_mapping.get(LANGUAGE_SYSTEM), str)


class _Reached(Exception):
    """Raised by the forward hook to stop the model once the recorded layer has run."""

    def __init__(self, output: Any) -> None:
        super().__init__("layer reached")
        self.output = output


def _hf_last_token(subject: Any, contexts: Sequence[str], *, batch_size: int, show_progress: bool) -> np.ndarray:
    """Each context alone through a ``HuggingfaceSubject``: the hooked layer's output at its last token.

    ``contexts`` are strings as ``digest_text`` builds them (``prepare_context``); each is tokenized as
    ``digest_text`` does (the subject's tokenizer, ``truncation=True``, every returned input such as
    ``token_type_ids`` passed on), sorted by length, right-padded with an attention mask (causal models:
    real tokens never see the padding) in batches of at most ``batch_size`` rows and ``MAX_ATTENTION_CELLS``
    rows x tokens^2, the forward pass stopped once the layer has run; duplicates are computed once. Returns float64 (len(contexts), n_units) in input order.
    """
    import torch

    from berg_core import pad_batch

    layer = subject._get_layer(subject.region_layer_mapping[LANGUAGE_SYSTEM])
    tokenizer = subject.tokenizer
    unique = list(dict.fromkeys(contexts))
    encoded = [dict(tokenizer(c, truncation=True)) for c in unique]
    for c, enc in zip(unique, encoded):
        if not enc["input_ids"]:
            raise InvalidParameterError(f"text {c[:60]!r} has no tokens for {_name(subject)}")
    extra_keys = [k for k in encoded[0] if k not in ("input_ids", "attention_mask")]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    order = sorted(range(len(unique)), key=lambda i: len(encoded[i]["input_ids"]))
    batches: list[list[int]] = []
    for i in order:  # sorted by length, so the newest row is the longest of its batch
        width = len(encoded[i]["input_ids"])
        if batches and len(batches[-1]) < batch_size and (len(batches[-1]) + 1) * width * width <= MAX_ATTENTION_CELLS:
            batches[-1].append(i)
        else:
            batches.append([i])

    def stop(_module: Any, _inputs: Any, output: Any) -> None:
        raise _Reached(output[0] if isinstance(output, (tuple, list)) else output)

    handle = layer.register_forward_hook(stop)
    feats: np.ndarray | None = None
    bar = progress_bar(show=show_progress, total=len(contexts), desc=_name(subject), unit="text")
    try:
        for rows in batches:
            ids, mask = pad_batch([encoded[i]["input_ids"] for i in rows], pad_id)
            inputs = {"input_ids": ids, "attention_mask": mask}
            for key in extra_keys:
                inputs[key] = pad_batch([encoded[i][key] for i in rows], 0)[0]
            try:
                with torch.inference_mode():
                    subject.basemodel(**{k: v.to(subject.device) for k, v in inputs.items()}, use_cache=False)
            except _Reached as reached:
                hidden = reached.output
            else:
                raise ModelLoadError(f"layer {subject.region_layer_mapping[LANGUAGE_SYSTEM]!r} of {_name(subject)} did not run")
            last = (mask.sum(dim=1) - 1).to(hidden.device)
            pooled = hidden[torch.arange(len(rows), device=hidden.device), last].float().cpu().numpy()
            if feats is None:
                feats = np.empty((len(unique), pooled.shape[1]), dtype=np.float64)
            feats[rows] = pooled
            bar.update(len(rows))
        bar.update(len(contexts) - len(unique))
    finally:
        handle.remove()
        bar.close()
    assert feats is not None
    index = {c: i for i, c in enumerate(unique)}
    return feats[[index[c] for c in contexts]]
