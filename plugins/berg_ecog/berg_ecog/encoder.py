"""``EcogEncoder``: words -> GPT-2 XL block-24 token features in 33-token windows -> word means -> BERG's readout.

The computation (spec ecog_zada2025.md; parity target = BERG's ``zada2025_gpt2_xl.py`` @ 1cb3cf1):

1. each word w is tokenized as ``" " + w`` (GPT-2 BPE, no special tokens); the call's tokens are concatenated
   (T, n_tok) and each word keeps its token span;
2. token i is read in the window ``[0]·(c + 1 − m) + T[i−m+1 … i]`` with m = min(i + 1, c + 1) and c =
   ``context_tokens`` (32): length c + 1, **left-padded with token id 0** (GPT-2's "!"; BERG's
   ``tokenizer.pad_token_id or 0``, and GPT-2 has no pad token), attended (no attention mask, as BERG), so the
   current token always sits at the last position c;
3. feature_i = the residual stream after block ``layer`` (24) at that last position = ``hidden_states[24][:, -1]``
   of the full model (berg builds only blocks 1..24; no final LayerNorm);
4. a word's feature is the mean of its tokens' features;
5. ``Readout.predict``: StandardScaler -> ridge -> inverse StandardScaler, for the selected (electrode, lag) targets;
6. reshaped to (n_words, n_sel_electrodes, n_sel_lags), float32, electrode-major.

All windows have the same length, so berg batches ``batch_size`` (64) of them per forward pass; BERG runs 4.
The features do not depend on the batch (checked by the tests). Context stops at the call (BERG's too): encode
a transcript in one call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from berg_core import Encoder, EncoderSpec, InvalidParameterError, ModelLoadError, select_indices
from berg_ecog.plugin import MODEL_ID
from berg_ecog.weights import Readout, load_subject_metadata, load_weights, target_columns

if TYPE_CHECKING:
    from berg_core import Backbone

#: the id BERG left-pads windows with (``tokenizer.pad_token_id or 0``; GPT-2 has no pad token)
PAD_ID = 0


def word_tokens(tokenize: Any, words: Sequence[str]) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids of the call (each word as ``" " + word``, concatenated) and each word's [start, stop) span."""
    ids: list[int] = []
    spans: list[tuple[int, int]] = []
    for word in words:
        start = len(ids)
        ids.extend(int(t) for t in tokenize(" " + word))
        spans.append((start, len(ids)))
    return ids, spans


def token_windows(ids: Sequence[int], context_tokens: int, pad_id: int = PAD_ID) -> NDArray[np.int64]:
    """(n_tok, context_tokens + 1) int64: row i = token i after its ``context_tokens`` predecessors, left-padded
    with ``pad_id`` (the current token always last)."""
    width = int(context_tokens) + 1
    tokens = np.asarray(ids, dtype=np.int64)
    padded = np.concatenate([np.full(width - 1, pad_id, dtype=np.int64), tokens])
    index = np.arange(len(tokens))[:, None] + np.arange(width)[None, :]
    windows: NDArray[np.int64] = padded[index]
    return windows


def window_features(backbone: Backbone, windows: NDArray[np.int64], *, batch_size: int = 64,
                    show_progress: bool = False) -> NDArray[np.float32]:
    """(n_tok, width) windows -> float32 (n_tok, hidden): the backbone's output at each window's last position,
    ``batch_size`` windows per forward pass (all attended: no padding mask)."""
    import torch

    from berg_core import progress

    out = np.empty((len(windows), backbone.hidden_size), dtype=np.float32)
    starts = range(0, len(windows), int(batch_size))
    for start in progress(starts, show=show_progress, total=len(starts), desc="GPT-2 token windows", unit="batch"):
        ids = torch.as_tensor(windows[start:start + batch_size])
        hidden = backbone.forward(ids, torch.ones_like(ids))
        out[start:start + len(ids)] = hidden[:, -1].float().cpu().numpy()
    return out


def mean_over_words(token_features: NDArray[np.float32], spans: Sequence[tuple[int, int]]) -> NDArray[np.float32]:
    """(n_tok, d) -> (n_words, d): each word's mean over its tokens' rows (float32, as BERG)."""
    return np.stack([token_features[a:b].mean(axis=0) for a, b in spans]).astype(np.float32)


class EcogEncoder(Encoder):
    """ecog-zada2025-gpt2_xl: ``encode(words) -> (n_words, n_sel_electrodes, n_sel_lags)`` float32, high-gamma.

    Options: ``backbone`` (``"gpt2-xl"``), ``layer`` (24), ``context_tokens`` (32), ``batch_size`` (64), ``dtype``,
    ``revision``. Selection: ``electrode_index`` and ``lags`` (0/1 vectors; every selected electrode x lag).
    """

    def __init__(self, spec: EncoderSpec, **kwargs: Any) -> None:
        super().__init__(spec, **kwargs)
        subject = str(self.subject)
        meta = load_subject_metadata(self.berg_dir, subject)["ecog"]
        names, times = [str(n) for n in meta["ch_names"]], np.asarray(meta["times"], dtype=np.float64)
        self.electrodes = select_indices(self.selection, "electrode_index", len(names), who=MODEL_ID, subject=subject)
        self.lags = select_indices(self.selection, "lags", len(times), who=MODEL_ID, subject=subject)
        self._axes = {"electrode": [names[i] for i in self.electrodes], "lag": [f"{times[k]:+.5f}s" for k in self.lags]}
        backbone_name = str(self.options["backbone"])
        self.context_tokens = int(self.options["context_tokens"])
        self.batch_size = int(self.options["batch_size"])

        from berg_core import backbone_config, load_backbone

        config = backbone_config(backbone_name, self.options["revision"])  # no weights read yet
        positions = getattr(config, "max_position_embeddings", None) if config.model_type == "gpt2" else None
        if positions is not None and self.context_tokens + 1 > int(positions):
            raise InvalidParameterError(f"context_tokens={self.context_tokens} makes {self.context_tokens + 1}-token windows, more than "
                                        f"{backbone_name!r}'s {positions} positions; use at most {int(positions) - 1}")
        self.readout = self._load_readout(subject, len(names), len(times))
        backbone = load_backbone(backbone_name, layer=int(self.options["layer"]), device=self.device,
                                 dtype=self.options["dtype"], revision=self.options["revision"])
        self.backbone: Backbone | None = backbone  # None once closed
        if backbone.hidden_size != self.readout.n_features:
            backbone.release()
            raise ModelLoadError(f"backbone {backbone_name!r} gives {backbone.hidden_size}-d features but the readout expects "
                                 f"{self.readout.n_features} (GPT-2 XL's width); use a GPT-2 XL-shaped backbone")

    def _load_readout(self, subject: str, n_electrodes: int, n_lags: int) -> Readout:
        w = load_weights(self.berg_dir, subject)
        if (int(w["n_electrodes"]), int(w["n_lags"])) != (n_electrodes, n_lags):
            raise ModelLoadError(f"subject {subject}'s weights are for {w['n_electrodes']} electrodes x {w['n_lags']} lags but its "
                                 f"metadata lists {n_electrodes} x {n_lags}; delete both files and run `berg fetch {MODEL_ID} "
                                 f"--subject {subject}`")
        cols = target_columns(self.electrodes, self.lags, n_lags)
        return Readout(mean_x=w["mean_x"], scale_x=w["scale_x"], coef=np.ascontiguousarray(w["coef"][:, cols]),
                       intercept=w["intercept"][cols], mean_y=w["mean_y"][cols], scale_y=w["scale_y"][cols])

    @property
    def output_axes(self) -> dict[str, list[str]]:
        """``electrode``: the selected electrodes' names; ``lag``: the selected lags as ``"-2.00000s"`` ... ``"+2.00000s"``."""
        return {name: list(labels) for name, labels in self._axes.items()}

    def word_features(self, words: Sequence[str], show_progress: bool = False) -> NDArray[np.float32]:
        """(n_words, hidden) float32: each word's mean token feature (steps 1-4 of the module docstring)."""
        assert self.backbone is not None  # the core refuses to encode with a closed model
        ids, spans = word_tokens(self.backbone.tokenize, words)
        windows = token_windows(ids, self.context_tokens)
        feats = window_features(self.backbone, windows, batch_size=self.batch_size, show_progress=show_progress)
        return mean_over_words(feats, spans)

    def _encode(self, words: list[str], show_progress: bool) -> NDArray[np.float32]:
        y = self.readout.predict(self.word_features(words, show_progress))
        return y.reshape(len(words), len(self.electrodes), len(self.lags))

    def _release(self) -> None:
        backbone, self.backbone = getattr(self, "backbone", None), None
        if backbone is not None:
            backbone.release()  # also empties the CUDA cache
