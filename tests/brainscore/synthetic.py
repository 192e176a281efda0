"""A synthetic stand-in for brainscore's ``Pereira2018.language`` assembly (nothing is downloaded).

Same layout as the real file: presentations of both experiments (243sentences: 81 passages x 3;
384sentences: 96 passages x 4 in 24 topics) x neuroids of 10 subjects, NaN where a subject did not do an
experiment (subject 215 did only 243sentences, subject 018 only 384sentences), and the real coordinate
names (experiment, stimulus_num, sentence, stimulus, passage_index, passage_label, passage_category,
stimulus_id = "<experiment>.<stimulus_num>", story; subject, voxel_num, neuroid_id = "<subject>.<voxel>").
The 384-sentence part is 384 x a few hundred voxels. ``shuffle=True`` permutes the presentations within each
experiment and the neuroids across subjects, so that the assembly's order, the ``stimulus_id`` sort order
(text: "384sentences.10" < "384sentences.2"), the passage order and the subject blocks all differ: a
reader that aligns rows or neuroids by any other rule than the one tested gets other numbers.

``install()`` puts it into brainscore's ``data_registry`` so that ``brainscore_language.load_dataset``
returns it; also usable from a subprocess (``python -c "import synthetic; synthetic.install()"``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

SUBJECTS_384 = ("018", "199", "288", "289", "296", "343", "366", "407", "426")
ONLY_243 = "215"
WORDS = ("river apple doctor violin engine garden winter music pilot island window mountain student camera forest "
         "bridge coffee ocean village teacher market castle desert harbor lantern meadow museum orchard painter "
         "planet rabbit saddle temple thunder tunnel valley wagon whale kitchen blanket candle feather glacier").split()
VERBS = "watched carried painted followed crossed repaired described visited opened found built heard".split()


def voxel_counts() -> dict[str, int]:
    """Voxels per subject (distinct counts so that column selection errors show)."""
    counts = {s: 28 + 3 * i for i, s in enumerate(SUBJECTS_384)}
    counts[ONLY_243] = 20
    return counts


def _sentence(rng: np.random.Generator, index: int) -> str:
    n = int(rng.integers(7, 19))
    words = [str(w) for w in rng.choice(WORDS, size=n - 3)]
    return f"The {words[0]} {rng.choice(VERBS)} {' '.join(words[1:])} number {index}."


def make_assembly(seed: int = 0, counts: dict[str, int] | None = None, shuffle: bool = False):
    """The synthetic NeuroidAssembly, (243 + 384) presentations x sum(counts) neuroids (default ``voxel_counts()``);
    ``shuffle``: presentations permuted within each experiment, neuroids permuted (subjects interleaved)."""
    from brainscore_core.supported_data_standards.brainio.assemblies import NeuroidAssembly

    rng = np.random.default_rng(seed)
    pres: dict[str, list] = {k: [] for k in ("experiment", "stimulus_num", "sentence", "passage_index", "passage_label", "passage_category")}
    for experiment, n_passages, per_passage in (("243sentences", 81, 3), ("384sentences", 96, 4)):
        for p in range(n_passages):
            topic = f"topic{p % 24:02d}"
            for k in range(per_passage):
                num = p * per_passage + k
                pres["experiment"].append(experiment)
                pres["stimulus_num"].append(num)
                pres["sentence"].append(_sentence(rng, len(pres["sentence"])))
                pres["passage_index"].append(p + 1)
                pres["passage_label"].append(f"{topic}_passage{p:02d}")
                pres["passage_category"].append(topic)
    n_pres = len(pres["sentence"])
    counts = counts or voxel_counts()
    subjects = [s for s, n in counts.items() for _ in range(n)]
    voxels = [v for s, n in counts.items() for v in range(n)]
    values = rng.standard_normal((n_pres, len(subjects)))
    experiment = np.array(pres["experiment"])
    subject_arr = np.array(subjects)
    values[np.ix_(experiment == "384sentences", subject_arr == ONLY_243)] = np.nan
    values[np.ix_(experiment == "243sentences", subject_arr == "018")] = np.nan
    if shuffle:
        perm = np.random.default_rng(seed + 1)
        rows = np.concatenate([perm.permutation(np.flatnonzero(experiment == e)) for e in ("243sentences", "384sentences")])
        cols = perm.permutation(len(subjects))
        pres = {name: [vals[i] for i in rows] for name, vals in pres.items()}
        values = values[np.ix_(rows, cols)]
        subjects, voxels = [subjects[j] for j in cols], [voxels[j] for j in cols]
    coords = {name: ("presentation", vals) for name, vals in pres.items()}
    coords["stimulus"] = ("presentation", list(pres["sentence"]))
    coords["stimulus_id"] = ("presentation", [f"{e}.{n}" for e, n in zip(pres["experiment"], pres["stimulus_num"])])
    coords["story"] = ("presentation", [f"{e}.{c}" for e, c in zip(pres["experiment"], pres["passage_category"])])
    coords["subject"] = ("neuroid", subjects)
    coords["voxel_num"] = ("neuroid", voxels)
    coords["neuroid_id"] = ("neuroid", [f"{s}.{v}" for s, v in zip(subjects, voxels)])
    coords["atlas"] = ("neuroid", ["language"] * len(subjects))
    return NeuroidAssembly(values, coords=coords, dims=["presentation", "neuroid"], attrs={"identifier": "Pereira2018.language"})


def install(seed: int = 0, calls_file: str | os.PathLike[str] | None = None, monkeypatch=None, counts: dict[str, int] | None = None,
            shuffle: bool = False) -> None:
    """Make ``load_dataset('Pereira2018.language')`` return the synthetic assembly.

    ``calls_file``: append a line there on every load (to count loads across processes).
    """
    os.environ["BS_INSTALL_DEPENDENCIES"] = "no"
    import brainscore_language.data.pereira2018  # noqa: F401 - registers the real loader, which we then replace
    from brainscore_language import data_registry

    assembly = make_assembly(seed, counts, shuffle)

    def loader():
        if calls_file is not None:
            with open(calls_file, "a") as f:
                f.write("load\n")
        return assembly.copy()

    if monkeypatch is not None:
        monkeypatch.setitem(data_registry, "Pereira2018.language", loader)
    else:
        data_registry["Pereira2018.language"] = loader


def the_384(seed: int = 0, shuffle: bool = False):
    """(sentences, stimulus_ids, passage_labels, values, subjects, neuroid_ids) of the 384 part in the assembly's
    order, NaN columns dropped."""
    a = make_assembly(seed, shuffle=shuffle)
    rows = np.asarray(a["experiment"].values) == "384sentences"
    values = np.asarray(a.values)[rows]
    keep = ~np.isnan(values).any(axis=0)
    return ([str(s) for s in np.asarray(a["stimulus"].values)[rows]], np.asarray(a["stimulus_id"].values)[rows],
            np.asarray(a["passage_label"].values)[rows], values[:, keep], np.asarray(a["subject"].values)[keep],
            np.asarray(a["neuroid_id"].values)[keep])


HERE = Path(__file__).resolve().parent
