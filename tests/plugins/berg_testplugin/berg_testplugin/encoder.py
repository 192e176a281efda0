"""Toy encoders whose outputs are simple closed-form functions of the stimulus.

Both end in a ``berg_core.LinearReadout`` and pick their outputs with ``berg_core.select_outputs``,
as a real family does.
"""

from pathlib import Path
from typing import Any

import numpy as np

from berg_core import Encoder, EncoderSpec, LinearReadout, TimedWords, select_outputs

from .plugin import ROIS, VOXEL_ROIS

N_VOXELS = 4


class LengthEncoder(Encoder):
    """Row i = scale * len(sentence_i) * (1, 2, 3) over the selected ROIs (in the user's order).

    One feature (the scaled length) read out by coef (1, 2, 3) per ROI, no intercept.
    """

    def __init__(self, spec: EncoderSpec, **kwargs: Any) -> None:
        super().__init__(spec, **kwargs)
        self.rois = select_outputs(self.selection, rois=ROIS)
        full = LinearReadout(np.arange(1.0, len(ROIS) + 1)[:, None], np.zeros(len(ROIS)), ROIS)
        self.readout = full.select(self.rois)

    @property
    def output_names(self) -> list[str]:
        return list(self.rois)

    def _encode(self, sentences: list[str], show_progress: bool) -> np.ndarray:
        lengths = np.array([len(s) for s in sentences], dtype=np.float64)
        return self.readout.predict(self.options["scale"] * lengths[:, None])


class WordRateEncoder(Encoder):
    """Counts words per TR (2 s) into 4 identical voxels; ``roi`` (``VOXEL_ROIS``) ∪ ``voxel_index`` selects voxels."""

    def __init__(self, spec: EncoderSpec, **kwargs: Any) -> None:
        super().__init__(spec, **kwargs)
        self.columns = select_outputs(self.selection, n_outputs=N_VOXELS, roi_voxels=VOXEL_ROIS, who=self.model_id)
        names = [f"voxel_{i}" for i in range(N_VOXELS)]
        self.readout = LinearReadout(np.ones((N_VOXELS, 1)), np.zeros(N_VOXELS), tuple(names)).select(self.columns)

    @property
    def output_names(self) -> list[str]:
        return list(self.readout.output_names)

    def _encode(self, story: TimedWords, show_progress: bool) -> np.ndarray:
        n_tr = int(np.ceil((story.onsets[-1] - story.onsets[0]) / 2.0)) + 1
        counts = np.bincount(((story.onsets - story.onsets[0]) // 2.0).astype(int), minlength=n_tr)
        return self.readout.predict(counts[:, None])


def load_metadata(spec: EncoderSpec, subject: str | None, berg_dir: Path) -> dict[str, Any]:
    return {"rois": list(ROIS), "berg_dir": str(berg_dir)}
