"""Voxelwise predictions as brain volumes (NIfTI), and the subject-space files they need.

A voxelwise model whose columns are the voxels of a subject's mask (LeBel: pycortex ``mask_thick``, read as
``get_fdata().T != 0``, i.e. (z, y, x) order, flattened C-order) maps its predictions into that subject's
functional space with the affine of the matching ``reference.nii.gz``. nibabel is the ``berg-core[maps]``
extra, imported here only when a volume is written.

Files outside BERG's bucket (e.g. OpenNeuro's export) are fetched with ``ensure_external_file``: same download,
resume, lock and manifest as BERG's files (``berg_core.store.fetch.ensure_file``), kept under berg's cache
(``$BERG_CACHE_DIR/external``), checked by size and MD5.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from berg_core.errors import BergError, DownloadError, InvalidParameterError, ModelLoadError
from berg_core.store.cache import atomic_path, cache_root
from berg_core.store.fetch import CHUNK_BYTES, NOTICE_MARKER, ensure_file
from berg_core.store.userfiles import write_sidecar

SUMMARIES = ("mean", "max", "std")
#: ``$BERG_OPENNEURO_URL``: base URL of the OpenNeuro export (a mirror, or a loopback server in tests)
OPENNEURO_URL = "https://s3.amazonaws.com/openneuro.org"
OPENNEURO_SETTING = "BERG_OPENNEURO_URL"


class VolumeError(InvalidParameterError):
    """A volume cannot be written as asked (mask and predictions disagree, no subject space, nibabel missing)."""


@dataclass(frozen=True)
class ExternalFile:
    """A file of a public dataset export: ``rel`` under the export's base URL, with its known size and MD5."""

    rel: str
    size: int
    md5: str


@dataclass(frozen=True)
class VoxelSpace:
    """Where a voxelwise model's columns sit: ``mask`` (NIfTI; its nonzero voxels, read (z, y, x) C-order, are the
    ``n_voxels`` columns), ``reference`` (NIfTI whose affine is the space's), ``tr_s`` (seconds per row; None when
    the rows are not time, e.g. one per sentence)."""

    mask: Path
    reference: Path
    n_voxels: int
    tr_s: float | None


def openneuro_url() -> str:
    """``$BERG_OPENNEURO_URL`` (trailing ``/`` stripped) if set, else OpenNeuro's public S3 export."""
    env = os.environ.get(OPENNEURO_SETTING, "").strip()
    return env.rstrip("/") if env else OPENNEURO_URL


def md5_file(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK_BYTES):
            h.update(block)
    return h.hexdigest()


def ensure_external_file(f: ExternalFile, *, base_url: str | None = None, show_progress: bool = False,
                         model_id: str | None = None) -> Path:
    """The local copy of ``f`` (downloaded on first use from ``base_url``, default ``openneuro_url()``), size- and
    MD5-checked; a file failing its MD5 is deleted and the error says so (one ``DownloadError`` line)."""
    root = cache_root() / "external"
    base = (base_url or openneuro_url()).rstrip("/")
    with contextlib.suppress(OSError):  # not BERG's files: no notice about BERG's bucket and terms
        root.mkdir(parents=True, exist_ok=True)
        (root / NOTICE_MARKER).touch()
    try:
        path = ensure_file(f.rel, root, size=f.size, show_progress=show_progress, model_id=model_id, url=f"{base}/{f.rel}")
    except DownloadError as exc:  # the downloader's hint names BERG's mirror setting; this file comes from elsewhere
        raise DownloadError(str(exc).replace("BERG_BASE_URL points at BERG's bucket or an exact mirror",
                                             f"${OPENNEURO_SETTING} points at {OPENNEURO_URL} or an exact mirror")
                            .replace("BERG_BASE_URL", f"${OPENNEURO_SETTING}")) from exc
    digest = md5_file(path)
    if digest != f.md5.lower():
        path.unlink(missing_ok=True)
        raise DownloadError(f"{f.rel} from {base} is not the published file (MD5 {digest} instead of {f.md5}); it was "
                            f"deleted: check ${OPENNEURO_SETTING} points at a faithful mirror and try again")
    return path


def nibabel_module() -> Any:
    """nibabel (the ``berg-core[maps]`` extra), imported on first use; missing: one ``VolumeError`` line."""
    try:
        import nibabel
    except ImportError as exc:
        raise VolumeError("reading or writing .nii/.nii.gz needs nibabel: pip install 'berg-core[maps]' (or use .npy/.h5)") from exc
    return nibabel


def load_mask(path: Path, *, fix: str = "delete it to fetch it again") -> np.ndarray:
    """A NIfTI mask as bool (z, y, x) (pycortex's ``get_fdata().T != 0``); unreadable or not 3-D: one line."""
    nib = nibabel_module()
    try:
        mask_zyx: np.ndarray = np.asarray(nib.load(path).get_fdata()).T != 0
    except Exception as exc:  # noqa: BLE001 - nibabel raises many kinds for a damaged file
        raise ModelLoadError(f"{path} is not a readable NIfTI mask ({type(exc).__name__}); {fix}") from exc
    if mask_zyx.ndim != 3:
        raise VolumeError(f"the mask {Path(path).name} is {mask_zyx.ndim}-D; a voxel mask must be a 3-D NIfTI")
    return mask_zyx


def load_reference(path: Path, *, fix: str = "delete it to fetch it again", read_data: bool = False) -> tuple[tuple[int, ...], np.ndarray]:
    """The grid (x, y, z) and the 4×4 affine of a reference NIfTI (``read_data``: also decode its voxels, so a
    truncated file is refused now); unreadable: one line."""
    nib = nibabel_module()
    try:
        ref = nib.load(path)
        affine = np.asarray(ref.affine, dtype=np.float64)
        if read_data:
            np.asanyarray(ref.dataobj)
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"{path} is not a readable NIfTI ({type(exc).__name__}); {fix}") from exc
    if len(ref.shape) < 3 or affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise VolumeError(f"the reference {Path(path).name} has shape {ref.shape}: a reference must be a 3-D (or 4-D) NIfTI with an affine")
    return tuple(int(n) for n in ref.shape[:3]), affine


def read_mask(space: VoxelSpace) -> np.ndarray:
    """The mask as bool (z, y, x); its voxel count must equal ``space.n_voxels`` (else one ``VolumeError`` line)."""
    mask_zyx = load_mask(space.mask)
    if int(mask_zyx.sum()) != space.n_voxels:
        raise VolumeError(f"the mask {space.mask.name} has {int(mask_zyx.sum())} voxels but the model has {space.n_voxels} "
                          "columns: refusing to place predictions in the wrong voxels (write .npy/.h5 instead)")
    return mask_zyx


def space_grid(space: VoxelSpace) -> tuple[np.ndarray, np.ndarray]:
    """``(mask (z, y, x) bool, affine 4×4)`` of ``space``, checked: voxel count, reference readable, same grid."""
    mask_zyx = read_mask(space)
    shape, affine = load_reference(space.reference)
    if shape != mask_zyx.shape[::-1]:
        raise VolumeError(f"the mask {mask_zyx.shape[::-1]} and the reference {shape} are not the same grid")
    return mask_zyx, affine


def voxel_volume(values: np.ndarray, mask_zyx: np.ndarray, voxels: np.ndarray | None = None) -> np.ndarray:
    """float32 (x, y, z, n_maps): ``values`` (n_maps, n_selected) at the mask voxels ``voxels`` (indices into the
    mask's C-order (z, y, x) voxels; None = all), NaN elsewhere."""
    n_maps = values.shape[0]
    flat = np.full((int(mask_zyx.sum()), n_maps), np.nan, np.float32)
    flat[slice(None) if voxels is None else np.asarray(voxels, dtype=np.int64)] = values.T
    vol = np.full(mask_zyx.shape + (n_maps,), np.nan, np.float32)
    vol[mask_zyx] = flat
    return vol.transpose(2, 1, 0, 3)


def _write_nifti(path: Path, vol: np.ndarray, space: VoxelSpace, affine: np.ndarray, meta: dict[str, Any], *,
                 step: tuple[float, str] | None = None) -> Path:
    """Write float32 ``vol`` (x, y, z[, n]) with ``affine`` atomically (gzip when ``path`` ends in .gz), xyz units mm,
    and the JSON sidecar ``meta`` + the space's reference (``reference_entry``) beside it. 4-D: ``step`` = (pixdim[4],
    its unit: "sec" or "unknown")."""
    nib = nibabel_module()
    img = nib.Nifti1Image(np.asarray(vol, dtype=np.float32), affine)
    t_step, t_unit = step or (0.0, "sec")
    img.header.set_xyzt_units("mm", t_unit)
    if vol.ndim == 4:
        img.header.set_zooms((*img.header.get_zooms()[:3], float(t_step)))
    img.header.set_data_dtype(np.float32)
    gz = path.name.lower().endswith(".gz")
    data = img.to_bytes()
    with atomic_path(path) as tmp:
        tmp.write_bytes(gzip.compress(data, compresslevel=6, mtime=0) if gz else data)
    write_sidecar(path, {**meta, "reference": reference_entry(space, path)})
    return path


def write_volume(path: str | Path, responses: np.ndarray, space: VoxelSpace, *, voxels: np.ndarray | None = None,
                 summary: str | None = None, attrs: dict[str, Any] | None = None) -> Path:
    """Write ``responses`` (n_rows, n_selected) float32 as a NIfTI in ``space`` (atomically), with a JSON sidecar.

    4-D (x, y, z, row) or with ``summary`` (mean|max|std over the rows) 3-D; the reference's affine; NaN outside
    the selected voxels. Rows are TRs when ``space.tr_s`` is set (``pixdim[4] = tr_s``, unit seconds); with
    ``tr_s`` None (sentences: one volume per sentence, not time) ``pixdim[4] = 1`` and the time unit "unknown".
    """
    if summary is not None and summary not in SUMMARIES:
        raise VolumeError(f"--summary must be one of {', '.join(SUMMARIES)}, got {summary!r}")
    responses = np.asarray(responses, dtype=np.float32)
    n_sel = space.n_voxels if voxels is None else len(voxels)
    if responses.ndim != 2 or responses.shape[1] != n_sel:
        raise VolumeError(f"predictions of shape {responses.shape} do not fit {n_sel} selected voxels")
    mask_zyx, affine = space_grid(space)
    maps = responses if summary is None else getattr(np, summary)(responses, axis=0, keepdims=True)
    vol = voxel_volume(maps, mask_zyx, voxels)
    step = (float(space.tr_s), "sec") if space.tr_s is not None else (1.0, "unknown")
    meta = {**(attrs or {}), "tr_s": None if space.tr_s is None else float(space.tr_s), "summary": summary or "",
            "n_trs" if space.tr_s is not None else "n_rows": int(responses.shape[0]), "n_selected_voxels": int(n_sel)}
    return _write_nifti(Path(path), vol if summary is None else vol[..., 0], space, affine, meta, step=None if summary else step)


def reference_entry(space: VoxelSpace, out: Path) -> str:
    """How a volume's sidecar names its background image (``berg plot`` draws on it): the file name when the
    reference sits beside ``out`` (a train folder's ``space_reference.nii.gz``), else its absolute path (berg's cache)."""
    reference = Path(space.reference).resolve()
    return reference.name if reference.parent == out.resolve().parent else str(reference)


def write_map(path: str | Path, values: np.ndarray, space: VoxelSpace, attrs: dict[str, Any] | None = None) -> Path:
    """Write one value per mask voxel, ``values`` (n_voxels,) in the mask's (z, y, x) C-order, as a 3-D float32 NIfTI
    in ``space`` (the reference's affine, NaN outside the mask, units mm), atomically, with a JSON sidecar ``attrs``."""
    values = np.asarray(values, dtype=np.float32).reshape(-1)
    if values.shape[0] != space.n_voxels:
        raise VolumeError(f"a map of {values.shape[0]} values does not fit the {space.n_voxels} voxels of the space")
    mask_zyx, affine = space_grid(space)
    meta = {**(attrs or {}), "n_voxels": int(space.n_voxels)}
    return _write_nifti(Path(path), voxel_volume(values[None], mask_zyx)[..., 0], space, affine, meta)


def write_model_volume(model: Any, path: str | Path, responses: np.ndarray, labels: Any, *, summary: str | None = None) -> Path:
    """Write a loaded model's predictions as a volume: the model gives ``voxel_space()`` (a ``VoxelSpace``) and
    ``selected_voxels()`` (indices into the mask's voxels, or None for all); ``labels``: its ``OutputLabels``."""
    space_of = getattr(model, "voxel_space", None)
    if not callable(space_of):
        raise VolumeError(f"{model.model_id} has no subject space to map its outputs into; write .npy, .csv, .h5 or .nc")
    try:
        space = space_of()
        voxels = model.selected_voxels()
    except BergError:
        raise
    except Exception as exc:  # noqa: BLE001 - a plugin bug
        raise ModelLoadError(f"{model.model_id}: finding its subject space failed ({type(exc).__name__}: {exc})") from exc
    return write_volume(path, responses, space, voxels=voxels, summary=summary, attrs=labels.attrs)
