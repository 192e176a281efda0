"""``TuckuteEncoder``: sentences -> GPT2-XL block-22 last-token features -> ridge readout (6 fROIs).

The computation (spec/tuckute.md; parity target = BERG's ``FMRITextEncodingModel``):

1. each sentence alone (no context across sentences), raw string, GPT-2 tokenizer, no BOS/EOS added,
   no lowercasing or stripping;
2. feature = the residual stream after block ``layer`` (22) at the sentence's last token, 1600-d — what
   Hugging Face returns as ``GPT2Model(...).hidden_states[22]`` (no final LayerNorm);
3. prediction = ``features @ coef.T + intercept`` (float64, returned as float32), rows in input order,
   columns in ROI order (the user's order when ``selection={"roi": [...]}``).

How berg runs it (same numbers, less work): only blocks 1..``layer`` are built and loaded (22 of 48,
``berg_core.features.backbones.load_backbone``), sentences are sorted by length and batched with right padding and an
attention mask (the feature is read at each row's last *real* token), under ``torch.inference_mode``,
and a sentence repeated in one call is computed once. BERG runs the full 48 blocks one sentence at a time
with autograd on, keeps all 49 hidden states, and crashes on duplicate sentences.

Precision: float32 on CPU (equal to the full model's fp32 ``hidden_states[22]``; the tests hold it to
1e-5). On a GPU the backbone runs in float16 by default (berg's GPU default, ``berg_core.device``): half
the memory (GPT2-XL's first 22 blocks take 1.4 GiB instead of 2.8 GiB; all 48 in fp32 take 5.8 GiB) and
tensor-core speed, at the cost of float16 rounding in the features (close to, but not bit-equal to,
BERG's fp32 numbers). Pass ``dtype="float32"`` for fp32 parity on a GPU (``"bfloat16"`` is accepted
too). The readout always runs in float64; predictions are returned as float32.

"Last token" is the true last token of the tokenized sentence. BERG reads the first token whose
character span reaches the end of the string; for a sentence ending in a character that byte-level BPE
splits into several tokens (an emoji, some rare unicode) that is an earlier token. On ASCII text
(BERG's training and test sentences) the two are the same token.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from berg_core import Encoder, EncoderSpec, ModelLoadError, select_outputs

if TYPE_CHECKING:
    from berg_core import Backbone
from berg_tuckute.plugin import MODEL_ID, ROIS
from berg_tuckute.weights import load_readout

TRAINED_WORDS = 6  # the training sentences all had six words
#: encoder classes that gave the six-word warning in this process (it is said once per process and class)
_LENGTH_WARNED: set[type] = set()


class SentenceLengthWarning(UserWarning):
    """Sentences other than six words long: the model was trained on six-word sentences only."""


class TuckuteEncoder(Encoder):
    """fmri-tuckute_2024-GPT2_XL: ``encode(sentences) -> (n_sentences, n_rois)`` float32, z units.

    Options (``get_encoding_model(..., **options)``): ``backbone`` (hub id or local folder, default
    ``"gpt2-xl"``), ``layer`` (default 22), ``batch_size`` (default 32), ``dtype`` (None = float32 on
    CPU / float16 on GPU), ``revision`` (hub revision of the backbone).
    """

    def __init__(self, spec: EncoderSpec, **kwargs: Any) -> None:
        super().__init__(spec, **kwargs)
        self.rois: list[str] = select_outputs(self.selection, rois=ROIS, who=MODEL_ID)  # checked before anything is loaded
        layer = self.options["layer"]  # options are typed and checked by the core (plugin.OPTIONS)
        self.readout = load_readout(self.berg_dir).select(self.rois)

        from berg_core import load_backbone

        backbone = load_backbone(str(self.options["backbone"]), layer=layer, device=self.device,
                                 dtype=self.options["dtype"], revision=self.options["revision"])
        self.backbone: Backbone | None = backbone  # None once closed
        if backbone.hidden_size != self.readout.n_features:
            hidden = backbone.hidden_size
            backbone.release()
            raise ModelLoadError(f"backbone {self.options['backbone']!r} gives {hidden}-d features but the readout "
                                 f"expects {self.readout.n_features} (GPT2-XL's width); use a GPT2-XL-shaped backbone")

    @property
    def output_names(self) -> list[str]:
        return list(self.rois)

    def _encode(self, sentences: list[str], show_progress: bool) -> np.ndarray:
        from berg_core import sentence_features

        self._warn_length(sentences)
        assert self.backbone is not None  # the core refuses to encode with a closed model
        features = sentence_features(self.backbone, sentences, batch_size=self.options["batch_size"],
                                     pooling="last", show_progress=show_progress)
        return self.readout.predict(features).astype(np.float32)

    def _warn_length(self, sentences: list[str]) -> None:
        """One warning per process (per encoder class) when some sentences do not have six words."""
        if type(self) in _LENGTH_WARNED:
            return
        other = sum(1 for s in sentences if len(s.split()) != TRAINED_WORDS)
        if other:
            _LENGTH_WARNED.add(type(self))
            warnings.warn(f"{self.model_id} was trained on six-word sentences; {other} of {len(sentences)} sentence(s) "
                          "have another word count, so their predictions are extrapolations (said once per process)",
                          SentenceLengthWarning, stacklevel=4)

    def _release(self) -> None:
        backbone, self.backbone = getattr(self, "backbone", None), None
        if backbone is not None:
            backbone.release()  # also empties the CUDA cache
