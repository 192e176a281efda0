"""Which outputs a loaded model returns: one rule and one set of error messages for every family.

A user's selection is a dict (``get_encoding_model(..., selection={...})``, ``berg encode --roi/--voxel-index``):

* ``roi``: one ROI name or a list of names;
* ``voxel_index``: a 0/1 vector with one entry per voxel (voxelwise models only);
* a 0/1 vector over any other output axis (``MASK_KEYS``: ``electrode_index`` over electrodes, ``lags`` over
  time lags), for models with N-D outputs: ``select_indices`` returns the picked positions of one axis.

There are two kinds of model, and ``select_outputs`` answers for both:

* **fixed-ROI** models (each output is one ROI, e.g. Tuckute's six language fROIs): the selected ROI
  names **in the user's order** (no selection: every ROI, in the model's order);
* **voxelwise** models (each output is one voxel, e.g. LeBel or a trained encoder; an ROI is a set of
  voxels): the indices of ``⋃ ROIs ∪ {i : voxel_index[i] == 1}`` **in ascending voxel order** (no
  selection: every voxel).

A user's mistake is one ``InvalidParameterError`` line naming what was wrong and what is valid; an ROI
table that does not fit the model (its files are damaged) is a ``ModelLoadError``. ``check_selection`` checks
a selection against the spec before anything loads (keys, value types; the base ``Encoder`` and the facade call
it); ``select_outputs``/``select_indices`` check the values again with the loaded model's ROIs and sizes, so a
family may call them with any dict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from berg_core.errors import InvalidParameterError, ModelLoadError
from berg_core.spec import EncoderSpec

__all__ = ["MASK_KEYS", "check_selection", "select_indices", "select_outputs"]

#: selection keys that are 0/1 vectors over one output axis -> what one entry is (for messages)
MASK_KEYS: dict[str, str] = {"voxel_index": "voxel", "electrode_index": "electrode", "lags": "lag"}


def check_selection(spec: EncoderSpec, selection: dict[str, Any] | None) -> dict[str, Any]:
    """``selection`` checked before the model loads: keys in the spec's schema, ``roi`` a name or a non-empty list of
    names, the ``MASK_KEYS`` non-empty 0/1 vectors; ``None`` values dropped. Names and lengths are checked once the
    model is loaded (``select_outputs``, ``select_indices``)."""
    if selection is None:
        return {}
    if not isinstance(selection, dict):
        raise InvalidParameterError(f"selection must be a dict like {{'roi': [...]}}, got {type(selection).__name__}")
    unknown = sorted(repr(k) for k in selection if not isinstance(k, str) or k not in spec.selection)
    if unknown:
        valid = ", ".join(spec.selection) or "none (this model takes no selection)"
        raise InvalidParameterError(f"unknown selection key(s) {', '.join(unknown)} for {spec.model_id}; valid keys: {valid}")
    selection = {k: v for k, v in selection.items() if v is not None}
    if "roi" in selection:
        _roi_list(selection["roi"], f"valid ROIs: {', '.join(spec.rois)}" if spec.rois else f"see `berg info {spec.model_id}`")
    for key in MASK_KEYS.keys() & selection.keys():
        _binary(selection[key], key)
    return selection


@overload
def select_outputs(selection: Mapping[str, Any] | None, *, rois: Sequence[str], who: str | None = None,
                   subject: str | None = None) -> list[str]: ...


@overload
def select_outputs(selection: Mapping[str, Any] | None, *, n_outputs: int, roi_voxels: Mapping[str, ArrayLike] | None = None,
                   who: str | None = None, subject: str | None = None) -> NDArray[np.int64]: ...


def select_outputs(
    selection: Mapping[str, Any] | None,
    *,
    rois: Sequence[str] | None = None,
    n_outputs: int | None = None,
    roi_voxels: Mapping[str, ArrayLike] | None = None,
    who: str | None = None,
    subject: str | None = None,
) -> list[str] | NDArray[np.int64]:
    """The outputs ``selection`` picks, or one ``InvalidParameterError`` line saying why it picks none.

    Give exactly one of:

    * ``rois`` (fixed-ROI model): the model's output ROIs, in its output order. Returns the selected ROI
      names, ``list[str]`` of length n_selected, in the order the user listed them (no selection: ``rois``).
      Only the ``roi`` key is read; a name listed twice is refused (it would duplicate a column).
    * ``n_outputs`` (voxelwise model): the number of voxels. ``roi_voxels`` maps each ROI name to its
      voxels, as a boolean mask of shape (n_outputs,) or as integer voxel indices in ``0..n_outputs-1``.
      Returns the selected voxel indices, int64 of shape (n_selected,), ascending, no repeats (no
      selection: ``arange(n_outputs)``).

    ``who`` (e.g. the model id) and ``subject`` only name the model in messages ("unknown ROI 'X' for
    subject UTS01; valid ROIs: ...").
    """
    if (rois is None) == (n_outputs is None):
        raise TypeError("select_outputs needs exactly one of rois= (fixed-ROI model) or n_outputs= (voxelwise model)")
    selection = {k: v for k, v in (selection or {}).items() if v is not None}
    if rois is not None:
        valid = [str(r) for r in rois]
        if "roi" not in selection:
            return valid
        return _roi_names(selection["roi"], valid, who, subject)
    assert n_outputs is not None
    return _voxels(selection, int(n_outputs), dict(roi_voxels or {}), who, subject)


# ------------------------------------------------------------------------------------- messages


def _for(who: str | None, subject: str | None) -> str:
    """`` for subject S`` / `` for MODEL`` / nothing: the model named in a message."""
    return f" for subject {subject}" if subject else f" for {who}" if who else ""


def _owner(who: str | None, subject: str | None) -> str:
    return subject or who or "the model"


def _valid(names: Sequence[str]) -> str:
    return f"valid ROIs: {', '.join(sorted(names)) or 'none'}"


# --------------------------------------------------------------------------------------- checks


def _roi_list(value: Any, valid: str) -> list[str]:
    """``selection['roi']`` (a name, or a non-empty list/tuple/1-D array of names) as a list; ``valid`` ends the message."""
    items = value.tolist() if isinstance(value, np.ndarray) and value.ndim == 1 else value
    if isinstance(items, str):
        return [items]
    if not isinstance(items, (list, tuple)) or not all(isinstance(r, str) for r in items):
        held = " holding a non-str" if isinstance(items, (list, tuple)) else ""
        raise InvalidParameterError(f"selection['roi'] must be an ROI name or a list of ROI names, got {type(value).__name__}{held}; "
                                    f"{valid}")
    if not items:
        raise InvalidParameterError(f"selection['roi'] is an empty list: it selects no voxel or output; give at least one ROI name; {valid}")
    return [str(r) for r in items]


def _roi_names(value: Any, valid: Sequence[str], who: str | None, subject: str | None) -> list[str]:
    """``selection['roi']`` as a list of known, distinct names in the user's order."""
    names = _roi_list(value, _valid(valid))
    known = set(valid)
    for name in names:
        if name not in known:
            raise InvalidParameterError(f"unknown ROI {name!r}{_for(who, subject)}; {_valid(valid)}")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InvalidParameterError(f"ROI {name!r} is selected twice; list each ROI once")
        seen.add(name)
    return names


def _binary(value: Any, key: str, n: int | None = None) -> NDArray[Any]:
    """``selection[key]`` as an array of only 0 and 1, not empty (a row or column vector flattened); its length is
    checked by the caller (``n``, when known, is named in the message)."""
    try:
        mask = np.asarray(value)
    except (TypeError, ValueError) as exc:  # ragged nested lists
        raise InvalidParameterError(f"selection[{key!r}] must be a 0/1 vector{'' if n is None else f' of length {n}'}: {exc}") from exc
    if mask.ndim == 2 and 1 in mask.shape:  # a row or column vector
        mask = mask.reshape(-1)
    if mask.dtype.kind not in "biuf" or mask.size == 0 or not np.isin(mask, (0, 1)).all():
        raise InvalidParameterError(f"selection[{key!r}] must contain only 0 and 1 (a non-empty binary mask over "
                                    f"{MASK_KEYS.get(key, 'entry')}s)")
    return mask


def _voxel_mask(value: Any, n: int, owner: str, key: str = "voxel_index") -> NDArray[np.bool_]:
    """``selection[key]`` (a 0/1 vector over the axis ``MASK_KEYS[key]``: voxels, electrodes, lags) as a boolean
    mask of shape (n,)."""
    unit = MASK_KEYS.get(key, "entry")
    mask = _binary(value, key, n)
    if mask.ndim != 1:
        raise InvalidParameterError(f"selection[{key!r}] must be a 0/1 vector of length {n}, got an array of shape {mask.shape}")
    if mask.size != n:
        raise InvalidParameterError(f"selection[{key!r}] has length {mask.size}, but {owner} has {n} {unit}s; "
                                    f"give a 0/1 vector of length {n}")
    if not mask.any():
        raise InvalidParameterError(f"selection[{key!r}] is all zeros (an empty selection): it selects no {unit}; "
                                    f"set 1 at the {unit}s you want")
    return np.asarray(mask == 1, dtype=bool)


def select_indices(selection: Mapping[str, Any] | None, key: str, n: int, *, who: str | None = None,
                   subject: str | None = None) -> NDArray[np.int64]:
    """The positions along one output axis of length ``n`` that ``selection[key]`` (a 0/1 vector of length ``n``)
    picks: int64 (n_selected,), ascending; ``arange(n)`` when the key is absent or ``None``.

    For N-D outputs (e.g. ``key="electrode_index"`` over electrodes and ``key="lags"`` over time lags; a model
    returns every picked electrode x every picked lag). A wrong value is one ``InvalidParameterError`` line
    (not 0/1, wrong length, all zeros), worded like ``voxel_index``'s.
    """
    value = (selection or {}).get(key)
    if value is None:
        return np.arange(int(n), dtype=np.int64)
    return np.flatnonzero(_voxel_mask(value, int(n), _owner(who, subject), key)).astype(np.int64)


def _roi_mask(name: str, voxels: ArrayLike, n: int, who: str | None, subject: str | None) -> NDArray[np.bool_]:
    """One ROI of the model's table (a boolean mask or voxel indices) as a mask of shape (n,)."""
    damaged = "the model's ROI table is damaged: delete its files and fetch them again"
    arr = np.asarray(voxels)
    if arr.size == 0:  # an ROI without voxels (``[]`` reads as float)
        return np.zeros(n, dtype=bool)
    if arr.dtype.kind == "b":
        arr = arr.reshape(-1)
        if arr.size != n:
            raise ModelLoadError(f"ROI {name!r}{_for(who, subject)} has {arr.size} entries but {_owner(who, subject)} has {n} voxels; "
                                 f"{damaged}")
        return arr
    if arr.dtype.kind not in "iu" or arr.ndim > 1:
        raise ModelLoadError(f"ROI {name!r}{_for(who, subject)} is a {arr.dtype} array of shape {arr.shape}, neither a boolean "
                             f"mask nor voxel indices; {damaged}")
    index = arr.reshape(-1).astype(np.int64)
    if index.size and (index.min() < 0 or index.max() >= n):
        raise ModelLoadError(f"ROI {name!r}{_for(who, subject)} lists voxels outside 0..{n - 1}; {damaged}")
    mask = np.zeros(n, dtype=bool)
    mask[index] = True
    return mask


def _voxels(selection: Mapping[str, Any], n: int, table: Mapping[str, ArrayLike], who: str | None,
            subject: str | None) -> NDArray[np.int64]:
    """Ascending indices of ``⋃ ROIs ∪ voxel_index`` over ``n`` voxels."""
    if not selection.keys() & {"roi", "voxel_index"}:
        return np.arange(n, dtype=np.int64)
    chosen = np.zeros(n, dtype=bool)
    if "roi" in selection:
        for name in _roi_names(selection["roi"], list(table), who, subject):
            chosen |= _roi_mask(name, table[name], n, who, subject)
    if "voxel_index" in selection:
        chosen |= _voxel_mask(selection["voxel_index"], n, _owner(who, subject))
    if not chosen.any():
        of = f" of {_owner(who, subject)}" if who or subject else ""
        raise InvalidParameterError(f"the selection {sorted(selection)} selects no voxel{of}; give ROI names or a voxel_index")
    return np.flatnonzero(chosen).astype(np.int64)
