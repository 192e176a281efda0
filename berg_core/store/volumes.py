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
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from berg_core.errors import BergError, DownloadError, InvalidParameterError, ModelLoadError
from berg_core.store.cache import atomic_path, cache_root
from berg_core.store.fetch import CHUNK_BYTES, NOTICE_MARKER, ensure_file

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
    ``n_voxels`` columns), ``reference`` (NIfTI whose affine is the space's), ``tr_s`` (seconds per row)."""

    mask: Path
    reference: Path
    n_voxels: int
    tr_s: float


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


def _nibabel() -> Any:
    try:
        import nibabel
    except ImportError as exc:
        raise VolumeError("writing .nii.gz needs nibabel: pip install 'berg-core[maps]' (or write .npy/.h5)") from exc
    return nibabel


def read_mask(space: VoxelSpace) -> np.ndarray:
    """The mask as bool (z, y, x); its voxel count must equal ``space.n_voxels`` (else one ``VolumeError`` line)."""
    nib = _nibabel()
    try:
        mask_zyx: np.ndarray = np.asarray(nib.load(space.mask).get_fdata()).T != 0
    except Exception as exc:  # noqa: BLE001 - nibabel raises many kinds for a damaged file
        raise ModelLoadError(f"{space.mask} is not a readable NIfTI mask ({type(exc).__name__}); delete it to fetch it again") from exc
    if mask_zyx.ndim != 3 or int(mask_zyx.sum()) != space.n_voxels:
        raise VolumeError(f"the mask {space.mask.name} has {int(mask_zyx.sum())} voxels but the model has {space.n_voxels} "
                          "columns: refusing to place predictions in the wrong voxels (write .npy/.h5 instead)")
    return mask_zyx


def voxel_volume(values: np.ndarray, mask_zyx: np.ndarray, voxels: np.ndarray | None = None) -> np.ndarray:
    """float32 (x, y, z, n_maps): ``values`` (n_maps, n_selected) at the mask voxels ``voxels`` (indices into the
    mask's C-order (z, y, x) voxels; None = all), NaN elsewhere."""
    n_maps = values.shape[0]
    flat = np.full((int(mask_zyx.sum()), n_maps), np.nan, np.float32)
    flat[slice(None) if voxels is None else np.asarray(voxels, dtype=np.int64)] = values.T
    vol = np.full(mask_zyx.shape + (n_maps,), np.nan, np.float32)
    vol[mask_zyx] = flat
    return vol.transpose(2, 1, 0, 3)


def write_volume(path: str | Path, responses: np.ndarray, space: VoxelSpace, *, voxels: np.ndarray | None = None,
                 summary: str | None = None, attrs: dict[str, Any] | None = None) -> Path:
    """Write ``responses`` (n_TRs, n_selected) float32 as a NIfTI in ``space`` (atomically), with a JSON sidecar.

    4-D (x, y, z, TR) with ``pixdim[4] = tr_s`` in seconds, or with ``summary`` (mean|max|std over the TRs) 3-D;
    the reference's affine; NaN outside the selected voxels.
    """
    if summary is not None and summary not in SUMMARIES:
        raise VolumeError(f"--summary must be one of {', '.join(SUMMARIES)}, got {summary!r}")
    responses = np.asarray(responses, dtype=np.float32)
    n_sel = space.n_voxels if voxels is None else len(voxels)
    if responses.ndim != 2 or responses.shape[1] != n_sel:
        raise VolumeError(f"predictions of shape {responses.shape} do not fit {n_sel} selected voxels")
    nib = _nibabel()
    mask_zyx = read_mask(space)
    try:
        ref = nib.load(space.reference)
        affine = np.asarray(ref.affine, dtype=np.float64)
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"{space.reference} is not a readable NIfTI ({type(exc).__name__}); delete it to fetch it again") from exc
    if ref.shape[:3] != mask_zyx.shape[::-1]:
        raise VolumeError(f"the mask {mask_zyx.shape[::-1]} and the reference {ref.shape[:3]} are not the same grid")
    maps = responses if summary is None else getattr(np, summary)(responses, axis=0, keepdims=True)
    vol = voxel_volume(maps, mask_zyx, voxels)
    img = nib.Nifti1Image(vol if summary is None else vol[..., 0], affine)
    img.header.set_xyzt_units("mm", "sec")
    if summary is None:
        zooms = img.header.get_zooms()
        img.header.set_zooms((*zooms[:3], float(space.tr_s)))
    img.header.set_data_dtype(np.float32)
    path = Path(path)
    gz = path.name.lower().endswith(".gz")
    data = img.to_bytes()
    with atomic_path(path) as tmp:
        tmp.write_bytes(gzip.compress(data, compresslevel=6, mtime=0) if gz else data)
    side = path.with_name(path.name[: -len(".nii.gz" if gz else ".nii")] + ".json")
    meta = {**(attrs or {}), "tr_s": float(space.tr_s), "summary": summary or "", "n_trs": int(responses.shape[0]),
            "n_selected_voxels": int(n_sel)}
    with atomic_path(side) as tmp:
        tmp.write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return path


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
