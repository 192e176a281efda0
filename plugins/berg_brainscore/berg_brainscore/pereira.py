"""Pereira et al. (2018), experiment 384sentences, through brainscore-language's data loader.

``load_pereira384()`` returns the 384 sentences and the (384, 12155) voxel responses of the 9 subjects
who did that experiment: brainscore's ``Pereira2018.language`` assembly (243 + 384 presentations x
13553 neuroids of 10 subjects, NaN where a subject did not do an experiment) restricted to
``experiment == '384sentences'``, neuroids with any NaN dropped. Constants are import-free so that
``plugin.py`` can use them.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from berg_core import DownloadError, ResourceError

DATA_IDENTIFIER = "Pereira2018.language"
EXPERIMENT = "384sentences"
N_SENTENCES = 384
#: subjects of the 384-sentence experiment and their language-network voxel counts
VOXELS: dict[str, int] = {"018": 1358, "199": 1358, "288": 1341, "289": 1356, "296": 1323,
                          "343": 1355, "366": 1355, "407": 1352, "426": 1357}
SUBJECTS: tuple[str, ...] = tuple(VOXELS)
#: sha1 of assy_Pereira2018_language.nc in brainscore-language 2.3.0 (used if the source cannot be read)
KNOWN_SHA1 = "f8434b4022f5b2c862f0ff2854d5b3f5f2a7fb96"


@dataclass(frozen=True)
class PereiraData:
    """The 384-sentence experiment, rows in the assembly's presentation order.

    sentences (384,) str · stimulus_ids (384,) · passage_labels (384,) · responses (384, n_neuroids)
    float64 · subjects (n_neuroids,) str · neuroid_ids (n_neuroids,) str · sha1 of the source file.
    """

    sentences: list[str]
    stimulus_ids: np.ndarray
    passage_labels: np.ndarray
    responses: np.ndarray
    subjects: np.ndarray
    neuroid_ids: np.ndarray
    sha1: str

    def columns(self, subject: str) -> np.ndarray:
        """Indices of ``subject``'s neuroids, in the assembly's order."""
        cols = np.flatnonzero(self.subjects == subject)
        if cols.size == 0:
            raise ResourceError(f"the Pereira data has no voxels for subject {subject!r}; its subjects: {', '.join(sorted(set(self.subjects)))}")
        return cols

    def passages(self) -> list[np.ndarray]:
        """Row indices of each passage, passages in sorted label order, rows in presentation order."""
        return [np.flatnonzero(self.passage_labels == label) for label in sorted(set(self.passage_labels.tolist()))]

    def fit_order(self) -> np.ndarray:
        """Row order used for fitting: sorted by stimulus_id (stable), as brainscore-vision's ``XarrayRegression.fit``
        sorts both assemblies (``sortby('stimulus_id')``; ids are text, so "384sentences.10" comes before ".2")."""
        return np.argsort(self.stimulus_ids, kind="stable")


def data_sha1() -> str:
    """The sha1 brainscore checks for ``Pereira2018.language``, read from its data folder (no import)."""
    from berg_brainscore.enumerate import package_dir

    try:
        init = package_dir() / "data" / "pereira2018" / "__init__.py"
        tree = ast.parse(init.read_text(encoding="utf-8"))
    except Exception:  # brainscore's layout changed or unreadable: fall back to the known value
        return KNOWN_SHA1
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            kwargs = {kw.arg: kw.value for kw in node.keywords}
            ident, sha1 = kwargs.get("identifier"), kwargs.get("sha1")
            if isinstance(ident, ast.Constant) and ident.value == DATA_IDENTIFIER and isinstance(sha1, ast.Constant):
                return str(sha1.value)
    return KNOWN_SHA1


def brainio_home() -> Path:
    """Where brainscore caches downloaded data (``$BRAINIO_HOME``, default ``~/.brainio``)."""
    return Path(os.path.expanduser(os.environ.get("BRAINIO_HOME", "~/.brainio")))


def load_assembly(model_id: str | None = None) -> Any:
    """brainscore's ``load_dataset('Pereira2018.language')``; any failure to get it is a ``DownloadError``."""
    from berg_brainscore.runtime import brainscore

    bs = brainscore()
    try:
        return bs.load_dataset(DATA_IDENTIFIER)
    except Exception as exc:  # brainscore raises a bare Exception([signed_error, unsigned_error]) offline
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        again = f"`berg fetch {model_id}`" if model_id else "the load"
        raise DownloadError(
            f"could not get Brain-Score's {DATA_IDENTIFIER} data (~70 MB from the brainscore-storage S3 bucket, cached under "
            f"{brainio_home() / data_sha1()}): {detail}; check the network connection and run {again} again"
        ) from exc


def load_pereira384(model_id: str | None = None) -> PereiraData:
    """The 384-sentence experiment (downloads brainscore's file on first use, then reads its cache)."""
    assembly = load_assembly(model_id)
    try:
        experiment = np.asarray(assembly["experiment"].values).astype(str)
        rows = np.flatnonzero(experiment == EXPERIMENT)
        values = np.asarray(assembly.values, dtype=np.float64)[rows]
        keep = ~np.isnan(values).any(axis=0)
        text_coord = "sentence" if "sentence" in assembly.coords else "stimulus"  # BERG's gateway reads 'sentence' (same text)
        data = PereiraData(
            sentences=[str(s) for s in np.asarray(assembly[text_coord].values)[rows]],
            stimulus_ids=np.asarray(assembly["stimulus_id"].values)[rows],
            passage_labels=np.asarray(assembly["passage_label"].values).astype(str)[rows],
            responses=values[:, keep],
            subjects=np.asarray(assembly["subject"].values).astype(str)[keep],
            neuroid_ids=np.asarray(assembly["neuroid_id"].values).astype(str)[keep],
            sha1=data_sha1(),
        )
    except KeyError as exc:
        raise ResourceError(f"brainscore's {DATA_IDENTIFIER} assembly lacks coordinate {exc}; is brainscore-language 2.3.0 installed?") from exc
    if len(data.sentences) != N_SENTENCES:
        raise ResourceError(f"{DATA_IDENTIFIER} has {len(data.sentences)} rows for {EXPERIMENT}, expected {N_SENTENCES}; the file may be corrupt "
                            f"(delete {brainio_home() / data.sha1} and load again)")
    return data
