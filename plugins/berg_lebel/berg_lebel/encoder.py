"""``LebelEncoder``: a story (words + onsets) -> predicted BOLD (n_TRs, n_selected_voxels), BERG's 9 steps.

1. stimulus checked by the core (same lengths, finite non-decreasing onsets, str words);
2-4. word features: ``berg_core.features.words`` (BOS, per-word tokens, last token, 512/256-word dynamic
   context run as batched windows, OPT truncated after block ``layer``), cached per story with
   ``berg_core.features.cache`` so several subjects run OPT once;
5. TR grid ``t_k = onsets[0] + k·2 s``, k < ceil((onsets[-1] + 8 s − onsets[0]) / 2 s);
6. Lanczos resampling (window 3, unnormalised) as one sparse matrix product (float32, as BERG accumulates);
7. z-score per feature over this stimulus's TRs (ddof 0);
8. FIR delays 1-4 TRs, delay-major (column (d−1)·hidden + j);
9. product with the selected weight columns (float32; no intercept): a ``berg_core.readout.LinearReadout``.

Selection (``roi`` ∪ ``voxel_index``, ascending voxel order): ``berg_core.selection.select_outputs``; the output
columns' ROI membership: ``column_groups``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from berg_core import (
    BergError,
    Encoder,
    InvalidParameterError,
    LinearReadout,
    ModelLoadError,
    TimedWords,
    as_timed_words,
    select_outputs,
)
from berg_lebel import weights as weights_io

TR_S = 2.0
DELAYS = (1, 2, 3, 4)
LANCZOS_WINDOW = 3
MIN_TRS = 10
EXTRA_TRS = 4  # the TR grid runs 4 TRs past the last onset
MAX_WORDS = 512
KEEP_WORDS = 256


class LebelEncoder(Encoder):
    """OPT-1.3B layer-18 features -> voxelwise ridge (LeBel 2023). See the module docstring for the steps.

    Options: ``backbone`` (hub id or local folder), ``layer``, ``revision``, ``dtype`` (default float32
    on CPU, float16 on GPU), ``batch_size`` (context windows per forward pass), ``feature_cache``
    (reuse word features across subjects/processes), ``progress`` (bars while fetching/converting).
    The backbone is loaded on the first feature computation (a cached story never loads it).
    """

    def __init__(self, spec: Any, **kwargs: Any) -> None:
        super().__init__(spec, **kwargs)
        opts = self.options  # typed and checked by the core (the Options in plugin.py)
        from berg_core import default_dtype

        self.dtype = str(opts["dtype"] or default_dtype(self.device))
        show = bool(opts["progress"])
        assert self.subject is not None  # the spec has subjects; the base class checked it
        self._metadata = weights_io.load_metadata_dict(self.subject, self.berg_dir, show_progress=show)
        n_features, n_vox = weights_io.weights_shape(self.subject, self.berg_dir, show_progress=show)
        meta_n = weights_io.n_voxels(self._metadata)
        if meta_n is not None and meta_n != n_vox:
            raise ModelLoadError(f"{self.subject}: metadata says {meta_n} voxels, the weights have {n_vox}; delete both files and re-fetch them")
        self.n_voxels = n_vox
        masks = weights_io.roi_masks(self._metadata, self.subject) if "roi" in self.selection else None
        selected = select_outputs(self.selection, n_outputs=n_vox, roi_voxels=masks, subject=self.subject)
        self.columns: np.ndarray | None = None if len(selected) == n_vox else selected  # None: every voxel
        self.hidden_size, self.revision = self._probe_backbone(n_features)
        weights = weights_io.load_weight_columns(self.subject, self.berg_dir, self.columns, show_progress=show)
        self.readout = LinearReadout.from_columns(weights, None, self.output_names)
        self._backbone: Any = None

    # -- backbone --------------------------------------------------------------------------------
    def _probe_backbone(self, n_features: int) -> tuple[int, str]:
        """Check the backbone exists and fits the weights (config only); return (hidden size, revision)."""
        from berg_core import backbone_config, backbone_revision

        name, layer = self.options["backbone"], self.options["layer"]
        config = backbone_config(name, self.options["revision"])  # no custom code; one line when missing or offline
        n_layers = int(getattr(config, "num_hidden_layers", 0))
        if layer > n_layers:
            raise InvalidParameterError(f"layer must be an int in 0..{n_layers} for {name!r}, got {layer}")
        hidden = int(getattr(config, "hidden_size", getattr(config, "n_embd", 0)))
        if hidden * len(DELAYS) != n_features:
            raise ModelLoadError(f"backbone {name!r} gives {hidden}-d features ({hidden * len(DELAYS)} after {len(DELAYS)} delays) "
                                 f"but {self.subject}'s weights have {n_features} rows; use the backbone the weights were trained with")
        revision = getattr(config, "_commit_hash", None)
        return hidden, backbone_revision(name, self.options["revision"] or revision)

    def _check_open(self) -> None:
        if self._closed:
            raise BergError(f"{self.model_id} was closed; load it again with get_encoding_model")

    def _load_backbone(self) -> Any:
        self._check_open()
        if self._backbone is None:
            from berg_core import load_backbone

            self._backbone = load_backbone(self.options["backbone"], layer=self.options["layer"], device=self.device,
                                           dtype=self.dtype, revision=self.options["revision"])
        return self._backbone

    # -- steps -----------------------------------------------------------------------------------
    def word_features(self, words: list[str], show_progress: bool = False) -> np.ndarray:
        """Steps 2-4: float32 (n_words, hidden) read-only (cached per story unless ``feature_cache=False``)."""
        from berg_core import cached_features, word_features, word_features_key

        self._check_open()
        key = word_features_key(backbone=self.options["backbone"], revision=self.revision, layer=self.options["layer"],
                                dtype=self.dtype, words=words, max_words=MAX_WORDS, keep_words=KEEP_WORDS)

        def compute() -> np.ndarray:
            return word_features(self._load_backbone(), words, max_words=MAX_WORDS, keep_words=KEEP_WORDS,
                                 batch_size=self.options["batch_size"], show_progress=show_progress)

        return cached_features(key, compute, enabled=bool(self.options["feature_cache"]), shape=(len(words), self.hidden_size),
                               dtype=np.float32)

    def features(self, stimulus: Any, show_progress: bool = False) -> np.ndarray:
        """Steps 1-8: the delayed, z-scored TR features, float32 (n_TRs, len(DELAYS) * hidden)."""
        self._check_open()
        story = stimulus if isinstance(stimulus, TimedWords) else as_timed_words(stimulus)
        from berg_core import delay, lanczos_resample, tr_grid, zscore

        feats = self.word_features(story.words, show_progress)
        times = tr_grid(story.onsets, tr=TR_S, extra_trs=EXTRA_TRS)
        if len(times) < MIN_TRS:
            warnings.warn(f"the stimulus spans only {len(times)} TRs (< {MIN_TRS}): per-stimulus z-scoring over so few TRs is "
                          "degenerate and predictions will be unreliable; encode a longer story", UserWarning, stacklevel=3)
        resampled = lanczos_resample(feats, story.onsets, times, tr=TR_S, window=LANCZOS_WINDOW, dtype=np.float32)
        return delay(zscore(resampled), DELAYS, mode="fir").astype(np.float32)

    def _encode(self, stimulus: TimedWords, show_progress: bool) -> np.ndarray:
        return self.readout.predict(self.features(stimulus, show_progress))

    def row_labels(self, stimulus: TimedWords) -> tuple[str, list[float]]:
        """The rows are TRs: their onset times in seconds (``tr_grid``, the times the features are resampled to)."""
        from berg_core import tr_grid

        return "tr_onset_s", [float(t) for t in tr_grid(stimulus.onsets, tr=TR_S, extra_trs=EXTRA_TRS)]

    def voxel_space(self) -> Any:
        """The subject's functional space (``VoxelSpace``): pycortex mask_thick + reference, fetched on first use."""
        from berg_core import VoxelSpace

        assert self.subject is not None
        mask, reference = weights_io.space_files(self.subject, show_progress=bool(self.options["progress"]))
        return VoxelSpace(mask, reference, self.n_voxels, TR_S)

    def selected_voxels(self) -> np.ndarray | None:
        """Indices of the output columns among the subject's voxels (None: every voxel)."""
        return self.columns

    def column_groups(self) -> dict[str, np.ndarray]:
        """Each of the subject's ROIs (metadata ``roi`` masks) as a boolean mask over the output columns (the selected
        voxels, ascending); the core turns them into column indices and drops ROIs with no selected voxel."""
        assert self.subject is not None
        masks = weights_io.roi_masks(self.metadata, self.subject)
        return {name: mask if self.columns is None else mask[self.columns] for name, mask in masks.items()}

    @property
    def output_names(self) -> list[str]:
        cols = range(self.n_voxels) if self.columns is None else self.columns.tolist()
        return [f"voxel_{i}" for i in cols]

    def _release(self) -> None:
        if self._backbone is not None:
            self._backbone.release()
        self._backbone = None
        self.readout = self.readout.select([])  # frees the weights
