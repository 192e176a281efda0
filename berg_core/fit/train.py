"""The ``berg train`` pipeline: features + responses -> fitted ridge, scores, significance, encoder folder.

Recipe (drama2brain's, generalised): per feature space, optional PCA fit on the training rows only,
then time delays (``fir``: stacked delay-major; ``mean``: averaged copies), zero-padded at the start of
each segment (``segments``: one label per sample, e.g. the story or run; default one segment); one space -> ``RidgeCV`` (one alpha per voxel by CV r2, or correlation), several spaces ->
banded ridge (random search over space weights; berg's native engine or himalaya) unless ``ridge="mono"``. Held-out test rows
give ``cc`` (Pearson r per voxel), block-permutation p-values (per voxel; block from the data unless given) and their BH-FDR correction.

Outputs in ``out`` (suffix ``raw`` or ``{N}PCs``): ``cv_cc_{s}.npy`` (n_vox,), ``cc_{s}.npy`` (n_vox,),
``coef_{s}.npy`` (n_weight_rows, n_vox), ``alphas_{s}.npy``, ``pvalues_{s}.npy``,
``pvalues_corrected_{s}.npy``, ``preds_{s}.npy`` (n_test, n_vox), ``dist_{s}.png`` (histogram of test
correlations); banded: also ``cc_{s}_{space}.npy`` (split correlation), ``preds_{s}_{space}.npy``
(that space's part of the centred prediction), ``coef_{s}_{space}.npy``; ``summary.json``; and the
trained-encoder folder files (``berg_core.trained.encoder``: ``berg_encoder.json``, ``weights.h5``,
``arrays.npz``). With ``noise_ceiling`` (CCmax per voxel): ``noise_ceiling.npy`` and ``cc_norm_{s}.npy`` (cc / CCmax).
With a subject space (``space_mask`` + ``space_reference``: the response columns are the mask's nonzero voxels in
pycortex order, (z, y, x) C-order): ``space_mask.nii.gz``, ``space_reference.nii.gz`` (copies, named in the card's
``space`` field) and 3-D float32 maps in the reference's space, NaN outside the mask, each with a JSON sidecar:
``map_r_{s}.nii.gz`` (test r), ``map_cc_norm_{s}.nii.gz`` (with a noise ceiling), ``map_significant_{s}.nii.gz``
(1 where the FDR-corrected p <= ``fdr_q``, 0 elsewhere in the mask; with permutations). The folder is written as a unit (``berg_core.trained.encoder.staged_folder``): an existing
``out`` is refused unless ``overwrite``, and is replaced only once the new folder is complete.

Stages (each a function with a small dataclass for what it hands on): ``load_inputs`` -> ``Inputs``,
``build_design`` -> ``Design``, ``fit_models`` -> ``Fitted``, ``evaluate`` -> ``Scores``,
``write_outputs`` -> ``TrainResult``; ``train(cfg)`` is the five calls.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
import sys
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np

from berg_core.console import notice
from berg_core.errors import InvalidParameterError, ResourceError
from berg_core.fit.ridge import DEFAULT_ALPHAS, PCA, BandedRidgeCV, RidgeCV, parse_reduce

if TYPE_CHECKING:
    from berg_core.store.volumes import VoxelSpace

_T = TypeVar("_T")


@dataclass
class TrainConfig:
    """Everything ``train`` needs (the CLI maps its flags onto this)."""

    features: list[str]
    responses: str
    out: str
    feature_names: list[str] | None = None
    test: str | None = None
    delays: list[int] = field(default_factory=list)
    delay_mode: Literal["fir", "mean"] = "fir"
    segments: str | None = None
    reduce: str | None = None
    cv_groups: str | None = None
    folds: int = 5
    alphas: list[float] | None = None
    alpha_convention: Literal["sklearn", "huth"] = "sklearn"  # sklearn (penalty λ = α) | huth (λ = α², HuthLab)
    scoring: Literal["r2", "correlation"] = "r2"  # r2 | correlation (drama2brain, HuthLab)
    ridge: Literal["auto", "mono", "banded"] = "auto"  # auto | mono | banded
    n_iter: int = 100
    banded_engine: Literal["berg", "himalaya"] = "berg"  # berg (native) | himalaya
    permutations: int = 1000
    perm_block: int | None = None  # None: from the residuals' autocorrelation (stats.auto_block); drama2brain: 10
    perm_mode: Literal["voxel", "pooled"] = "voxel"  # voxel | pooled (drama2brain)
    fdr_q: float = 0.05
    backend: Literal["numpy", "torch"] = "numpy"
    device: str | None = None
    dtype: Literal["auto", "float32", "float64"] = "auto"
    target_batch: int = 2048
    seed: int = 0
    show_progress: bool = False
    overwrite: bool = False  # replace an existing ``out`` folder (only one ``berg train`` wrote)
    # the encoder card
    model_id: str | None = None
    description: str | None = None
    stimulus: str = "sentences"
    backbone: list[str] = field(default_factory=list)
    layer: list[int] = field(default_factory=list)
    pooling: str = "last"
    tr: float | None = None
    output_names: str | None = None
    rois: str | None = None
    card_text: str | None = None
    # the subject space of the response columns (both or neither) and the noise ceiling
    space_mask: str | None = None  #: NIfTI mask: its nonzero voxels, (z, y, x) C-order, are the response columns
    space_reference: str | None = None  #: NIfTI on the mask's grid whose affine places the maps
    space_name: str | None = None  #: e.g. the subject ("UTS03"), recorded in the card
    noise_ceiling: str | None = None  #: .npy of CCmax per response column, in (0, 1]


# ------------------------------------------------------------------------------------------------
# inputs
# ------------------------------------------------------------------------------------------------
def load_matrix(spec: str | Path, *, what: str = "matrix") -> np.ndarray:
    """A 2-D array from ``.npy`` or ``.h5``/``.hdf5`` (``file.h5:dataset``, or the file's only 2-D dataset)."""
    text = str(spec)
    dataset = None
    match = re.match(r"^(.*\.(?:h5|hdf5)):(.+)$", text, flags=re.IGNORECASE)
    if match:
        text, dataset = match.group(1), match.group(2)
    path = Path(text)
    if not path.is_file():
        raise ResourceError(f"{what} file {text!r} not found")
    ext = path.suffix.lower()
    if ext == ".npy":
        arr = _load_npy(path, str(path), mmap=True)
    elif ext in (".h5", ".hdf5"):
        import h5py

        with h5py.File(path, "r") as fh:
            if dataset is None:
                found: list[str] = []
                fh.visititems(lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) and obj.ndim == 2 else None)
                if len(found) != 1:
                    raise InvalidParameterError(f"{path}: name the dataset as {path}:NAME (2-D datasets: {', '.join(found) or 'none'})")
                dataset = found[0]
            if dataset not in fh:
                raise InvalidParameterError(f"{path} has no dataset {dataset!r}")
            arr = np.asarray(fh[dataset][()])
    else:
        raise InvalidParameterError(f"{what} file {path.name!r}: use .npy or .h5 (samples × columns)")
    arr = np.asarray(arr)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise InvalidParameterError(f"{what} {path.name} must be 2-D (samples × columns), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise InvalidParameterError(f"{what} {path.name} must be real numbers, got dtype {arr.dtype}")
    bad = ~np.isfinite(arr)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise InvalidParameterError(f"{what} {path.name} has {int(bad.sum())} NaN/inf values (first at row {row}, column {col}); clean or impute them")
    return arr


def parse_test(spec: str | None, n: int) -> np.ndarray:
    """Test rows from ``"START:STOP"`` (Python slice bounds, may be negative) or a file of indices / a 0/1 mask."""
    if spec is None:
        return np.zeros(0, dtype=np.intp)
    match = re.fullmatch(r"\s*(-?\d*)\s*:\s*(-?\d*)\s*", spec)
    if match and not Path(spec).exists():
        start = int(match.group(1)) if match.group(1) else None
        stop = int(match.group(2)) if match.group(2) else None
        idx = np.arange(n)[slice(start, stop)]
    else:
        path = Path(spec)
        if not path.is_file():
            raise ResourceError(f"--test {spec!r}: neither START:STOP nor an existing file of row indices / a 0/1 mask")
        if path.suffix.lower() == ".npy":
            values = _load_npy(path, f"--test {path.name}").reshape(-1)
        else:
            try:
                values = np.array(path.read_text().replace(",", " ").split(), dtype=float)
            except ValueError as exc:
                raise InvalidParameterError(f"--test {path.name}: not a list of row indices ({exc})") from exc
        if not (np.issubdtype(values.dtype, np.number) or values.dtype == np.bool_) or np.issubdtype(values.dtype, np.complexfloating):
            raise InvalidParameterError(f"--test {path.name}: row indices must be integers in 0..{n - 1} (or a 0/1 mask of length {n}), "
                                        f"got dtype {values.dtype}")
        if values.shape[0] == n and np.all(np.isin(values, (0, 1))) and values.sum() != n:
            idx = np.flatnonzero(values)
        else:
            if not np.all(values == np.round(values)) or values.min() < 0 or values.max() >= n:
                raise InvalidParameterError(f"--test {path.name}: row indices must be integers in 0..{n - 1} (or a 0/1 mask of length {n})")
            idx = np.unique(values.astype(np.intp))
    if idx.size == 0:
        raise InvalidParameterError(f"--test {spec!r} selects no rows out of {n}")
    if idx.size >= n - 4:
        raise InvalidParameterError(f"--test {spec!r} leaves {n - idx.size} training rows; keep most rows for training")
    return idx


def _load_npy(path: Path, what: str, *, mmap: bool = False) -> np.ndarray:
    """The array in a ``.npy`` file (memory-mapped with ``mmap``); an empty, cut, pickled or ``.npz`` file is a one-line
    ``InvalidParameterError`` naming ``what``."""
    try:
        arr = np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except (ValueError, EOFError, OSError) as exc:  # EOFError: an empty or cut file
        raise InvalidParameterError(f"{what}: not a plain numeric .npy ({exc}); save it with np.save(arr) of a numeric array") from exc
    if not isinstance(arr, np.ndarray):  # np.load reads a .npz archive whatever its name
        arr.close()
        raise InvalidParameterError(f"{what}: not a plain numeric .npy (a .npz archive); save one array with np.save(arr)")
    return arr


def _file_of(spec: str) -> Path:
    """The file part of ``file.h5:dataset`` (or ``spec`` itself)."""
    match = re.match(r"^(.*\.(?:h5|hdf5)):(.+)$", str(spec), flags=re.IGNORECASE)
    return Path(match.group(1) if match else spec)


def _sha256(spec: str) -> str:
    digest = hashlib.sha256()
    with open(_file_of(spec), "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_groups(spec: str, n: int, train_rows: np.ndarray) -> np.ndarray:
    """CV group labels (one per sample or per training sample) from .npy/.h5 or text (whitespace-separated)."""
    path = _file_of(spec)
    if not path.is_file():
        raise ResourceError(f"--cv-groups file {spec!r} not found")
    if path.suffix.lower() in (".npy", ".h5", ".hdf5"):
        groups = load_matrix(spec, what="CV groups").reshape(-1)
    else:
        groups = np.array(path.read_text(encoding="utf-8").split())
    if groups.shape[0] == n:
        train_groups: np.ndarray = groups[train_rows]
        return train_groups
    if groups.shape[0] == train_rows.size:
        return groups
    raise InvalidParameterError(f"--cv-groups has {groups.shape[0]} labels; give one per sample ({n}) or per training sample ({train_rows.size})")


def segment_bounds(spec: str, n: int) -> list[tuple[int, int]]:
    """(start, stop) of each run of equal labels in a per-sample label file (stories/runs); delays stay inside one."""
    path = _file_of(spec)
    if not path.is_file():
        raise ResourceError(f"--segments file {spec!r} not found")
    labels = load_matrix(spec, what="segments").reshape(-1) if path.suffix.lower() in (".npy", ".h5", ".hdf5") \
        else np.array(path.read_text(encoding="utf-8").split())
    if labels.shape[0] != n:
        raise InvalidParameterError(f"--segments has {labels.shape[0]} labels; give one per sample ({n})")
    edges = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    starts = np.concatenate([[0], edges])
    stops = np.concatenate([edges, [n]])
    return [(int(a), int(b)) for a, b in zip(starts, stops)]


def _space_names(cfg: TrainConfig) -> list[str]:
    if cfg.feature_names:
        if len(cfg.feature_names) != len(cfg.features):
            raise InvalidParameterError(f"--feature-names: {len(cfg.feature_names)} names for {len(cfg.features)} feature files")
        names = list(cfg.feature_names)
    else:
        names = [_file_of(f).stem for f in cfg.features]
    seen: dict[str, int] = {}
    out = []
    for name in names:
        clean = re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "space"
        seen[clean] = seen.get(clean, 0) + 1
        out.append(clean if seen[clean] == 1 else f"{clean}_{seen[clean]}")
    return out


def _per_space(values: Sequence[_T], n: int, flag: str) -> list[_T | None]:
    """One value per feature space: none given -> None each, one -> repeated, else exactly ``n``."""
    given: list[_T | None] = list(values)
    if not given:
        return [None] * n
    if len(given) == 1:
        return given * n
    if len(given) != n:
        raise InvalidParameterError(f"{flag}: give one value or one per feature space ({n}), got {len(given)}")
    return given


# ------------------------------------------------------------------------------------------------
# the pipeline: load -> design -> fit -> evaluate -> write
# ------------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    """In-memory results (also written to ``out``)."""

    out: Path
    suffix: str
    cv_cc: np.ndarray
    cc: np.ndarray | None
    pvalues_corrected: np.ndarray | None
    preds: np.ndarray | None
    coef: np.ndarray
    summary: dict[str, Any]


@dataclass
class Inputs:
    """What ``load_inputs`` hands on: checked options and the loaded arrays (n = samples, v = voxels)."""

    out: Path  #: the output folder (checked writable; not yet created)
    suffix: str  #: ``raw`` or ``{N}PCs``
    n_components: int | None  #: PCA components per space (``--reduce pca:N``), or None
    names: list[str]  #: one clean name per feature space
    backbones: list[str | None]  #: per space (``None`` when not given)
    layers: list[int | None]  #: per space (``None`` when not given)
    spaces: list[np.ndarray]  #: per space (n, n_features_i), as loaded
    Y: np.ndarray  #: responses (n, v), as loaded
    output_names: list[str] | None  #: v names, or None
    rois: dict[str, list[int]] | None  #: ROI name -> column indices
    dtype: np.dtype  #: compute dtype (float32 or float64)
    test: np.ndarray  #: held-out row indices (n_test,), possibly empty
    train_rows: np.ndarray  #: training row indices (n_train,)
    groups: np.ndarray | None  #: CV label per training row (n_train,), or None (contiguous folds)
    bounds: list[tuple[int, int]]  #: (start, stop) of each segment; delays stay inside one
    alphas: np.ndarray  #: the alpha grid (n_alphas,), float64
    space: VoxelSpace | None = None  #: the subject space of the response columns (user's files, checked), or None
    noise_ceiling: np.ndarray | None = None  #: CCmax per voxel (v,), float64, or None


@dataclass
class Design:
    """What ``build_design`` hands on: the design matrix of each space and the responses in the compute dtype."""

    designs: list[np.ndarray]  #: per space (n, n_weight_rows_i): PCA'd then delayed
    pcas: list[PCA | None]  #: the PCA fit on the training rows of each space, or None
    Yd: np.ndarray  #: responses (n, v) in the compute dtype
    banded: bool  #: several spaces fit with banded ridge (else one RidgeCV on the concatenation)


@dataclass
class Fitted:
    """What ``fit_models`` hands on: the fitted ridge model and its main arrays."""

    model: RidgeCV | BandedRidgeCV  #: the fitted ridge
    coef: np.ndarray  #: (n_weight_rows, v), spaces concatenated in order
    intercept: np.ndarray  #: (v,)
    best_alphas: np.ndarray  #: (v,) the chosen alpha per voxel (NaN when the solver reports none)
    cv_cc: np.ndarray  #: (v,) best mean CV score per voxel, float64


@dataclass
class Scores:
    """What ``evaluate`` hands on: the held-out scores and every ``.npy`` to write."""

    files: dict[str, np.ndarray]  #: file stem -> array (``cv_cc_{s}``, ``cc_{s}``, ...)
    cc: np.ndarray | None  #: (v,) test Pearson r, or None without test rows
    pvalues: np.ndarray | None  #: (v,) permutation p-values, or None
    pvalues_corrected: np.ndarray | None  #: (v,) BH-FDR adjusted p-values, or None
    preds: np.ndarray | None  #: (n_test, v) test predictions, or None
    summary: dict[str, Any]  #: mean/median/max scores and the FDR count (``summary.json``, the card)
    perm_block: int | None = None  #: the permutation block used (samples), given or from the data
    notes: list[str] = field(default_factory=list)  #: caveats on the statistics (e.g. a block shorter than the correlation length)


def train(cfg: TrainConfig) -> TrainResult:
    """Run the pipeline of the module docstring; returns the results and writes them to ``cfg.out``."""
    inputs = load_inputs(cfg)
    design = build_design(cfg, inputs)
    fitted = fit_models(cfg, inputs, design)
    scores = evaluate(cfg, inputs, design, fitted)
    return write_outputs(cfg, inputs, design, fitted, scores)


def check_config(cfg: TrainConfig) -> None:
    """Every option that can be checked without reading a file; one-line ``InvalidParameterError`` otherwise."""
    if cfg.backend not in ("numpy", "torch"):
        raise InvalidParameterError(f"unknown backend {cfg.backend!r}; use 'numpy' or 'torch'")
    if cfg.delay_mode not in ("fir", "mean"):
        raise InvalidParameterError(f"unknown delay mode {cfg.delay_mode!r}; use 'fir' or 'mean'")
    if cfg.ridge not in ("auto", "mono", "banded"):
        raise InvalidParameterError(f"unknown ridge type {cfg.ridge!r}; use 'auto', 'mono' or 'banded'")
    if cfg.stimulus not in ("sentences", "timed_words"):
        raise InvalidParameterError(f"unknown stimulus kind {cfg.stimulus!r}; use 'sentences' or 'timed_words'")
    if cfg.alpha_convention not in ("sklearn", "huth"):
        raise InvalidParameterError(f"unknown alpha convention {cfg.alpha_convention!r}; use 'sklearn' (λ = α) or 'huth' (λ = α²)")
    if cfg.scoring not in ("r2", "correlation"):
        raise InvalidParameterError(f"unknown scoring {cfg.scoring!r}; use 'r2' or 'correlation'")
    if cfg.banded_engine not in ("berg", "himalaya"):
        raise InvalidParameterError(f"unknown banded ridge engine {cfg.banded_engine!r}; use 'berg' (native) or 'himalaya'")
    if cfg.perm_block is not None and (isinstance(cfg.perm_block, bool) or not isinstance(cfg.perm_block, int) or cfg.perm_block < 1):
        raise InvalidParameterError(f"--perm-block must be a whole number >= 1 of samples (or unset: from the data), got {cfg.perm_block!r}")
    if cfg.perm_mode not in ("pooled", "voxel"):
        raise InvalidParameterError(f"unknown permutation mode {cfg.perm_mode!r}; use 'pooled' or 'voxel'")
    if cfg.dtype not in ("auto", "float32", "float64"):
        raise InvalidParameterError(f"unknown dtype {cfg.dtype!r}; use 'auto', 'float32' or 'float64'")
    if not cfg.features:
        raise InvalidParameterError("give at least one feature file (--features F.npy ...)")
    if cfg.backbone and cfg.stimulus == "sentences" and cfg.delays:
        raise InvalidParameterError("delays apply to time series: a sentence encoder (--stimulus sentences) takes no --delays")
    if cfg.backbone and cfg.stimulus == "timed_words" and not cfg.tr:
        raise InvalidParameterError("a timed-words encoder needs --tr (seconds per sample)")
    from berg_core.trained.cards import CONTROL_RE, MAX_CARD_TEXT, MAX_DESCRIPTION, MAX_NAME, MODEL_ID_RE

    if cfg.model_id is not None and not MODEL_ID_RE.fullmatch(cfg.model_id):
        raise InvalidParameterError(f"--model-id {cfg.model_id!r}: use letters, digits and _ . + = - (at most 200, starting with a letter or digit)")
    texts = [("--description", cfg.description, MAX_DESCRIPTION), ("--card", cfg.card_text, MAX_CARD_TEXT)]
    texts += [("--backbone", b, MAX_NAME) for b in cfg.backbone]
    for flag, text, limit in texts:
        if text is not None and (not isinstance(text, str) or len(text) > limit or CONTROL_RE.search(text)):
            raise InvalidParameterError(f"{flag}: give text of at most {limit} characters without control characters")
    if (cfg.space_mask is None) != (cfg.space_reference is None):
        raise InvalidParameterError("--space-mask and --space-reference go together: give the mask whose voxels are the response "
                                    "columns and the reference NIfTI on its grid (or neither)")
    if cfg.space_name is not None and cfg.space_mask is None:
        raise InvalidParameterError("--space-name names the subject space of --space-mask/--space-reference; give those too")
    if cfg.space_name is not None and (not cfg.space_name or len(cfg.space_name) > MAX_NAME or CONTROL_RE.search(cfg.space_name)):
        raise InvalidParameterError(f"--space-name: give text of 1 to {MAX_NAME} characters without control characters")
    if cfg.space_mask is not None:
        import importlib.util

        if importlib.util.find_spec("nibabel") is None:
            raise InvalidParameterError("--space-mask/--space-reference read and write NIfTI, which needs nibabel: pip install 'berg-core[maps]'")
    if cfg.noise_ceiling is not None and not cfg.test:
        raise InvalidParameterError("--noise-ceiling normalises the test correlations (cc_norm = r / CCmax): give --test too")


def load_inputs(cfg: TrainConfig) -> Inputs:
    """Stage 1: check the options and the output folder, then read features, responses, test rows, CV groups,
    segments and the card's names/ROIs (every cheap check before the fit)."""
    check_config(cfg)
    from berg_core.trained.encoder import check_out_folder

    out = check_out_folder(cfg.out, overwrite=cfg.overwrite)
    n_comp = parse_reduce(cfg.reduce)
    names = _space_names(cfg)
    backbones = _per_space(cfg.backbone, len(names), "--backbone")
    layers = _per_space(cfg.layer, len(names), "--layer")
    if cfg.backbone and any(la is None for la in layers):
        raise InvalidParameterError("--backbone needs --layer (the block whose output the features are)")
    spaces = [load_matrix(f, what=f"features {n}") for f, n in zip(cfg.features, names)]
    Y = load_matrix(cfg.responses, what="responses")
    output_names, rois = _read_names(cfg.output_names, Y.shape[1]), _read_rois(cfg.rois, Y.shape[1])  # cheap: before the fit
    space = _read_space(cfg, Y.shape[1])
    ceiling = _read_ceiling(cfg.noise_ceiling, Y.shape[1]) if cfg.noise_ceiling else None
    n = Y.shape[0]
    for f, x in zip(cfg.features, spaces):
        if x.shape[0] != n:
            raise InvalidParameterError(f"sample counts differ: features {f} has {x.shape[0]} rows but responses {cfg.responses} has {n}")
    dtype = np.dtype(np.float64 if cfg.dtype == "float64" or (cfg.dtype == "auto" and any(a.dtype != np.float32 for a in [*spaces, Y]))
                     else np.float32)
    test = parse_test(cfg.test, n)
    train_rows = np.setdiff1d(np.arange(n), test)
    return Inputs(
        out=out, suffix=f"{n_comp}PCs" if n_comp else "raw", n_components=n_comp, names=names, backbones=backbones, layers=layers,
        spaces=spaces, Y=Y, output_names=output_names, rois=rois, dtype=dtype, test=test, train_rows=train_rows,
        groups=read_groups(cfg.cv_groups, n, train_rows) if cfg.cv_groups else None,
        bounds=segment_bounds(cfg.segments, n) if cfg.segments else [(0, n)],
        alphas=np.asarray(cfg.alphas if cfg.alphas else DEFAULT_ALPHAS, dtype=np.float64),
        space=space, noise_ceiling=ceiling,
    )


def _read_space(cfg: TrainConfig, n_columns: int) -> VoxelSpace | None:
    """The ``VoxelSpace`` of ``--space-mask``/``--space-reference`` (None without them), checked before the fit: both
    readable NIfTI on one grid, and the mask's nonzero voxel count equal to the responses' column count."""
    if cfg.space_mask is None or cfg.space_reference is None:
        return None
    from berg_core.store.volumes import VolumeError, VoxelSpace, load_mask, load_reference

    paths = {}
    for flag, given in (("--space-mask", cfg.space_mask), ("--space-reference", cfg.space_reference)):
        path = Path(given)
        if not path.is_file():
            raise ResourceError(f"{flag} file {given!r} not found")
        if not path.name.lower().endswith((".nii", ".nii.gz")):
            raise InvalidParameterError(f"{flag} {path.name!r}: give a NIfTI file (.nii or .nii.gz)")
        paths[flag] = path
    fix = "give a NIfTI file nibabel can read"
    mask_zyx = load_mask(paths["--space-mask"], fix=fix)
    n_mask = int(mask_zyx.sum())
    if n_mask != n_columns:
        raise VolumeError(f"--space-mask {paths['--space-mask'].name} has {n_mask} nonzero voxels but the responses have {n_columns} "
                          "columns: give the mask whose voxels (pycortex order: get_fdata().T != 0, C-order) are the response columns")
    shape, _affine = load_reference(paths["--space-reference"], fix=fix, read_data=True)
    if shape != mask_zyx.shape[::-1]:
        raise VolumeError(f"--space-mask {paths['--space-mask'].name} is a {mask_zyx.shape[::-1]} grid but --space-reference "
                          f"{paths['--space-reference'].name} is {shape}: give a reference on the mask's grid")
    return VoxelSpace(paths["--space-mask"], paths["--space-reference"], n_mask, cfg.tr)


def _read_ceiling(path: str, n_columns: int) -> np.ndarray:
    """``--noise-ceiling``: CCmax per response column from a ``.npy`` ((v,), or (v, 1)/(1, v)), every value in (0, 1]."""
    file = Path(path)
    if not file.is_file():
        raise ResourceError(f"--noise-ceiling file {path!r} not found")
    if file.suffix.lower() != ".npy":
        raise InvalidParameterError(f"--noise-ceiling {file.name!r}: give a .npy of CCmax per response column")
    values = _load_npy(file, f"--noise-ceiling {file.name}")
    if not np.issubdtype(values.dtype, np.number) or np.issubdtype(values.dtype, np.complexfloating) or values.dtype == np.bool_:
        raise InvalidParameterError(f"--noise-ceiling {file.name}: must be real numbers, got dtype {values.dtype}")
    if values.ndim > 2 or (values.ndim == 2 and 1 not in values.shape) or values.size != n_columns:
        raise InvalidParameterError(f"--noise-ceiling {file.name} has shape {values.shape}; give one CCmax per response column ({n_columns},)")
    values = values.astype(np.float64).reshape(-1)
    bad = ~(np.isfinite(values) & (values > 0) & (values <= 1))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise InvalidParameterError(f"--noise-ceiling {file.name}: {int(bad.sum())} values outside (0, 1] or NaN (first: column {first}, "
                                    f"{values[first]!r}); floor the ceiling (e.g. at 0.25, as BERG) before normalising by it")
    return values


def build_design(cfg: TrainConfig, inputs: Inputs) -> Design:
    """Stage 2: per space, PCA fit on the training rows (float64), then delays within each segment; cast to the compute dtype."""
    n_comp, dtype = inputs.n_components, inputs.dtype
    designs: list[np.ndarray] = []
    pcas: list[PCA | None] = []
    for x in inputs.spaces:
        x = np.asarray(x, dtype=np.float64 if n_comp else dtype)
        pca = None
        if n_comp:
            if n_comp > x.shape[1]:
                raise InvalidParameterError(f"--reduce pca:{n_comp} asks for more components than the {x.shape[1]} features")
            pca = PCA(n_comp).fit(x[inputs.train_rows])
            x = pca.transform(x)
        if cfg.delays:
            x = np.concatenate([_delay(x[a:b], cfg.delays, cfg.delay_mode) for a, b in inputs.bounds], axis=0)
        designs.append(x.astype(dtype, copy=False))
        pcas.append(pca)
    banded = cfg.ridge == "banded" or (cfg.ridge == "auto" and len(designs) > 1)
    return Design(designs=designs, pcas=pcas, Yd=np.asarray(inputs.Y, dtype=dtype), banded=banded)


def fit_models(cfg: TrainConfig, inputs: Inputs, design: Design) -> Fitted:
    """Stage 3: ``RidgeCV`` on the concatenated spaces, or ``BandedRidgeCV`` on the list of spaces, fit on the training rows."""
    rows, Yd = inputs.train_rows, design.Yd
    huth = cfg.alpha_convention == "huth"
    model: RidgeCV | BandedRidgeCV
    if design.banded:  # banded ridge takes penalties: huth's α becomes λ = α² and back
        model = BandedRidgeCV(inputs.alphas**2 if huth else inputs.alphas, n_iter=cfg.n_iter, cv=cfg.folds, scoring=cfg.scoring, random_state=cfg.seed,
                              target_batch=cfg.target_batch, backend=cfg.backend, device=cfg.device, show_progress=cfg.show_progress,
                              engine=cfg.banded_engine)
        model.fit([d[rows] for d in design.designs], Yd[rows], groups=inputs.groups)
        best_alphas = np.asarray(model.best_alphas_) if model.best_alphas_ is not None else np.full(Yd.shape[1], np.nan)
        best_alphas = np.sqrt(best_alphas) if huth else best_alphas
    else:
        model = RidgeCV(inputs.alphas, cv=cfg.folds, scoring=cfg.scoring, alpha_convention=cfg.alpha_convention, backend=cfg.backend, device=cfg.device,
                        target_batch=cfg.target_batch, show_progress=cfg.show_progress)
        model.fit(np.concatenate(design.designs, axis=1)[rows], Yd[rows], groups=inputs.groups)
        best_alphas = model.best_alphas_
    return Fitted(model=model, coef=np.asarray(model.coef_), intercept=np.asarray(model.intercept_), best_alphas=best_alphas,
                  cv_cc=np.asarray(model.cv_score_, dtype=np.float64))


def evaluate(cfg: TrainConfig, inputs: Inputs, design: Design, fitted: Fitted) -> Scores:
    """Stage 4: predictions on the test rows, their correlation, permutation p-values and FDR, banded split scores."""
    from berg_core.fit.stats import (
        PermutationBlockWarning,
        fdr_bh,
        pearson_r,
        permutation_block,
        permutation_null,
        permutation_pvalues,
        split_correlation,
    )

    s, test, names = inputs.suffix, inputs.test, inputs.names
    files: dict[str, np.ndarray] = {f"cv_cc_{s}": fitted.cv_cc, f"coef_{s}": fitted.coef, f"alphas_{s}": fitted.best_alphas}
    cc = pvals = pcorr = preds = block = None
    notes: list[str] = []
    if test.size:
        X_test = np.concatenate([d[test] for d in design.designs], axis=1)
        preds = X_test @ fitted.coef + fitted.intercept
        y_test = design.Yd[test]
        if cfg.permutations > 0:
            with warnings.catch_warnings(record=True) as caught:  # a one-line notice (and a note in summary.json), not a warning trace
                warnings.simplefilter("always", PermutationBlockWarning)
                block = permutation_block(y_test, preds, cfg.perm_block)
            for w in caught:
                if issubclass(w.category, PermutationBlockWarning):
                    notes.append(str(w.message))
                    notice(f"berg train: {w.message}")
                else:
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            cc = pearson_r(y_test, preds)
            null = permutation_null(y_test, preds, n_permutations=cfg.permutations, block=block, seed=cfg.seed, show_progress=cfg.show_progress)
            pvals = permutation_pvalues(cc, null, mode=cfg.perm_mode)  # as block_permutation_test, the block checked once above
            pcorr = fdr_bh(pvals)
            files[f"pvalues_{s}"] = pvals
            files[f"pvalues_corrected_{s}"] = pcorr
        else:
            cc = pearson_r(y_test, preds)
        files[f"cc_{s}"] = cc
        files[f"preds_{s}"] = preds
        if isinstance(fitted.model, BandedRidgeCV):  # design.banded
            parts = fitted.model.predict([d[test] for d in design.designs], split=True)
            split = split_correlation(y_test, parts)
            for k, name in enumerate(names):
                files[f"preds_{s}_{name}"] = parts[k]
                files[f"cc_{s}_{name}"] = split[k]
    if isinstance(fitted.model, BandedRidgeCV):  # design.banded
        for k, name in enumerate(names):
            files[f"coef_{s}_{name}"] = fitted.model.coefs_[k]
    summary: dict[str, Any] = {"mean_cv_cc": float(fitted.cv_cc.mean())}
    if cc is not None:
        summary.update(mean_cc=float(cc.mean()), median_cc=float(np.median(cc)), max_cc=float(cc.max()))
        if inputs.noise_ceiling is not None:
            from berg_core.fit.stats import cc_norm

            files[f"cc_norm_{s}"] = cc_norm(cc, inputs.noise_ceiling)
            summary["mean_cc_norm"] = float(files[f"cc_norm_{s}"].mean())
        if pcorr is not None:
            summary[f"n_significant_fdr{cfg.fdr_q:g}"] = int((pcorr <= cfg.fdr_q).sum())
    return Scores(files=files, cc=cc, pvalues=pvals, pvalues_corrected=pcorr, preds=preds, summary=summary, perm_block=block, notes=notes)


def write_outputs(cfg: TrainConfig, inputs: Inputs, design: Design, fitted: Fitted, scores: Scores) -> TrainResult:
    """Stage 5: the ``.npy`` files, the histogram, ``summary.json`` and the trained-encoder folder, written as a unit."""
    from berg_core.trained.encoder import staged_folder, write_encoder_dir

    out, s, names, n_comp = inputs.out, inputs.suffix, inputs.names, inputs.n_components
    n = inputs.Y.shape[0]
    model, coef, cc, pcorr = fitted.model, fitted.coef, scores.cc, scores.pvalues_corrected
    solver = f"banded ({model.solver_}, {cfg.banded_engine})" if design.banded else f"RidgeCV ({model.solver_})"
    training = {
        "berg_core": _version(),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "inputs": {"features": {nm: {"file": str(f), "sha256": _sha256(f), "shape": list(x.shape)}
                                for nm, f, x in zip(names, cfg.features, inputs.spaces)},
                   "responses": {"file": str(cfg.responses), "sha256": _sha256(cfg.responses), "shape": list(inputs.Y.shape)}},
        "n_samples": int(n), "n_train": int(inputs.train_rows.size), "n_test": int(inputs.test.size),
        "test": cfg.test, "cv": f"groups from {cfg.cv_groups}" if cfg.cv_groups else f"{cfg.folds} contiguous folds",
        "alphas": inputs.alphas.tolist(), "alpha_convention": cfg.alpha_convention, "scoring": cfg.scoring, "solver": solver, "dtype": str(inputs.dtype), "backend": cfg.backend,
        "delays": list(cfg.delays), "delay_mode": cfg.delay_mode, "segments": cfg.segments, "reduce": cfg.reduce,
        "permutations": cfg.permutations, "perm_block": scores.perm_block, "perm_block_from": "given" if cfg.perm_block else "data",
        "perm_mode": cfg.perm_mode, "fdr_q": cfg.fdr_q, "notes": scores.notes,
        "n_iter": cfg.n_iter if design.banded else None, "seed": cfg.seed,
    }
    model_id = cfg.model_id or "trained-" + re.sub(r"[^A-Za-z0-9_.+=-]+", "_", out.name)[:190]
    card = {
        "model_id": model_id,
        "description": cfg.description,
        "stimulus": cfg.stimulus,
        "feature_spaces": [
            {"name": nm, "backbone": bb, "revision": None, "layer": la, "pooling": cfg.pooling if cfg.stimulus == "sentences" else None,
             "n_features": int(x.shape[1]), "reduce": {"method": "pca", "n_components": int(n_comp)} if n_comp else None}
            for nm, bb, la, x in zip(names, inputs.backbones, inputs.layers, inputs.spaces)
        ],
        "delays": list(cfg.delays), "delay_mode": cfg.delay_mode,
        "tr": cfg.tr,
        "outputs": {"names": inputs.output_names},
        "rois": inputs.rois,
        "scores": scores.summary,
        "training": training,
        "card": cfg.card_text or "",
    }
    if inputs.space is not None:
        card["space"] = {"mask": SPACE_MASK, "reference": SPACE_REFERENCE, "n_voxels": int(inputs.space.n_voxels), "name": cfg.space_name}
        training["inputs"]["space"] = {flag: {"file": str(path), "sha256": _sha256(str(path))}
                                       for flag, path in (("mask", inputs.space.mask), ("reference", inputs.space.reference))}
    if inputs.noise_ceiling is not None:
        training["inputs"]["noise_ceiling"] = {"file": str(cfg.noise_ceiling), "sha256": _sha256(str(cfg.noise_ceiling))}
    maps = _maps(cfg, inputs, scores, model_id)
    extra_files = ([NOISE_CEILING_FILE] if inputs.noise_ceiling is not None else []) + \
        ([SPACE_MASK, SPACE_REFERENCE] if inputs.space is not None else []) + [f for name in maps for f in (name, _sidecar(name))]
    arrays = {"cv_cc": fitted.cv_cc, "alphas": fitted.best_alphas}
    if cc is not None:
        arrays["cc"] = cc
    if pcorr is not None:
        arrays["pvalues_corrected"] = pcorr
    summary = {"suffix": s, "model_id": model_id, "feature_spaces": names, "n_voxels": int(inputs.Y.shape[1]),
               "n_weight_rows": int(coef.shape[0]), "scores": scores.summary, "files": sorted(f"{k}.npy" for k in scores.files)
               + ([f"dist_{s}.png"] if cc is not None else []) + extra_files, "training": training, "config": asdict(cfg)}
    # every file goes into a hidden sibling folder that replaces ``out`` only once complete
    with staged_folder(out, overwrite=cfg.overwrite) as stage:
        for key, value in scores.files.items():
            np.save(stage / f"{key}.npy", np.asarray(value))
        if cc is not None:
            _histogram(cc, stage / f"dist_{s}.png", title=f"test correlation ({s}, {len(cc)} voxels)")
        if inputs.noise_ceiling is not None:
            np.save(stage / NOISE_CEILING_FILE, inputs.noise_ceiling)
        if inputs.space is not None:
            _copy_gzipped(inputs.space.mask, stage / SPACE_MASK)
            _copy_gzipped(inputs.space.reference, stage / SPACE_REFERENCE)
            _write_maps(maps, stage, inputs.space)
        write_encoder_dir(stage, card=card, coef=coef, intercept=fitted.intercept,
                          pca=[(p.mean_, p.components_) if p is not None else None for p in design.pcas], arrays=arrays,
                          show_progress=cfg.show_progress)
        (stage / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    return TrainResult(out=out, suffix=s, cv_cc=fitted.cv_cc, cc=cc, pvalues_corrected=pcorr, preds=scores.preds, coef=coef, summary=summary)


#: file names of the copies of the subject space and the noise ceiling in the output folder
SPACE_MASK = "space_mask.nii.gz"
SPACE_REFERENCE = "space_reference.nii.gz"
NOISE_CEILING_FILE = "noise_ceiling.npy"


def _maps(cfg: TrainConfig, inputs: Inputs, scores: Scores, model_id: str) -> dict[str, tuple[np.ndarray, dict[str, Any]]]:
    """The 3-D maps to write with a subject space: file name -> (values per mask voxel (v,), sidecar attributes)."""
    s = inputs.suffix
    if inputs.space is None or scores.cc is None:
        return {}
    base: dict[str, Any] = {"model_id": model_id, "berg_core": _version(), "suffix": s, "space": cfg.space_name}
    maps = {f"map_r_{s}.nii.gz": (scores.cc, {**base, "map": "test Pearson r of the predictions per voxel", "units": "r"})}
    if f"cc_norm_{s}" in scores.files:
        maps[f"map_cc_norm_{s}.nii.gz"] = (scores.files[f"cc_norm_{s}"], {**base, "map": "test r / noise ceiling (CCmax) per voxel",
                                                                          "units": "cc_norm"})
    if scores.pvalues_corrected is not None:
        significant = (scores.pvalues_corrected <= cfg.fdr_q).astype(np.float32)
        maps[f"map_significant_{s}.nii.gz"] = (significant, {**base, "map": f"1 where the BH-FDR corrected permutation p <= {cfg.fdr_q:g}, "
                                                             "0 elsewhere in the mask", "units": "0/1", "fdr_q": cfg.fdr_q})
    return maps


def _sidecar(name: str) -> str:
    return name.removesuffix(".nii.gz") + ".json"


def _write_maps(maps: dict[str, tuple[np.ndarray, dict[str, Any]]], folder: Path, space: VoxelSpace) -> None:
    """Each map as a 3-D NIfTI in ``folder`` on the copies of the space's files (``berg_core.store.volumes.write_map``)."""
    from dataclasses import replace

    from berg_core.store.volumes import write_map

    copied = replace(space, mask=folder / SPACE_MASK, reference=folder / SPACE_REFERENCE)
    for name, (values, attrs) in maps.items():
        write_map(folder / name, values, copied, attrs)


def _copy_gzipped(src: Path, dest: Path) -> None:
    """Copy a NIfTI to ``dest`` (.nii.gz), gzip-compressing it unless it already is."""
    import gzip

    data = src.read_bytes()
    dest.write_bytes(data if data[:2] == b"\x1f\x8b" else gzip.compress(data, compresslevel=6, mtime=0))


def _delay(x: np.ndarray, delays: Sequence[int], mode: Literal["fir", "mean"]) -> np.ndarray:
    from berg_core.features.timeseries import delay

    return delay(x, delays, mode=mode)


def _version() -> str:
    from berg_core import __version__

    return __version__


def read_text_file(path: str, flag: str) -> str:
    """A UTF-8 text file given with ``flag``; undecodable or unreadable: one line."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidParameterError(f"{flag} {path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from exc
    except OSError as exc:
        raise ResourceError(f"{flag} {path}: cannot be read ({exc.strerror}); give an existing text file") from exc


def _read_names(path: str | None, n: int) -> list[str] | None:
    """One output name per line of a UTF-8 text file (blank lines ignored); exactly ``n`` of them."""
    if not path:
        return None
    names = [line.strip() for line in read_text_file(path, "--output-names").splitlines() if line.strip()]
    if len(names) != n:
        raise InvalidParameterError(f"--output-names {path}: {len(names)} names for {n} response columns")
    from berg_core.trained.cards import CONTROL_RE

    if any(len(name) > 1000 or CONTROL_RE.search(name) for name in names):
        raise InvalidParameterError(f"--output-names {path}: names must be at most 1000 characters, without control characters")
    return names


def _read_rois(path: str | None, n: int) -> dict[str, list[int]] | None:
    """ROIs from JSON: ``{name: [column indices] | 0/1 mask of length n}``."""
    from berg_core.trained.cards import CONTROL_RE

    if not path:
        return None
    try:
        data = json.loads(read_text_file(path, "--rois"))
    except (ValueError, RecursionError) as exc:
        raise InvalidParameterError(f"--rois {path}: not valid JSON ({exc}); give {{name: [indices]}}") from exc
    if not isinstance(data, dict):
        raise InvalidParameterError(f"--rois {path}: expected a JSON object {{name: [indices]}}")
    out = {}
    for name, value in data.items():
        ints = isinstance(value, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in value)
        if not ints or len(name) > 1000 or CONTROL_RE.search(name):
            raise InvalidParameterError(f"--rois {path}: ROI {name!r} must be a list of column indices (or a 0/1 mask)")
        idx = [i for i, v in enumerate(value) if v] if len(value) == n and set(value) <= {0, 1} else value
        if not idx or min(idx) < 0 or max(idx) >= n:
            raise InvalidParameterError(f"--rois {path}: ROI {name!r} must list column indices in 0..{n - 1} (or be a 0/1 mask)")
        out[str(name)] = sorted(set(idx))
    return out


def _histogram(values: np.ndarray, path: Path, *, title: str) -> None:
    """Headless histogram PNG (matplotlib's object API, no pyplot/GUI backend)."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise InvalidParameterError(f"the dist_*.png histogram needs matplotlib: pip install 'berg-core[train]' ({exc})") from exc
    fig = Figure(figsize=(5, 3.5), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.hist(values, bins=50, color="#4477aa")
    ax.axvline(float(np.mean(values)), color="k", linestyle="--", linewidth=1, label=f"mean {np.mean(values):.3f}")
    ax.set_xlabel("Pearson r (test)")
    ax.set_ylabel("voxels")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
