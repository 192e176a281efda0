"""Toy encoders whose outputs are simple closed-form functions of the stimulus."""

import numpy as np

from berg_core import Encoder, InvalidParameterError

from .plugin import ROIS


class LengthEncoder(Encoder):
    """Row i = scale * len(sentence_i) * (1, 2, 3) over the selected ROIs (in the user's order)."""

    def __init__(self, spec, **kwargs):
        super().__init__(spec, **kwargs)
        rois = self.selection.get("roi", list(ROIS))
        rois = [rois] if isinstance(rois, str) else list(rois)
        unknown = [r for r in rois if r not in ROIS]
        if unknown:
            raise InvalidParameterError(f"unknown ROI {unknown[0]!r}; valid ROIs: {', '.join(ROIS)}")
        self.rois = rois

    @property
    def output_names(self):
        return list(self.rois)

    def _encode(self, sentences, show_progress):
        factors = np.array([ROIS.index(r) + 1 for r in self.rois], dtype=np.float64)
        lengths = np.array([len(s) for s in sentences], dtype=np.float64)
        return self.options["scale"] * lengths[:, None] * factors[None, :]


class WordRateEncoder(Encoder):
    """Counts words per TR (2 s) into 4 identical voxels."""

    @property
    def output_names(self):
        return [f"voxel_{i}" for i in range(4)]

    def _encode(self, story, show_progress):
        n_tr = int(np.ceil((story.onsets[-1] - story.onsets[0]) / 2.0)) + 1
        counts = np.bincount(((story.onsets - story.onsets[0]) // 2.0).astype(int), minlength=n_tr)
        return np.repeat(counts[:, None], 4, axis=1)


def load_metadata(spec, subject, berg_dir):
    return {"rois": list(ROIS), "berg_dir": str(berg_dir)}
