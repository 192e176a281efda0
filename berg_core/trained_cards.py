"""Trained-encoder cards: reading ``berg_encoder.json``, building specs, and the built-in hook.

Light on purpose (standard library only): ``berg list`` imports this module to register the encoder
folders in ``$BERG_ENCODER_PATH``, and plugins made by ``berg new-plugin`` import it from their
``plugin.py``. The encoder itself (numpy, h5py, torch) is in ``berg_core.trained``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from berg_core.errors import ModelLoadError
from berg_core.hookspecs import hookimpl
from berg_core.spec import EncoderSpec

CARD_FILE = "berg_encoder.json"
WEIGHTS_FILE = "weights.h5"
ARRAYS_FILE = "arrays.npz"
FORMAT = "berg-trained-encoder/1"
FAMILY = "trained"
#: os.pathsep-separated folders: each an encoder folder or a folder of encoder folders (listed by ``berg list``)
PATH_ENV = "BERG_ENCODER_PATH"


def is_encoder_dir(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a folder holding a trained-encoder card."""
    return (Path(path) / CARD_FILE).is_file()


def read_card(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The card of the encoder folder ``path``, checked for the fields berg needs."""
    folder = Path(path)
    file = folder / CARD_FILE
    if not file.is_file():
        raise ModelLoadError(f"{folder} is not a trained-encoder folder: it has no {CARD_FILE} (write one with `berg train ... --out DIR`)")
    try:
        card = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{file} is not valid JSON ({exc}); re-run `berg train` to rewrite it") from exc
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        raise ModelLoadError(f"{file} is not a {FORMAT} card (format={card.get('format') if isinstance(card, dict) else None!r})")
    for key in ("feature_spaces", "outputs", "stimulus"):
        if key not in card:
            raise ModelLoadError(f"{file} lacks {key!r}; re-run `berg train` to rewrite it")
    if card["stimulus"] not in ("sentences", "timed_words"):
        raise ModelLoadError(f"{file}: unknown stimulus kind {card['stimulus']!r}")
    return card


def output_names(card: Mapping[str, Any]) -> list[str]:
    """Names of the encoder's output columns (``voxel_{i}`` when the card has none)."""
    outputs = card["outputs"]
    names = outputs.get("names")
    return list(names) if names else [f"voxel_{i}" for i in range(int(outputs["n"]))]


def _describe(card: Mapping[str, Any]) -> str:
    spaces = ", ".join(f"{s.get('backbone')} layer {s.get('layer')}" for s in card["feature_spaces"])
    text = card.get("description") or f"Encoder trained with berg train on {spaces}."
    return text


def spec_from_dir(path: str | os.PathLike[str], *, family: str = FAMILY, model_id: str | None = None) -> EncoderSpec:
    """The ``EncoderSpec`` of a trained-encoder folder (reads only the JSON card)."""
    folder = Path(path).resolve()
    card = read_card(folder)
    n_out = int(card["outputs"]["n"])
    rois = dict(card.get("rois") or {})
    selection = {"voxel_index": f"0/1 mask of length {n_out} (output columns)"}
    if rois:
        selection["roi"] = ", ".join(rois)
    scores = card.get("scores") or {}
    info = {
        "path": str(folder),
        "stimulus": card["stimulus"],
        "feature_spaces": [{k: s.get(k) for k in ("name", "backbone", "layer", "pooling")} for s in card["feature_spaces"]],
        "n_outputs": n_out,
        **{k: v for k, v in scores.items() if not isinstance(v, (list, dict))},
    }
    if card.get("delays"):
        info["delays"] = f"{card['delays']} ({card.get('delay_mode', 'fir')})"
    if card.get("tr"):
        info["tr_s"] = card["tr"]
    return EncoderSpec(
        model_id=model_id or card.get("model_id") or folder.name,
        family=family,
        factory="berg_core.trained:TrainedEncoder",
        metadata="berg_core.trained:load_metadata",
        description=_describe(card),
        stimulus=card["stimulus"],
        selection=selection,
        options={"batch_size": 32, "backbone": None, "dtype": None, "feature_cache": True},
        info=info,
        card=str(card.get("card") or ""),
    )


def find_encoder_dirs(root: str | os.PathLike[str]) -> list[Path]:
    """``root`` itself if it is an encoder folder, else its sub-folders that are (sorted)."""
    root = Path(root)
    if is_encoder_dir(root):
        return [root]
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if is_encoder_dir(p))


def register_encoder_dirs(register: Callable[[EncoderSpec], None], root: str | os.PathLike[str], *, family: str = FAMILY) -> list[str]:
    """Register every encoder folder under ``root`` (see ``find_encoder_dirs``); returns their ids."""
    ids = []
    for folder in find_encoder_dirs(root):
        spec = spec_from_dir(folder, family=family)
        register(spec)
        ids.append(spec.model_id)
    return ids


def register_package_encoders(register: Callable[[EncoderSpec], None], package: str, folder: str = "encoders",
                              *, family: str | None = None) -> list[str]:
    """For a plugin's ``plugin.py``: register the encoder folders shipped as package data.

    ``package`` is the plugin package (``__package__``); ``folder`` its data folder holding one
    sub-folder per encoder. ``family`` defaults to the package name without a ``berg_`` prefix.
    """
    from importlib.resources import files

    root = Path(str(files(package) / folder))
    name = family or package.removeprefix("berg_")
    return register_encoder_dirs(register, root, family=name)


@hookimpl
def berg_register_encoders(register: Callable[[EncoderSpec], None]) -> None:
    """Built-in: the encoder folders listed in ``$BERG_ENCODER_PATH``."""
    for entry in os.environ.get(PATH_ENV, "").split(os.pathsep):
        if entry.strip():
            register_encoder_dirs(register, Path(entry.strip()).expanduser())
