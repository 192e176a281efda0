"""Brain volumes (NIfTI) as figures: an orthogonal-slice view, a glass view, and voxel time courses.

* Ortho view (``ortho``): nilearn's ``plot_stat_map`` (the ``berg-core[maps]`` extra, imported lazily) cut at the world
  coordinates (``affine @ (i, j, k, 1)``) of the peak |value| voxel, on a background image: ``--bg FILE``, else the
  ``reference`` path recorded in the file's JSON sidecar (``pred.nii.gz`` -> ``pred.json``; relative paths are read
  from the sidecar's folder), else none (never nilearn's default MNI template: berg's volumes are mostly in a
  subject's native space). Without nilearn: the three voxel-grid slices through the peak voxel, drawn with matplotlib
  (the title says so).
* Glass view (``glass``): nilearn's glass brain draws an MNI152 outline, which is wrong in a subject-native space
  (LeBel's 2.6 mm functional space is not MNI). berg therefore draws its own, in any space: three maximum-|value|
  projections of the voxel grid reoriented to RAS (NaN ignored; a line of all-NaN voxels stays light grey), laid out as
  nilearn's views are (the subject's left on the left), each axis labelled with its direction and the file's voxel axis,
  pixels shaped by the voxel sizes.
* A 4-D file (x, y, z, TR): the views show the mean over TRs, and ``timecourse`` draws chosen voxels' series
  (``--voxels i,j,k[;i,j,k]``, default the peak voxel of the mean map) against time in s (``pixdim[4]`` in the header's
  time unit), or against the volume number when the time unit is unknown (e.g. one volume per sentence).

Every figure is a ``matplotlib.figure.Figure`` made without pyplot, so callers and tests read back what was drawn.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from berg_core.errors import InvalidParameterError, ResourceError
from berg_core.figures.readers import MAX_BYTES, ResultFileError, read_sidecar
from berg_core.store.volumes import nibabel_module

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from matplotlib.image import AxesImage

#: ``--kind`` values that draw a volume
VOLUME_KINDS = ("auto", "brain", "ortho", "glass", "timecourse")
#: at most this many voxels' time courses in one figure
MAX_VOXELS = 12
#: seconds per unit of NIfTI's time units
TIME_UNITS = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}
WHAT = "NIfTI volume (.nii.gz or .nii, 3-D map or 4-D x, y, z, TR)"


def is_volume_path(path: str | Path) -> bool:
    return Path(path).name.lower().endswith((".nii", ".nii.gz"))


@dataclass
class Volume:
    """A NIfTI volume: ``data`` float32 (x, y, z) or (x, y, z, n_TRs), NaN where there is no value; ``affine`` (4, 4)
    voxel -> world (mm); ``tr_s`` seconds per volume of a 4-D file (None when the header has none); ``reference`` the
    background image to draw it on (or None)."""

    path: Path
    data: np.ndarray
    affine: np.ndarray
    tr_s: float | None
    reference: Path | None

    @property
    def is_4d(self) -> bool:
        return self.data.ndim == 4

    def map3d(self) -> np.ndarray:
        """The 3-D map the views show: the data itself, or for a 4-D file the mean over TRs (NaN where all are NaN)."""
        if not self.is_4d:
            return self.data
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN voxels outside the selection stay NaN
            return np.asarray(np.nanmean(self.data, axis=3), dtype=np.float32)


def _load_image(path: Path, what: str) -> Any:
    nib = nibabel_module()
    if not path.is_file():
        raise ResourceError(f"{str(path)!r} not found; give a {what}")
    try:
        return nib.load(str(path))
    except Exception as exc:  # noqa: BLE001 - nibabel raises many kinds for a damaged or foreign file
        raise ResultFileError(f"{str(path)!r} is not a readable NIfTI ({type(exc).__name__}); give a {what}") from exc


def read_volume(path: str | Path, bg: str | Path | None = None) -> Volume:
    """Read a 3-D or 4-D NIfTI (one ``BergError`` line for a missing, damaged or non-volume file); ``bg`` overrides the
    background recorded in its sidecar."""
    path = Path(path)
    img = _load_image(path, WHAT)
    shape = tuple(int(s) for s in img.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) not in (3, 4) or min(shape) < 1:
        raise ResultFileError(f"{str(path)!r} holds an image of shape {tuple(img.shape)}; give a {WHAT}")
    if int(np.prod(shape)) * 4 > MAX_BYTES:
        raise ResultFileError(f"{str(path)!r} holds {int(np.prod(shape)) * 4 >> 20} MiB of float32; give a 3-D summary map "
                              "(berg encode --summary mean) or a shorter 4-D file")
    try:
        data = np.asarray(img.get_fdata(dtype=np.float32), dtype=np.float32).reshape(shape)
        affine = np.asarray(img.affine, dtype=np.float64)
        zooms = img.header.get_zooms()
        unit = img.header.get_xyzt_units()[1]
    except Exception as exc:  # noqa: BLE001 - truncated data, odd header
        raise ResultFileError(f"{str(path)!r} is a damaged NIfTI ({type(exc).__name__}); give a {WHAT}") from exc
    if affine.shape != (4, 4) or not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) == 0:
        raise ResultFileError(f"{str(path)!r} has no usable affine; give a {WHAT}")
    tr = None  # a time unit "unknown" (berg's one-volume-per-sentence files) is no time axis
    if len(shape) == 4 and len(zooms) > 3 and float(zooms[3]) > 0 and str(unit) in TIME_UNITS:
        tr = float(zooms[3]) * TIME_UNITS[str(unit)]
    return Volume(path, data, affine, tr, Path(bg) if bg is not None else recorded_reference(path))


def recorded_reference(path: Path) -> Path | None:
    """The background image recorded in the volume's JSON sidecar (key ``reference``), if that file exists."""
    ref = read_sidecar(path).get("reference")
    if not isinstance(ref, str) or not ref:
        return None
    found = Path(ref) if Path(ref).is_absolute() else path.parent / ref
    if not found.is_file():
        from berg_core.console import notice

        notice(f"the reference {ref!r} recorded for {path.name} is not there; drawing without a background (give --bg FILE)")
        return None
    return found


def peak_voxel(map3: np.ndarray) -> tuple[int, int, int]:
    """The (i, j, k) index of the largest |value| (NaN ignored)."""
    a = np.abs(map3)
    if not np.isfinite(a).any():
        raise InvalidParameterError("the map has no finite values (all NaN); nothing to draw")
    i, j, k = np.unravel_index(int(np.nanargmax(np.where(np.isfinite(a), a, np.nan))), a.shape)
    return int(i), int(j), int(k)


def world(affine: np.ndarray, ijk: tuple[int, ...]) -> np.ndarray:
    """World coordinates (mm) of voxel ``ijk``: ``affine @ (i, j, k, 1)``."""
    return np.asarray(affine @ np.array([*ijk[:3], 1.0]), dtype=np.float64)[:3]


def axis_codes(affine: np.ndarray) -> tuple[str, str, str]:
    """The direction each voxel axis runs toward (``R``/``L``, ``A``/``P``, ``S``/``I``), from the affine."""
    codes = nibabel_module().aff2axcodes(affine)
    return tuple(str(c) if c is not None else "?" for c in codes)  # type: ignore[return-value]


VIEW = {"R": "sagittal", "L": "sagittal", "A": "coronal", "P": "coronal", "S": "axial", "I": "axial", "?": "projection"}


def _plain_figure(width: float, height: float, constrained: bool = True) -> Figure:
    from berg_core.figures.plots import _figure

    return _figure(width, height, "constrained" if constrained else None)


def _voxel_sizes(affine: np.ndarray) -> np.ndarray:
    return np.asarray(np.linalg.norm(affine[:3, :3], axis=0), dtype=np.float64)


def _bg_data(bg: Path | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """The background image's data when it is on the same voxel grid (the matplotlib fallback does not resample)."""
    if bg is None:
        return None
    data = np.asarray(_load_image(bg, "background NIfTI (--bg)").get_fdata(dtype=np.float32))
    return data if data.shape[:3] == shape[:3] and data.ndim == 3 else None


def plot_ortho(map3: np.ndarray, affine: np.ndarray, *, bg: Path | None = None, title: str = "") -> Figure:
    """Orthogonal slices cut at the peak |value| voxel, on ``bg``: nilearn's ``plot_stat_map``, else voxel-grid slices.

    nilearn draws a cross in each panel at the cut (its lines' positions are the cut's world coordinates, mm).
    """
    ijk = peak_voxel(map3)
    cut = world(affine, ijk)
    peak = float(map3[ijk])
    label = f"{title}: peak {peak:.3g} at voxel {ijk} = ({cut[0]:.1f}, {cut[1]:.1f}, {cut[2]:.1f}) mm"
    try:
        from nilearn import plotting
    except ImportError:
        return _ortho_fallback(map3, affine, ijk, bg=bg, title=label + " (voxel grid; pip install 'berg-core[maps]' for nilearn)")
    nib = nibabel_module()
    img = nib.Nifti1Image(np.array(map3, dtype=np.float32), affine)  # a copy: nilearn sets NaN to 0 in place
    bg_img = _load_image(bg, "background NIfTI (--bg)") if bg is not None else None
    fig = _plain_figure(11, 4, constrained=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nilearn warns about resampling a non-diagonal affine and NaN set to 0
        plotting.plot_stat_map(img, bg_img=bg_img, cut_coords=tuple(float(c) for c in cut), display_mode="ortho", figure=fig,
                               axes=(0.0, 0.0, 1.0, 0.9), colorbar=True, draw_cross=True, annotate=True, black_bg=False)
    fig.suptitle(label, fontsize=9, y=0.98)
    return fig


def _ortho_fallback(map3: np.ndarray, affine: np.ndarray, ijk: tuple[int, int, int], *, bg: Path | None, title: str) -> Figure:
    """The three voxel-grid slices through ``ijk`` (matplotlib only), the peak crossed; ``bg`` underneath if on the same grid."""
    codes, sizes = axis_codes(affine), _voxel_sizes(affine)
    under = _bg_data(bg, map3.shape)
    if bg is not None and under is None:
        title += f" (background {bg.name} not drawn: not on this voxel grid)"
    finite = np.abs(map3[np.isfinite(map3)])
    lim = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    fig = _plain_figure(12, 4.2)
    images: list[AxesImage] = []
    for panel, k in enumerate((0, 1, 2)):
        a, b = [d for d in range(3) if d != k]
        ax = fig.add_subplot(1, 3, panel + 1)
        index: list[Any] = [slice(None)] * 3
        index[k] = ijk[k]
        if under is not None:
            ax.imshow(under[tuple(index)].T, origin="lower", cmap="gray", aspect=sizes[b] / sizes[a], interpolation="nearest")
        images.append(ax.imshow(map3[tuple(index)].T, origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim,
                                aspect=sizes[b] / sizes[a], interpolation="nearest"))
        ax.axvline(ijk[a], color="k", linewidth=0.6)
        ax.axhline(ijk[b], color="k", linewidth=0.6)
        ax.set_xlabel(f"{'ijk'[a]} (voxel) → {codes[a]}")
        ax.set_ylabel(f"{'ijk'[b]} (voxel) → {codes[b]}")
        ax.set_title(f"{VIEW[codes[k]]} slice {'ijk'[k]} = {ijk[k]}", fontsize=9)
    fig.colorbar(images[-1], ax=fig.axes, shrink=0.8, label="value")
    fig.suptitle(title, fontsize=9)
    return fig


def to_ras(map3: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, list[tuple[int, bool]]]:
    """``map3`` with its voxel axes reordered and flipped to run toward R, A, S (display order x, y, z; nibabel's
    ``io_orientation``), and for each of x, y, z the file's voxel axis it came from and whether it was reversed."""
    ornt = nibabel_module().orientations.io_orientation(affine)  # row d: file axis d -> (RAS axis, +1 or -1)
    ras = nibabel_module().orientations.apply_orientation(map3, ornt)
    source = {int(axis): (d, flip < 0) for d, (axis, flip) in enumerate(ornt)}
    return np.asarray(ras), [source[k] for k in range(3)]


def glass_projections(map3: np.ndarray) -> list[np.ndarray]:
    """``np.nanmax(|map3|, axis=k)`` for k = 0, 1, 2 (NaN where a whole line is NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN lines outside the brain
        return [np.asarray(np.nanmax(np.abs(map3), axis=k)) for k in range(3)]


RAS_VIEWS = ("sagittal", "coronal", "axial")  # projections along x (L-R), y (P-A), z (I-S)


def plot_glass(map3: np.ndarray, affine: np.ndarray, *, title: str = "") -> Figure:
    """Three maximum-|value| projections in the radiologists' "neurological" layout nilearn also uses: the map is
    reoriented to RAS (``to_ras``), panel k is ``np.nanmax(|ras|, axis=k).T`` drawn with ``origin="lower"`` (sagittal:
    anterior right; coronal and axial: the subject's left on the left, right on the right), each axis labelled with the
    direction it runs toward and the file's voxel axis it shows."""
    peak_voxel(map3)  # refuses an all-NaN map
    ras, source = to_ras(map3, affine)
    sizes = _voxel_sizes(affine)
    projections = glass_projections(ras)
    vmax = float(np.nanmax([np.nanmax(p) for p in projections])) or 1.0
    from matplotlib import colormaps

    cmap = colormaps["inferno"].with_extremes(bad="#dddddd")  # lines without any value: light grey, not black
    fig = _plain_figure(12, 4.2)
    images: list[AxesImage] = []

    def label(axis: int) -> str:
        d, flipped = source[axis]
        return f"{'xyz'[axis]} → {'RAS'[axis]} (voxel axis {'ijk'[d]}{', reversed' if flipped else ''})"

    for k, proj in enumerate(projections):
        a, b = [d for d in range(3) if d != k]
        ax = fig.add_subplot(1, 3, k + 1)
        images.append(ax.imshow(proj.T, origin="lower", cmap=cmap, vmin=0.0, vmax=vmax,
                                aspect=sizes[source[b][0]] / sizes[source[a][0]], interpolation="nearest"))
        ax.set_xlabel(label(a))
        ax.set_ylabel(label(b))
        ax.set_title(f"{RAS_VIEWS[k]}: max |value| along {'xyz'[k]} ({'LPI'[k]}→{'RAS'[k]})", fontsize=9)
    fig.colorbar(images[-1], ax=fig.axes, shrink=0.8, label="max |value|")
    fig.suptitle(f"{title}: glass view (RAS-oriented voxel grid, native space)", fontsize=9)
    return fig


def parse_voxels(text: str) -> list[tuple[int, int, int]]:
    """``"i,j,k;i,j,k"`` -> voxel indices (one ``InvalidParameterError`` line when malformed)."""
    out = []
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        try:
            ijk = tuple(int(v) for v in part.split(","))
        except ValueError:
            ijk = ()
        if len(ijk) != 3 or min(ijk) < 0:
            raise InvalidParameterError(f"--voxels takes voxel indices i,j,k (0-based), several separated by ';'; got {part!r}")
        out.append((ijk[0], ijk[1], ijk[2]))
    if not out or len(out) > MAX_VOXELS:
        raise InvalidParameterError(f"--voxels takes 1 to {MAX_VOXELS} voxels i,j,k separated by ';'; got {text!r}")
    return out


def plot_voxel_timecourse(vol: Volume, voxels: list[tuple[int, int, int]] | None = None) -> Figure:
    """The series ``vol.data[i, j, k, :]`` of each voxel (default: the peak of the mean map) against ``t * TR`` seconds."""
    if not vol.is_4d:
        raise InvalidParameterError(f"{vol.path.name} is a 3-D map; a time course needs a 4-D file (x, y, z, TR)")
    voxels = voxels or [peak_voxel(vol.map3d())]
    n = vol.data.shape[3]
    x = np.arange(n) * vol.tr_s if vol.tr_s else np.arange(n, dtype=np.float64)
    fig = _plain_figure(8, 3.5)
    ax = fig.add_subplot(1, 1, 1)
    for ijk in voxels:
        if any(v >= s for v, s in zip(ijk, vol.data.shape[:3], strict=True)):
            raise InvalidParameterError(f"voxel {ijk} is outside {vol.path.name}'s grid {vol.data.shape[:3]}; give 0 <= i,j,k < that")
        series = vol.data[ijk]
        if not np.isfinite(series).any():
            raise InvalidParameterError(f"voxel {ijk} of {vol.path.name} has no values (NaN: outside the predicted voxels); "
                                        "choose another with --voxels")
        xyz = world(vol.affine, ijk)
        ax.plot(x, series, linewidth=1.2, label=f"voxel {ijk} = ({xyz[0]:.1f}, {xyz[1]:.1f}, {xyz[2]:.1f}) mm")
    ax.set_xlabel("time (s)" if vol.tr_s else "volume (no time unit in the header)")
    ax.set_ylabel("value")
    ax.set_title(f"{vol.path.name}: time course")
    ax.legend(fontsize=7)
    return fig


def volume_title(vol: Volume) -> str:
    return f"{vol.path.name}" + (f" (mean over {vol.data.shape[3]} {'TRs' if vol.tr_s else 'volumes'})" if vol.is_4d else "")


def volume_figures(path: str | Path, kind: str = "auto", *, bg: str | Path | None = None,
                   voxels: list[tuple[int, int, int]] | None = None) -> list[tuple[str, Any]]:
    """The figures of a volume: ``brain``/``auto`` = ortho + glass (+ time course for 4-D), or one of them."""
    if kind not in VOLUME_KINDS:
        raise InvalidParameterError(f"--kind {kind} does not draw a brain volume; use one of {', '.join(VOLUME_KINDS)}")
    vol = read_volume(path, bg)
    if voxels and not vol.is_4d:
        raise InvalidParameterError(f"{vol.path.name} is a 3-D map; --voxels picks time courses of a 4-D file (x, y, z, TR)")
    map3 = vol.map3d()
    figs: list[tuple[str, Any]] = []
    if kind in ("auto", "brain", "ortho"):
        figs.append(("ortho", plot_ortho(map3, vol.affine, bg=vol.reference, title=volume_title(vol))))
    if kind in ("auto", "brain", "glass"):
        figs.append(("glass", plot_glass(map3, vol.affine, title=volume_title(vol))))
    if kind == "timecourse" or (kind in ("auto", "brain") and vol.is_4d):
        figs.append(("timecourse", plot_voxel_timecourse(vol, voxels)))
    return figs


def plot_volume_file(path: Path, *, bg: Path | None, title: str) -> Figure:
    """The ortho view of a 3-D map file (a train folder's r map) on ``bg``."""
    vol = read_volume(path, bg)
    if vol.is_4d:
        raise ResultFileError(f"{str(path)!r} is 4-D; a map of one value per voxel is 3-D")
    return plot_ortho(vol.data, vol.affine, bg=vol.reference, title=title)


__all__ = ["VOLUME_KINDS", "Volume", "glass_projections", "is_volume_path", "parse_voxels", "peak_voxel", "plot_glass", "to_ras",
           "plot_ortho", "plot_voxel_timecourse", "read_volume", "volume_figures", "world"]
