"""``Text2fMRIEncoder``: one str per TR -> Qwen2 last-four-mean features per TR -> the transformer head -> parcels.

Steps (spec text2fmri.md; parity target = BERG's ``cneuromod_algo2025_text2fmri.py`` @ cc5730f): per-TR features
(``berg_text2fmri.features``), then the head (``berg_text2fmri.head``) of the chosen variant for the subject's
embedding row, only for the selected parcels. Both the language model and the head are built from the variant's
``config.json`` (BERG built both from the default config whatever the variant).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from berg_core import Encoder, EncoderSpec, ModelLoadError, select_outputs
from berg_text2fmri.labels import parcel_labels
from berg_text2fmri.plugin import MODEL_ID, N_PARCELS, SUBJECT_INDEX, hub_cache
from berg_text2fmri.revisions import cached_commit, is_commit, lock_resolved
from berg_text2fmri.weights import (
    backbone_request,
    load_head,
    load_roi_masks,
    read_config,
    shipped_masks,
    show_licence_once,
    variant_folder,
)

if TYPE_CHECKING:
    from berg_core import Backbone

#: above this many TRs in one call, a warning: the head was trained on shorter windows and every row sees the whole call
LONG_RUN_TRS = 600


class Text2fMRIEncoder(Encoder):
    """fmri-cneuromod_algo2025-text2fmri: ``encode(tr_texts) -> (n_TR, n_sel_parcels)`` float32.

    Options: ``model_variant``, ``backbone`` (default: the variant's ``extractor_LLM``), ``dtype`` (default: the
    variant's, float16, on a GPU; float32 on CPU), ``low_mem_use``. Selection: ``roi`` (networks) ∪ ``voxel_index`` (0/1 over 1000 parcels).
    """

    def __init__(self, spec: EncoderSpec, **kwargs: Any) -> None:
        super().__init__(spec, **kwargs)
        subject = str(self.subject)
        self.subject_row = SUBJECT_INDEX[subject]
        self.labels = parcel_labels()
        load_roi_masks(self.berg_dir)  # BERG's metadata: must agree with the shipped table (one-line error otherwise)
        self.parcels = select_outputs(self.selection, n_outputs=N_PARCELS, roi_voxels=shipped_masks(), who=MODEL_ID,
                                      subject=subject)
        variant_name = str(self.options["model_variant"])
        folder, variant = variant_folder(variant_name)
        self.config = read_config(folder)
        if self.subject_row >= int(self.config["num_subjects"]) or int(self.config["num_rois"]) != N_PARCELS:
            raise ModelLoadError(f"{folder}/config.json is for {self.config['num_subjects']} subjects x {self.config['num_rois']} "
                                 f"parcels, not the 4 x {N_PARCELS} of {MODEL_ID}")
        self.backbone_name = str(self.options["backbone"] or self.config["extractor_LLM"])
        # the table's commit, else the one locked on first use, else "main" (locked to what it resolves to at load)
        self.backbone_revision, self._backbone_fixed = (None, True) if self.options["backbone"] else \
            backbone_request(variant, self.backbone_name)
        #: the commits read: the head's (None for a local folder) and the language model's (output attribute
        #: ``backbone_revision``; known once it is loaded unless locked or pinned)
        self.head_revision = variant.revision if variant else None
        self.revision: str | None = self.backbone_revision
        # BERG runs the LM in the config's dtype (float16) even on CPU; berg: that dtype on a GPU, float32 on CPU
        self.dtype = str(self.options["dtype"] or (self.config["extractor_LLM_dtype"] if self.device != "cpu" else "float32"))
        self.head = load_head(folder, self.config, self.device)
        show_licence_once(folder, variant_name)
        self.backbone: Backbone | None = None
        if not self.options["low_mem_use"]:
            self.backbone = self._load_backbone()

    def _load_backbone(self) -> Backbone:
        from berg_core import backbone_config, load_backbone

        n_layers = int(backbone_config(self.backbone_name, self.backbone_revision).num_hidden_layers)
        backbone = load_backbone(self.backbone_name, layer=n_layers, device=self.device, dtype=self.dtype,
                                 revision=self.backbone_revision)
        if backbone.revision != "local":  # a hub id: the commit read (transformers may report only the branch name)
            commit = backbone.revision if is_commit(backbone.revision) else cached_commit(self.backbone_name, self.backbone_revision, hub_cache())
            self.revision = commit or backbone.revision
            if not self._backbone_fixed and commit:
                lock_resolved(self.backbone_name, commit)
                self.backbone_revision, self._backbone_fixed = commit, True
        if backbone.hidden_size != int(self.config["extractor_LLM_feature_size"]) or not hasattr(backbone.model, "norm"):
            backbone.release()
            raise ModelLoadError(f"backbone {self.backbone_name!r} gives {backbone.hidden_size}-d states but the head expects "
                                 f"{self.config['extractor_LLM_feature_size']} from a Qwen2 model; use the variant's extractor_LLM")
        return backbone

    @property
    def output_names(self) -> list[str]:
        """The selected parcels' Schaefer label names (``7Networks_LH_Vis_1`` ...), in label order."""
        return [self.labels[i] for i in self.parcels]

    def column_groups(self) -> dict[str, NDArray[np.bool_]]:
        """Each of the 7 networks as a boolean mask over the output columns (the selected parcels, ascending)."""
        return {net: mask[self.parcels] for net, mask in shipped_masks().items()}

    def tr_features(self, trs: list[str]) -> NDArray[np.float32]:
        """(n_TR, d) float32 language-model features per TR (``berg_text2fmri.features``)."""
        from berg_text2fmri.features import tr_features

        backbone = self.backbone or self._load_backbone()
        try:
            positions = getattr(backbone.model.config, "max_position_embeddings", None)
            return tr_features(backbone.model, backbone.tokenizer, trs, device=self.device,
                               max_tokens=int(positions) if positions else None)
        finally:
            if self.options["low_mem_use"]:
                backbone.release()

    def _encode(self, trs: list[str], show_progress: bool) -> NDArray[np.float32]:
        import warnings

        import torch

        if len(trs) > LONG_RUN_TRS:
            warnings.warn(f"{len(trs)} TRs in one call: the head is bidirectional, so every row depends on the whole call; "
                          f"runs of a few hundred TRs are closer to its training", stacklevel=2)
        feats = torch.as_tensor(self.tr_features(trs), device=self.device)
        with torch.inference_mode():
            out = self.head(feats, self.subject_row, torch.as_tensor(self.parcels, device=self.device))
        return np.ascontiguousarray(out.float().cpu().numpy(), dtype=np.float32)

    def _release(self) -> None:
        backbone, self.backbone = getattr(self, "backbone", None), None
        if backbone is not None:
            backbone.release()
        self.head = None  # type: ignore[assignment]
