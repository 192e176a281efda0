"""Trained encoders: a self-describing folder that ``berg encode`` loads, and the generic family behind it.

A trained-encoder folder (written by ``berg train``, shippable inside a plugin package) holds:

* ``berg_encoder.json`` — the card (``CARD_FILE``): format, model_id, description, stimulus kind
  (``"sentences"`` | ``"timed_words"``), ``feature_spaces`` (one entry per space: name, backbone (hub id or
  local folder), revision, layer, pooling, n_features, reduce), ``delays`` + ``delay_mode``, ``tr``,
  ``outputs`` (n, names), ``rois`` (name -> voxel indices), ``weights`` (file names), ``scores``,
  ``training`` (provenance), ``card`` (free text), optionally ``space`` (the subject space the outputs are voxels
  of: ``mask`` and ``reference`` NIfTI file names in the folder, ``n_voxels``, ``name``, their ``sha256``).
* ``weights.h5`` — the ridge weights, (n_weight_rows, n_outputs) float32, column-chunked HDF5
  (``berg_core.store.h5matrix``) so a voxel selection reads only its columns. Rows: feature spaces in card
  order; inside a space, FIR delays delay-major (row ``i·d + j`` = reduced feature j at ``delays[i]``).
* ``arrays.npz`` — ``intercept`` (n_outputs,), per space ``pca_mean_{k}``/``pca_components_{k}`` when
  reduced, and per-voxel training scores (``cv_cc``, ``cc``, ``alphas``).

Prediction, per feature space k: features → PCA (if any) → (timed words only) delays → concatenate
spaces → ``@ W + intercept``.
* ``sentences``: ``berg_core.features.backbones.sentence_features`` of the space's backbone/layer/pooling (``last`` or
  ``mean`` token), one row per sentence; delays do not apply.
* ``timed_words``: ``berg_core.features.words.word_features`` (dynamic context windows) → Lanczos onto
  ``tr_grid(onsets, tr)`` → z-score over TRs → PCA → delays. ``stimulus_features`` exposes the part
  before PCA/delays, so training features can be computed exactly as the encoder will.

Integrity: the card pins the sha256 of ``weights.h5`` and ``arrays.npz`` (``weights.sha256``), checked
on every load (and of the space's files, ``space.sha256``, checked when a volume is written), and the weights' HDF5 shape/dtype must be the ones the card records. ``berg train`` writes
the whole folder into a hidden sibling and switches it in at once (``staged_folder``), so a killed
``berg train --out EXISTING --overwrite`` leaves the old encoder or the new one, never a mix.

This module imports only the standard library and numpy at import time (``berg list`` stays light);
h5py, torch and transformers are imported when an encoder is loaded.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from berg_core import (
    Encoder,
    EncoderSpec,
    InvalidParameterError,
    LinearReadout,
    ModelLoadError,
    ResourceError,
    atomic_folder,
    select_outputs,
)
from berg_core.trained.cards import (  # noqa: F401  (re-exported: the card API lives there)
    ARRAYS_FILE,
    CARD_FILE,
    FAMILY,
    FORMAT,
    PATH_ENV,
    SPACE_FILES,
    WEIGHTS_FILE,
    card_files,
    check_card,
    file_sha256,
    find_encoder_dirs,
    is_encoder_dir,
    output_names,
    read_card,
    register_encoder_dirs,
    register_package_encoders,
    regular_file,
    spec_from_dir,
    verify_files,
    verify_space_files,
)

#: per-output training scores kept in ``arrays.npz``
SCORE_ARRAYS = ("cv_cc", "cc", "alphas", "pvalues_corrected")


def load_metadata(spec: EncoderSpec, subject: str | None, berg_dir: Path) -> dict[str, Any]:
    """The card plus the per-output training scores (``cv_cc``, ``cc``, ``alphas``) as arrays."""
    folder = Path(spec.params["path"])
    card = read_card(folder)
    meta: dict[str, Any] = {"model_id": spec.model_id, "card": card, "output_names": output_names(card)}
    arrays = verify_files(folder, card, spec.model_id, keys=("arrays",))["arrays"]
    n_out = int(card["outputs"]["n"])
    meta["encoding_model"] = load_arrays(arrays, {k: (n_out,) for k in SCORE_ARRAYS}, required=(), who=spec.model_id)
    return meta



def load_arrays(path: Path, shapes: Mapping[str, tuple[int, ...]], *, required: Sequence[str], who: str) -> dict[str, np.ndarray]:
    """Float arrays ``shapes`` keys from an ``.npz`` (absent optional keys skipped), each header checked first.

    Every member must be stored uncompressed with a float dtype and exactly the expected shape, so
    nothing larger than the file itself is ever allocated; otherwise ``ModelLoadError`` naming the file.
    """
    import zipfile

    from numpy.lib import format as npformat

    def bad(why: str) -> ModelLoadError:
        return ModelLoadError(f"{who}: {path} is damaged ({why}); re-run `berg train` or reinstall the encoder")

    try:
        with zipfile.ZipFile(path) as zf:
            members = {info.filename.removesuffix(".npy"): info for info in zf.infolist()}
            for key, shape in shapes.items():
                info = members.get(key)
                if info is None:
                    if key in required:
                        raise bad(f"it has no {key!r} array")
                    continue
                if info.compress_type != zipfile.ZIP_STORED:
                    raise bad(f"{key!r} is compressed")
                with zf.open(info) as fh:
                    version = npformat.read_magic(fh)
                    if version not in ((1, 0), (2, 0)):
                        raise bad(f"{key!r} has .npy format version {version}")
                    reader = npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
                    got, _fortran, dtype = reader(fh)
                if dtype.kind != "f" or dtype.itemsize not in (4, 8):
                    raise bad(f"{key!r} has dtype {dtype}, not float32/float64")
                if tuple(got) != tuple(shape):
                    raise bad(f"{key!r} has shape {tuple(got)}, the card implies {tuple(shape)}")
                if math.prod(shape) * dtype.itemsize > info.file_size:
                    raise bad(f"{key!r} is shorter than its header says")
            with np.load(path, allow_pickle=False) as npz:
                return {k: np.asarray(npz[k]) for k in shapes if k in members}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        raise bad(str(exc)) from exc


def read_weights(path: Path, card: Mapping[str, Any], columns: np.ndarray | None, who: str) -> np.ndarray:
    """Columns ``columns`` (None: all) of the HDF5 weights, float32 (n_weight_rows, n_selected).

    The file must hold every byte of the card's (rows, cols) float32 matrix (checked before anything is
    allocated) and its HDF5 shape/dtype must be the card's (``h5matrix`` checks them before reading).
    """
    from berg_core import read_columns

    rows, cols = card["weights"]["shape"]
    fix = "the encoder folder is inconsistent; re-run `berg train` or reinstall it"
    if regular_file(path, what=who).st_size < rows * cols * 4:
        raise ModelLoadError(f"{who}: {path} is smaller than its ({rows}, {cols}) float32 matrix; it is truncated or sparse ({fix})")
    return read_columns(path, columns, expect_dtype="<f4", expect_shape=(rows, cols), fix=fix)


# ------------------------------------------------------------------------------------------------
# writing an encoder folder
# ------------------------------------------------------------------------------------------------
def write_encoder_dir(
    out: str | os.PathLike[str],
    *,
    card: Mapping[str, Any],
    coef: np.ndarray,
    intercept: np.ndarray,
    pca: Sequence[tuple[np.ndarray, np.ndarray] | None] = (),
    arrays: Mapping[str, np.ndarray] | None = None,
    show_progress: bool = False,
) -> Path:
    """Write card + weights + arrays into the folder ``out`` (created). ``pca[k]`` = (mean, components) of space k.

    The card gets ``format``, ``outputs.n`` and ``weights`` (file names, shape, dtype and the sha256 of
    both files) filled in, and is checked with ``check_card`` before it is written, last. ``berg train``
    calls this inside ``staged_folder``, which makes the whole folder appear at once.
    """
    from berg_core import write_matrix

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    coef = np.asarray(coef)
    intercept = np.asarray(intercept).reshape(-1)
    if coef.ndim != 2 or intercept.shape[0] != coef.shape[1]:
        raise InvalidParameterError(f"coef must be (n_features, n_outputs) and intercept (n_outputs,); got {coef.shape}, {intercept.shape}")
    write_matrix(folder / WEIGHTS_FILE, coef, dtype="float32", show_progress=show_progress, desc="writing weights")
    extra: dict[str, np.ndarray] = {"intercept": intercept.astype(np.float32)}
    for k, item in enumerate(pca):
        if item is not None:
            extra[f"pca_mean_{k}"] = np.asarray(item[0], dtype=np.float64)
            extra[f"pca_components_{k}"] = np.asarray(item[1], dtype=np.float64)
    for key, value in (arrays or {}).items():
        extra[key] = np.asarray(value)
    with open(folder / ARRAYS_FILE, "wb") as fh:
        np.savez(fh, **extra)  # type: ignore[arg-type]  # numpy's stub types **kwds as the first positional's `allow_pickle`
    full = dict(card)
    full["format"] = FORMAT
    full["outputs"] = {**dict(card.get("outputs") or {}), "n": int(coef.shape[1])}
    full["weights"] = {"file": WEIGHTS_FILE, "arrays": ARRAYS_FILE, "shape": list(coef.shape), "dtype": "float32",
                       "sha256": {name: file_sha256(folder / name) for name in (WEIGHTS_FILE, ARRAYS_FILE)}}
    if card.get("space") is not None:  # its files are already in the folder: pin them like the weights
        space = dict(card["space"])
        space["sha256"] = {space[key]: file_sha256(folder / space[key]) for key in SPACE_FILES}
        full["space"] = space
    text = json.dumps(full, indent=2, default=_json_default) + "\n"
    try:
        check_card(json.loads(text), folder / CARD_FILE)
    except ModelLoadError as exc:
        raise InvalidParameterError(f"the encoder card would not be readable: {exc}") from exc
    (folder / CARD_FILE).write_text(text, encoding="utf-8")
    return folder


# ------------------------------------------------------------------------------------------------
# writing a folder as a unit
# ------------------------------------------------------------------------------------------------
#: files whose presence marks a folder as ``berg train`` output (only such a folder is replaced by --overwrite)
OUTPUT_MARKERS = (CARD_FILE, "summary.json")


def check_out_folder(out: str | os.PathLike[str], *, overwrite: bool) -> Path:
    """The absolute output folder, after the cheap checks ``staged_folder`` relies on (before any heavy work).

    Refused: ``out`` exists and is not a folder; it is a non-empty folder and ``overwrite`` is False;
    ``overwrite`` is True but the folder is not a ``berg train`` output (no ``OUTPUT_MARKERS`` file);
    its parent is not a writable folder.
    """
    path = Path(os.path.abspath(os.fspath(out)))
    if path.exists() or path.is_symlink():
        path = path.resolve()
        if not path.is_dir():
            raise InvalidParameterError(f"--out {out}: exists and is not a folder; choose a folder path")
        if any(path.iterdir()):
            if not overwrite:
                raise InvalidParameterError(f"--out {out} already exists; pass --overwrite to replace it (the old folder stays "
                                            "until the new one is complete), or choose another folder")
            if not any((path / m).is_file() for m in OUTPUT_MARKERS):
                raise InvalidParameterError(f"--out {out} is a folder that berg train did not write (no {' or '.join(OUTPUT_MARKERS)}); "
                                            "refusing to replace it even with --overwrite; choose another folder")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ResourceError(f"--out {out}: cannot write in {parent}; choose a folder you can write to")
    return path


@contextmanager
def staged_folder(out: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty hidden sibling of ``out`` to write into; on success it replaces ``out`` at once.

    ``berg_core.store.cache.atomic_folder`` after the checks of ``check_out_folder`` (also applied to an old
    folder that a killed writer's cut switch left beside ``out`` and that is put back first).
    """
    path = check_out_folder(out, overwrite=overwrite)
    with atomic_folder(path, recheck=lambda p: check_out_folder(p, overwrite=overwrite)) as stage:
        yield stage


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


# ------------------------------------------------------------------------------------------------
# features (shared by training and the encoder)
# ------------------------------------------------------------------------------------------------
def stimulus_features(space: Mapping[str, Any], backbone: Any, stimulus: Any, *, stimulus_kind: str, tr: float | None = None,
                      context: Mapping[str, int] | None = None, batch_size: int = 32, show_progress: bool = False,
                      feature_cache: bool = True) -> np.ndarray:
    """One feature space's features of a stimulus before PCA and delays, float64.

    ``sentences``: (n_sentences, hidden) pooled per ``space["pooling"]``. ``timed_words``: word features
    → Lanczos onto the TR grid (``tr`` s) → z-scored, (n_TRs, hidden). ``backbone`` is a loaded
    ``berg_core.features.backbones.Backbone`` at ``space["layer"]``.
    """
    if stimulus_kind == "sentences":
        from berg_core import sentence_features

        return sentence_features(backbone, list(stimulus), batch_size=batch_size, pooling=space.get("pooling") or "last",
                                 show_progress=show_progress).astype(np.float64)
    from berg_core import (
        KEEP_WORDS,
        MAX_WORDS,
        backbone_revision,
        cached_features,
        lanczos_resample,
        tr_grid,
        word_features,
        word_features_key,
        zscore,
    )

    if not tr:
        raise ModelLoadError("a timed-words encoder needs 'tr' (seconds) in its card")
    ctx: dict[str, Any] = {"max_words": MAX_WORDS, "keep_words": KEEP_WORDS, **dict(context or {})}
    words = list(stimulus.words)
    key = word_features_key(backbone=backbone.name, revision=backbone_revision(backbone.name, space.get("revision")),
                            layer=backbone.layer, dtype=backbone.dtype, words=words, **ctx)
    feats = cached_features(key, lambda: word_features(backbone, words, batch_size=max(1, batch_size // 4), show_progress=show_progress, **ctx),
                            enabled=feature_cache)
    times = tr_grid(stimulus.onsets, tr=float(tr))
    return zscore(lanczos_resample(feats, stimulus.onsets, times, tr=float(tr)))


def reduced_width(space: Mapping[str, Any]) -> int:
    """Width of one space after its reduction (before delays)."""
    red = space.get("reduce")
    return int(red["n_components"]) if red else int(space["n_features"])


# ------------------------------------------------------------------------------------------------
# the encoder
# ------------------------------------------------------------------------------------------------
class TrainedEncoder(Encoder):
    """Loads a trained-encoder folder: backbones per feature space, the selected weight columns.

    Options: ``backbone`` (override every space's backbone, e.g. a local copy), ``batch_size``,
    ``dtype`` (backbone precision; default float32 on CPU, float16 on GPU), ``feature_cache``.
    Selection: ``voxel_index`` (0/1 mask over the outputs) and/or ``roi`` (names from the card); the
    union, in ascending output order. Output: float32 (n_sentences or n_TRs, n_selected).
    """

    def __init__(self, spec: EncoderSpec, **kwargs: Any) -> None:
        super().__init__(spec, **kwargs)
        self.folder = Path(spec.params["path"])
        self.card = read_card(self.folder)
        self.columns = select_outputs(self.selection, n_outputs=int(self.card["outputs"]["n"]), roi_voxels=self.card.get("rois") or {},
                                      who=self.model_id)
        self._names = [output_names(self.card)[i] for i in self.columns]
        self._load_weights()
        self._backbones: dict[tuple[str, int], Any] = {}
        for space in self.card["feature_spaces"]:
            self._backbone(space)

    # -- selection and weights -----------------------------------------------------------------
    def _load_weights(self) -> None:
        """Verify the pinned hashes and the HDF5 shape/dtype, then read the selected columns and the arrays."""
        files = verify_files(self.folder, self.card, self.model_id)
        n_out = int(self.card["outputs"]["n"])
        weights = read_weights(files["file"], self.card, None if len(self.columns) == n_out else self.columns, self.model_id)
        shapes: dict[str, tuple[int, ...]] = {"intercept": (n_out,)}
        reduced = []
        for k, space in enumerate(self.card["feature_spaces"]):
            if space.get("reduce"):
                shapes[f"pca_mean_{k}"] = (int(space["n_features"]),)
                shapes[f"pca_components_{k}"] = (reduced_width(space), int(space["n_features"]))
                reduced.append(k)
        arrays = load_arrays(files["arrays"], shapes, required=list(shapes), who=self.model_id)
        self.readout = LinearReadout.from_columns(weights, arrays["intercept"][self.columns].astype(np.float32), self._names)
        self.pca = [(arrays[f"pca_mean_{k}"], arrays[f"pca_components_{k}"]) if k in reduced else None
                    for k in range(len(self.card["feature_spaces"]))]

    def _backbone(self, space: Mapping[str, Any]) -> Any:
        from berg_core import load_backbone

        name = self.options["backbone"] or space.get("backbone")
        if not name:
            raise ModelLoadError(f"{self.model_id} was trained on precomputed features: its card names no backbone; "
                                 "re-run `berg train` with --backbone/--layer, or pass backbone=")
        key = (str(name), int(space["layer"]))
        if key not in self._backbones:
            bb = load_backbone(str(name), layer=int(space["layer"]), device=self.device, dtype=self.options["dtype"],
                               revision=space.get("revision"))
            if bb.hidden_size != int(space["n_features"]):
                raise ModelLoadError(f"backbone {name!r} gives {bb.hidden_size}-d features but {self.model_id} was trained on "
                                     f"{space['n_features']}-d ones; use the backbone named in its card")
            self._backbones[key] = bb
        return self._backbones[key]

    # -- subject space (``berg encode DIR --output pred.nii.gz``, ``berg_core.store.volumes.write_model_volume``) ----
    def voxel_space(self) -> Any:
        """The card's subject space (``VoxelSpace``; its files' pinned sha256 checked), or one-line refusal without one.

        Rows: a timed-words encoder's are TRs (``tr_s`` = the card's ``tr``; 1.0 s with a warning if the card has none);
        a sentence encoder's are sentences, not time (``tr_s`` None: a 4-D file holds one volume per sentence).
        """
        import warnings

        from berg_core import VoxelSpace

        files = verify_space_files(self.folder, self.card, self.model_id)
        tr_s: float | None = None
        if self.card["stimulus"] == "timed_words":
            tr_s = float(self.card.get("tr") or 0) or None
            if tr_s is None:
                warnings.warn(f"{self.model_id}: its card gives no tr; writing the TR as 1.0 s in the NIfTI header", stacklevel=2)
                tr_s = 1.0
        return VoxelSpace(files["mask"], files["reference"], int(self.card["space"]["n_voxels"]), tr_s)

    def selected_voxels(self) -> np.ndarray | None:
        """Indices of the selected outputs among the space's voxels (None: every voxel)."""
        return None if len(self.columns) == int(self.card["outputs"]["n"]) else np.asarray(self.columns, dtype=np.int64)

    # -- Encoder API -----------------------------------------------------------------------------
    @property
    def output_names(self) -> list[str]:
        return list(self._names)

    def design(self, stimulus: Any, show_progress: bool = False) -> np.ndarray:
        """The regression design (n_rows, n_weight_rows): every space's features, reduced, delayed, stacked."""
        from berg_core import delay

        kind = self.card["stimulus"]
        blocks = []
        for k, space in enumerate(self.card["feature_spaces"]):
            feats = stimulus_features(space, self._backbone(space), stimulus, stimulus_kind=kind, tr=self.card.get("tr"),
                                      context=self.card.get("context"), batch_size=int(self.options["batch_size"]),
                                      show_progress=show_progress, feature_cache=bool(self.options["feature_cache"]))
            pca = self.pca[k]
            if pca is not None:
                mean, comps = pca
                feats = (feats - mean) @ comps.T
            if kind == "timed_words" and self.card.get("delays"):
                feats = delay(feats, self.card["delays"], mode=self.card.get("delay_mode", "fir"))
            blocks.append(feats)
        return np.concatenate(blocks, axis=1)

    def _encode(self, stimulus: Any, show_progress: bool) -> np.ndarray:
        if self.card["stimulus"] == "timed_words" and len(stimulus.words) and np.ptp(stimulus.onsets) < 10 * float(self.card.get("tr") or 0):
            import warnings

            warnings.warn(f"{self.model_id}: the story spans fewer than 10 TRs; per-story z-scoring is degenerate for very short inputs",
                          stacklevel=3)
        return self.readout.predict(self.design(stimulus, show_progress))

    def _release(self) -> None:
        for bb in self._backbones.values():
            bb.release()
        self._backbones.clear()
        self.readout = self.readout.select([])  # frees the weights
