"""Text2fMRI's files: BERG's bucket metadata (network masks, checked against the shipped table) and the trained head on the Hugging Face hub.

* ``metadata.npy`` (BERG's bucket, ``np.save`` of a dict, read with berg's safe unpickler): ``roi_masks`` (or
  ``ROI_masks``) ``{network: (1000,) bool}``, network names in either casing (``"vis"``/``"Vis"``);
* a variant = a hub repo (``config.json`` with BERG's ``Text2fMRIConfig`` fields + ``model.pt``, a torch state dict
  of BERG's ``Text2fMRIModel``, read with ``torch.load(weights_only=True)``: no code runs), downloaded through the
  Hugging Face cache at the variant's revision; or, for tests and offline copies, a local folder with the two files.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from berg_core import (
    EncoderSpec,
    InvalidParameterError,
    ModelLoadError,
    ResourceError,
    ensure_file,
    fetch_backbone,
    hf_guard,
    load_npy_object,
    offline_vars,
)
from berg_text2fmri.labels import TABLE_PATH, network_parcels
from berg_text2fmri.plugin import (
    DEFAULT_VARIANT,
    METADATA_PATH,
    MODEL_ID,
    N_PARCELS,
    NETWORKS,
    VARIANTS,
    Variant,
    card_licence,
    hub_cache,
    non_commercial,
)
from berg_text2fmri.revisions import is_commit, lock_path, lock_resolved, requested_revision, snapshot_commit

if TYPE_CHECKING:
    from berg_text2fmri.head import Text2fMRIHead

#: config.json keys the head and the feature extractor are built from
CONFIG_KEYS = ("num_subjects", "num_rois", "num_transformer_layers", "num_transformer_heads", "transformer_dim",
               "subject_embedding_dim", "extractor_LLM", "extractor_LLM_feature_size", "extractor_LLM_dtype")
HEAD_FILES = ("config.json", "model.pt")
_shown_licences: set[str] = set()


def _fetch_hint(variant: str) -> str:
    extra = "" if variant == DEFAULT_VARIANT else f" -O model_variant={variant}"
    return f"run `berg fetch {MODEL_ID}{extra}` (with network) first"


# ------------------------------------------------------------------------------------- BERG's metadata


def shipped_masks() -> dict[str, NDArray[np.bool_]]:
    """``{network: (1000,) bool}`` in ``NETWORKS`` order from the shipped Schaefer label table (``labels.py``)."""
    out: dict[str, NDArray[np.bool_]] = {}
    for net, idx in network_parcels().items():
        mask = np.zeros(N_PARCELS, dtype=bool)
        mask[list(idx)] = True
        out[net] = mask
    return out


def check_masks_agree(masks: dict[str, NDArray[np.bool_]], src: Path) -> None:
    """One ``ModelLoadError`` line naming ``src`` and the shipped table when a network's parcels differ."""
    for net, want in shipped_masks().items():
        diff = np.flatnonzero(masks[net] != want)
        if diff.size:
            raise ModelLoadError(f"{src}: roi_masks[{net!r}] ({int(masks[net].sum())} parcels) disagrees with the shipped "
                                 f"label table {TABLE_PATH.name} ({int(want.sum())} parcels) on {diff.size} parcel(s), first "
                                 f"label {diff[0] + 1}; delete {src} and run `berg fetch {MODEL_ID}`")


def read_roi_masks(src: Path) -> dict[str, NDArray[np.bool_]]:
    """BERG's ``metadata.npy`` -> ``{network: (1000,) bool}`` keyed by ``NETWORKS``' names (either casing accepted),
    checked against the shipped Schaefer table (``check_masks_agree``)."""
    obj = load_npy_object(src)
    refetch = f"delete {src} and run `berg fetch {MODEL_ID}`"
    masks = None
    if isinstance(obj, dict):
        masks = next((obj[k] for k in ("roi_masks", "ROI_masks", "Roi_masks") if k in obj), None)
    if not isinstance(masks, dict):
        raise ModelLoadError(f"{src} is not BERG's Text2fMRI metadata: it has no roi_masks dict; {refetch}")
    by_lower = {str(k).lower(): v for k, v in masks.items()}
    out: dict[str, NDArray[np.bool_]] = {}
    for net in NETWORKS:
        if net.lower() not in by_lower:
            raise ModelLoadError(f"{src}: roi_masks lacks the {net} network; {refetch}")
        mask = np.asarray(by_lower[net.lower()])
        if mask.shape != (N_PARCELS,) or mask.dtype.kind not in "biu" or not np.isin(mask, (0, 1)).all():
            raise ModelLoadError(f"{src}: roi_masks[{net!r}] is a {mask.dtype} array of shape {mask.shape}, expected "
                                 f"({N_PARCELS},) 0/1; {refetch}")
        out[net] = mask.astype(bool)
    check_masks_agree(out, src)
    return out


def load_roi_masks(berg_dir: Path, *, show_progress: bool = True) -> dict[str, NDArray[np.bool_]]:
    """The network masks of BERG's metadata (fetched on first use)."""
    return read_roi_masks(ensure_file(METADATA_PATH, Path(berg_dir), show_progress=show_progress, model_id=MODEL_ID))


def load_metadata(spec: EncoderSpec, subject: str | None, berg_dir: Path) -> dict[str, Any]:
    """``get_model_metadata``: the spec's facts plus ``roi_masks`` {network: (1000,) bool} from BERG's metadata."""
    out: dict[str, Any] = {"model_id": spec.model_id, **spec.info}
    if subject is not None:
        out["subject"] = subject
    out["roi_masks"] = load_roi_masks(Path(berg_dir))
    return out


# ------------------------------------------------------------------------------------- the head


def variant_folder(name: str, *, show_progress: bool = False) -> tuple[Path, Variant | None]:
    """``model_variant`` -> (folder holding config.json + model.pt, its table entry or None for a local folder).

    A hub variant is read from the Hugging Face cache at its revision, downloaded when missing (one
    ``ResourceError`` line naming ``berg fetch`` when offline). An unpinned table revision (``"main"``) is locked to
    the commit it resolves to the first time (``berg_text2fmri.revisions``) and that commit is requested from then
    on; the returned entry carries the commit actually read. A name neither in ``VARIANTS`` nor a folder is refused
    (BERG silently used random weights).
    """
    local = Path(name).expanduser()
    if local.is_dir():
        return local, None
    variant = VARIANTS.get(name)
    if variant is None:
        raise InvalidParameterError(f"unknown model_variant {name!r}; use one of {', '.join(VARIANTS)} or a local folder with "
                                    "config.json and model.pt")
    revision, fixed = requested_revision(variant.repo, variant.revision)
    locked = f" (locked in {lock_path()} on first use; delete that entry to accept the hub's current {variant.revision!r})" \
        if fixed and not is_commit(variant.revision) else ""
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    offline = bool(offline_vars())
    bars_were_off = are_progress_bars_disabled()
    try:
        with hf_guard():
            if not show_progress:
                disable_progress_bars()
            folder = Path(snapshot_download(variant.repo, revision=revision, allow_patterns=[*HEAD_FILES, "README.md"],
                                            local_files_only=offline, cache_dir=hub_cache()))
    except Exception as exc:  # huggingface_hub's offline/HTTP errors share no base class below Exception
        why = "not in the Hugging Face cache" if offline else f"could not be downloaded ({type(exc).__name__})"
        raise ResourceError(f"the Text2fMRI head {variant.repo}@{revision}{locked} is {why}; {_fetch_hint(name)}") from exc
    finally:
        if not show_progress and not bars_were_off:
            enable_progress_bars()
    missing = [f for f in HEAD_FILES if not (folder / f).is_file()]
    if missing:
        raise ResourceError(f"the Text2fMRI head {variant.repo} lacks {', '.join(missing)} in {folder}; {_fetch_hint(name)}")
    commit = snapshot_commit(folder)
    if not fixed:
        lock_resolved(variant.repo, commit)
    return folder, replace(variant, revision=commit or revision)


def backbone_request(variant: Variant | None, repo: str) -> tuple[str | None, bool]:
    """(revision to request, whether it is fixed) for the language model ``repo`` (a hub id) a variant's config names:
    the table's commit, else the commit locked on first use, else the table's unpinned revision (``False``: lock what
    it resolves to with ``lock_resolved``). A local variant folder or a local language model: (None, True)."""
    if variant is None or Path(repo).expanduser().is_dir():
        return None, True
    return requested_revision(repo, variant.backbone_revision)


def read_config(folder: Path) -> dict[str, Any]:
    """A variant's ``config.json`` -> its dict, with every ``CONFIG_KEYS`` entry present and sane."""
    path = folder / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path} is not a readable JSON config ({type(exc).__name__}); fetch the variant again") from exc
    if not isinstance(config, dict):
        raise ModelLoadError(f"{path} is not a JSON object; fetch the variant again")
    missing = [k for k in CONFIG_KEYS if k not in config]
    if missing:
        raise ModelLoadError(f"{path} lacks {', '.join(missing)}: not a Text2fMRI config; fetch the variant again")
    ints = [k for k in CONFIG_KEYS if k not in ("extractor_LLM", "extractor_LLM_dtype")]
    bad = [k for k in ints if isinstance(config[k], bool) or not isinstance(config[k], int) or config[k] < 1]
    if bad or str(config["extractor_LLM_dtype"]).removeprefix("torch.") not in ("float16", "float32", "bfloat16"):
        raise ModelLoadError(f"{path}: {', '.join(bad) or 'extractor_LLM_dtype'} has an invalid value; fetch the variant again")
    config["extractor_LLM_dtype"] = str(config["extractor_LLM_dtype"]).removeprefix("torch.")
    return config


def load_head(folder: Path, config: dict[str, Any], device: str = "cpu") -> Text2fMRIHead:
    """The float32 head of ``config`` with ``model.pt``'s weights (``weights_only`` load; keys mapped exactly)."""
    import torch

    from berg_text2fmri.head import Text2fMRIHead, convert_state_dict

    path = folder / "model.pt"
    try:
        head = Text2fMRIHead.from_config(config)
    except ValueError as exc:
        raise ModelLoadError(f"{folder / 'config.json'}: {exc}") from exc
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, a pickle with code (weights_only refuses it), not a torch file
        raise ModelLoadError(f"{path} is not a plain torch state dict ({type(exc).__name__}: {' '.join(str(exc).split())[:120]}); "
                             "fetch the variant again") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(f"{path} is not a state dict of tensors; fetch the variant again")
    try:
        head.load_state_dict(convert_state_dict(state, head), strict=True)
    except (KeyError, ValueError) as exc:
        raise ModelLoadError(f"{path} does not fit its config.json ({exc}); fetch the variant again") from exc
    head.float().eval().to(device)
    return head


def licence_notice(folder: Path, name: str) -> str | None:
    """A one-line notice when the head's licence is missing or non-commercial, else None."""
    licence = card_licence(folder / "README.md")
    if licence is None:
        return f"note: the Text2fMRI head {name} declares no licence on its hub card: ask its authors before reuse beyond research"
    if non_commercial(licence):
        return f"note: the Text2fMRI head {name} is under {licence} (non-commercial): research use only"
    return None


def show_licence_once(folder: Path, name: str) -> None:
    """Print ``licence_notice`` to stderr the first time each head is loaded in this process."""
    if name in _shown_licences:
        return
    _shown_licences.add(name)
    notice = licence_notice(folder, name)
    if notice:
        print(notice, file=sys.stderr)


def prepare(spec: EncoderSpec, subject: str | None, berg_dir: Path, show_progress: bool, *,
            options: dict[str, Any] | None = None) -> None:
    """``berg fetch [-O model_variant=...] [-O backbone=...]``: that variant's head (default: BERG's) and its language
    model (the ``backbone`` option, else the variant config's ``extractor_LLM``) into the Hugging Face cache, locking
    the commits unpinned table revisions resolve to (the bucket metadata is a remote file of the spec, fetched
    before this)."""
    options = options or {}
    folder, variant = variant_folder(str(options.get("model_variant") or DEFAULT_VARIANT), show_progress=show_progress)
    config = read_config(folder)
    if options.get("backbone"):  # a user's choice: berg_core's fetch already got it (no table revision applies)
        return
    name = str(config["extractor_LLM"])
    revision, fixed = backbone_request(variant, name)
    snapshot = fetch_backbone(name, revision=revision, show_progress=show_progress)
    if not fixed:
        lock_resolved(name, snapshot_commit(snapshot))
