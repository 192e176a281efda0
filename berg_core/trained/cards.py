"""Trained-encoder cards: reading ``berg_encoder.json``, building specs, and the built-in hook.

Light on purpose (standard library only): ``berg list`` imports this module to register the encoder
folders in ``$BERG_ENCODER_PATH``, and plugins made by ``berg new-plugin`` import it from their
``plugin.py``. The encoder itself (numpy, h5py, torch) is in ``berg_core.trained.encoder``.

A card is data, not a key to the filesystem: ``read_card`` refuses (one ``ModelLoadError`` line) a card
that is not valid UTF-8 JSON, is too big or too deeply nested, has a field of the wrong type or an
implausible size (``outputs.n`` above ``MAX_OUTPUTS``, ...), or names a file outside its folder
(symlinks are resolved first). Registration isolates each card: a bad one is reported and hides only
itself.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from berg_core import BergError, EncoderSpec, ModelLoadError, Option, Options, hookimpl

CARD_FILE = "berg_encoder.json"
WEIGHTS_FILE = "weights.h5"
ARRAYS_FILE = "arrays.npz"
#: the keys of a card's optional ``space`` field that name files (``berg train --space-mask/--space-reference``)
SPACE_FILES = ("mask", "reference")
FORMAT = "berg-trained-encoder/1"
FAMILY = "trained"
#: os.pathsep-separated folders: each an encoder folder or a folder of encoder folders (listed by ``berg list``)
PATH_ENV = "BERG_ENCODER_PATH"

# -- limits of a plausible card (a card beyond them is refused before anything is allocated)
MAX_CARD_BYTES = 16 << 20  # a 95k-voxel card with names and ROIs is ~2 MB
MAX_DEPTH = 24
MAX_OUTPUTS = 10_000_000
MAX_FEATURES = 1_000_000
MAX_SPACES = 64
MAX_DELAYS = 256
MAX_DELAY = 100_000
MAX_LAYER = 100_000
MAX_ROIS = 100_000
MAX_NAME = 1_000
MAX_DESCRIPTION = 100_000
MAX_CARD_TEXT = 1_000_000
#: model ids a card may claim (a card's id must be usable as a folder name and on a command line)
MODEL_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+=-]{0,199}")
SHA256_RE = re.compile(r"[0-9a-f]{64}")
CONTEXT_KEYS = ("max_words", "keep_words")
#: control characters a card's text may not hold (terminal escapes, NUL); tab and newlines are fine
CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def is_encoder_dir(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a folder holding a trained-encoder card."""
    try:
        return (Path(path) / CARD_FILE).is_file()
    except (OSError, ValueError):
        return False


def _refuse(file: Path, what: str) -> ModelLoadError:
    return ModelLoadError(f"{file}: {what}; re-run `berg train` to rewrite it, or remove the folder")


def inside(folder: Path, name: str, *, file: Path, field: str) -> Path:
    """``folder / name`` with symlinks resolved, refused unless it is a regular file inside ``folder``."""
    if not isinstance(name, str) or not name or "\x00" in name or len(name) > MAX_NAME:
        raise _refuse(file, f"{field} must be a file name inside the encoder folder")
    root = folder.resolve()
    try:
        target = (root / name).resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        raise _refuse(file, f"{field} {name!r} cannot be resolved ({exc})") from exc
    if target == root or not target.is_relative_to(root):
        raise _refuse(file, f"{field} {name!r} points outside the encoder folder ({target}); a card may only name its own files")
    return target


def regular_file(path: Path, *, what: str) -> os.stat_result:
    """``os.stat`` of ``path``, refused (``ModelLoadError``) unless it exists and is a regular file."""
    try:
        st = path.stat()
    except OSError as exc:
        raise ModelLoadError(f"{what}: {path} is missing ({exc.strerror}); the encoder folder is incomplete "
                             "(re-run `berg train` or reinstall it)") from exc
    if not stat.S_ISREG(st.st_mode):
        raise ModelLoadError(f"{what}: {path} is not a regular file; the encoder folder is damaged (re-run `berg train`)")
    return st


def _read_json(file: Path) -> Any:
    st = regular_file(file, what="trained-encoder card")
    if st.st_size > MAX_CARD_BYTES:
        raise _refuse(file, f"the card is {st.st_size} bytes (limit {MAX_CARD_BYTES})")
    try:
        with open(file, "rb") as fh:
            raw = fh.read(st.st_size + 1)  # not MAX_CARD_BYTES: read(n) allocates n bytes up front
    except OSError as exc:
        raise ModelLoadError(f"{file} cannot be read ({exc.strerror}); check its permissions") from exc
    if len(raw) > MAX_CARD_BYTES:
        raise _refuse(file, f"the card is larger than {MAX_CARD_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _refuse(file, f"not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc

    try:
        return json.loads(text)
    except RecursionError as exc:
        raise _refuse(file, "not valid JSON (nested too deeply)") from exc
    except ValueError as exc:  # JSONDecodeError, integers with thousands of digits
        raise ModelLoadError(f"{file} is not valid JSON ({exc}); re-run `berg train` to rewrite it") from exc


def _depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (iterative: no recursion limit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            return level
        if isinstance(node, dict):
            stack.extend((v, level + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, level + 1) for v in node)
    return deepest


class _Checker:
    """Type and range checks of one card's fields; every failure names the field."""

    def __init__(self, file: Path) -> None:
        self.file = file

    def fail(self, field: str, want: str, value: Any) -> ModelLoadError:
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        return _refuse(self.file, f"{field} must be {want}, got {shown}")

    def integer(self, field: str, value: Any, lo: int, hi: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise self.fail(field, f"an integer in {lo}..{hi}", value)
        return value

    def text(self, field: str, value: Any, *, optional: bool = True, limit: int = MAX_NAME) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str) or len(value) > limit or CONTROL_RE.search(value):
            raise self.fail(field, f"a string of at most {limit} characters without control characters"
                            + (" or null" if optional else ""), value)
        return value

    def choice(self, field: str, value: Any, options: tuple[Any, ...]) -> Any:
        if value not in options or isinstance(value, (list, dict)):
            raise self.fail(field, " or ".join(repr(o) for o in options), value)
        return value

    def mapping(self, field: str, value: Any, *, optional: bool = True) -> dict[str, Any]:
        if value is None and optional:
            return {}
        if not isinstance(value, dict):
            raise self.fail(field, "an object", value)
        return value

    def array(self, field: str, value: Any, limit: int) -> list[Any]:
        if not isinstance(value, list) or len(value) > limit:
            raise self.fail(field, f"a list of at most {limit} items", value)
        return value


def check_card(card: Any, file: Path) -> dict[str, Any]:
    """``card`` (parsed JSON) if every field berg reads has the right type and a plausible size."""
    c = _Checker(file)
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        raise ModelLoadError(f"{file} is not a {FORMAT} card (format={card.get('format') if isinstance(card, dict) else None!r})")
    if _depth(card) > MAX_DEPTH:
        raise _refuse(file, f"nested deeper than {MAX_DEPTH} levels")
    for key in ("feature_spaces", "outputs", "stimulus", "weights"):
        if key not in card:
            raise ModelLoadError(f"{file} lacks {key!r}; re-run `berg train` to rewrite it")
    model_id = card.get("model_id")
    if model_id is not None and not (isinstance(model_id, str) and MODEL_ID_RE.fullmatch(model_id)):
        raise c.fail("model_id", "letters, digits and _ . + = - (at most 200, starting with a letter or digit)", model_id)
    c.text("description", card.get("description"), limit=MAX_DESCRIPTION)
    c.text("card", card.get("card"), limit=MAX_CARD_TEXT)
    stimulus = card["stimulus"]
    if stimulus not in ("sentences", "timed_words"):
        raise _refuse(file, f"unknown stimulus kind {stimulus!r}")
    spaces = c.array("feature_spaces", card["feature_spaces"], MAX_SPACES)
    if not spaces:
        raise c.fail("feature_spaces", "a non-empty list", spaces)
    rows = 0
    for k, space in enumerate(spaces):
        f = f"feature_spaces[{k}]"
        c.mapping(f, space, optional=False)
        for key in ("name", "backbone", "revision"):
            c.text(f"{f}.{key}", space.get(key))
        if space.get("layer") is not None or space.get("backbone") is not None:
            c.integer(f"{f}.layer", space.get("layer"), 0, MAX_LAYER)
        c.choice(f"{f}.pooling", space.get("pooling"), (None, "last", "mean"))
        width = c.integer(f"{f}.n_features", space.get("n_features"), 1, MAX_FEATURES)
        reduce = c.mapping(f"{f}.reduce", space.get("reduce"))
        if reduce:
            c.choice(f"{f}.reduce.method", reduce.get("method"), ("pca",))
            width = c.integer(f"{f}.reduce.n_components", reduce.get("n_components"), 1, width)
        rows += width
    delays = c.array("delays", card.get("delays") or [], MAX_DELAYS)
    for i, d in enumerate(delays):
        c.integer(f"delays[{i}]", d, -MAX_DELAY, MAX_DELAY)
    mode = c.choice("delay_mode", card.get("delay_mode", "fir"), ("fir", "mean"))
    if delays and mode == "fir":
        rows *= len(delays)
    if delays and stimulus == "sentences" and any(s.get("backbone") is not None for s in spaces):
        raise c.fail("delays", "empty for a sentence encoder (delays apply to time series)", delays)
    tr = card.get("tr")
    if tr is not None and (isinstance(tr, bool) or not isinstance(tr, (int, float)) or not math.isfinite(tr) or not 0 < tr <= 1000):
        raise c.fail("tr", "seconds per sample, in (0, 1000]", tr)
    context = c.mapping("context", card.get("context"))
    for key, value in context.items():
        c.choice("context key", key, CONTEXT_KEYS)
        c.integer(f"context.{key}", value, 1, 1_000_000)
    outputs = c.mapping("outputs", card["outputs"], optional=False)
    n_out = c.integer("outputs.n", outputs.get("n"), 1, MAX_OUTPUTS)
    names = outputs.get("names")
    if names is not None:
        if not isinstance(names, list) or len(names) != n_out:
            raise c.fail("outputs.names", f"a list of {n_out} names (one per output) or null", names)
        for i, name in enumerate(names):
            c.text(f"outputs.names[{i}]", name, optional=False)
    rois = c.mapping("rois", card.get("rois"))
    if len(rois) > MAX_ROIS:
        raise c.fail("rois", f"at most {MAX_ROIS} ROIs", f"{len(rois)} ROIs")
    for name, columns in rois.items():
        c.text("ROI name", name, optional=False)
        for i in c.array(f"rois[{name!r}]", columns, n_out):
            c.integer(f"rois[{name!r}] items", i, 0, n_out - 1)
    c.mapping("scores", card.get("scores"))
    c.mapping("training", card.get("training"))
    weights = c.mapping("weights", card["weights"], optional=False)
    for key in ("file", "arrays"):
        c.text(f"weights.{key}", weights.get(key), optional=False)
    if weights.get("dtype") != "float32":
        raise c.fail("weights.dtype", "'float32'", weights.get("dtype"))
    if weights.get("shape") != [rows, n_out]:
        raise c.fail("weights.shape", f"[{rows}, {n_out}] (what its feature spaces, delays and outputs imply)", weights.get("shape"))
    hashes = weights.get("sha256")
    if not isinstance(hashes, dict):
        raise _refuse(file, "the card pins no content hashes (weights.sha256; written by an older berg)")
    for key in ("file", "arrays"):
        digest = hashes.get(weights[key])
        if not (isinstance(digest, str) and SHA256_RE.fullmatch(digest)):
            raise c.fail(f"weights.sha256[{weights[key]!r}]", "a sha256 hex digest", digest)
    _check_space(c, card.get("space"), n_out)
    return card


def _check_space(c: _Checker, value: Any, n_out: int) -> None:
    """The optional ``space`` field: ``mask``/``reference`` file names, ``n_voxels`` (= outputs.n), ``name``, and the
    sha256 of both files (``sha256``: file name -> hex digest)."""
    if value is None:
        return
    space = c.mapping("space", value, optional=False)
    for key in SPACE_FILES:
        c.text(f"space.{key}", space.get(key), optional=False)
    c.integer("space.n_voxels", space.get("n_voxels"), n_out, n_out)
    c.text("space.name", space.get("name"))
    hashes = c.mapping("space.sha256", space.get("sha256"), optional=False)
    for key in SPACE_FILES:
        digest = hashes.get(space[key])
        if not (isinstance(digest, str) and SHA256_RE.fullmatch(digest)):
            raise c.fail(f"space.sha256[{space[key]!r}]", "a sha256 hex digest", digest)


def read_card(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The card of the encoder folder ``path``, checked (``check_card``); files it names stay inside the folder."""
    folder = Path(path)
    file = folder / CARD_FILE
    if not is_encoder_dir(folder):
        raise ModelLoadError(f"{folder} is not a trained-encoder folder: it has no {CARD_FILE} (write one with `berg train ... --out DIR`)")
    inside(folder, CARD_FILE, file=file, field="the card")
    card = check_card(_read_json(file), file)
    for key in ("file", "arrays"):
        inside(folder, card["weights"][key], file=file, field=f"weights.{key}")
    if card.get("space") is not None:
        for key in SPACE_FILES:
            inside(folder, card["space"][key], file=file, field=f"space.{key}")
    return card


def card_files(folder: str | os.PathLike[str], card: Mapping[str, Any], keys: Sequence[str] = ("file", "arrays")) -> dict[str, Path]:
    """``{"file": weights path, "arrays": arrays path}`` of a checked card, resolved and confined to ``folder``."""
    folder = Path(folder)
    file = folder / CARD_FILE
    return {key: inside(folder, card["weights"][key], file=file, field=f"weights.{key}") for key in keys}


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_files(folder: str | os.PathLike[str], card: Mapping[str, Any], model_id: str = "",
                 keys: Sequence[str] = ("file", "arrays")) -> dict[str, Path]:
    """``card_files``, each checked to be a regular file whose sha256 is the one the card pins.

    A mismatch (a flipped byte, a half-copied file) raises ``ModelLoadError`` naming the file.
    """
    files = card_files(folder, card, keys)
    who = model_id or str(folder)
    for key, path in files.items():
        _check_hash(path, card["weights"]["sha256"][card["weights"][key]], who)
    return files


def verify_space_files(folder: str | os.PathLike[str], card: Mapping[str, Any], model_id: str = "") -> dict[str, Path]:
    """``{"mask": path, "reference": path}`` of a checked card's ``space``, confined to ``folder``, each a regular file
    whose sha256 is the one the card pins (else one ``ModelLoadError`` line naming the file)."""
    folder = Path(folder)
    space = card.get("space")
    who = model_id or str(folder)
    if not space:
        raise ModelLoadError(f"{who}: its card names no subject space (berg train --space-mask/--space-reference)")
    files = {key: inside(folder, space[key], file=folder / CARD_FILE, field=f"space.{key}") for key in SPACE_FILES}
    for key, path in files.items():
        _check_hash(path, space["sha256"][space[key]], who)
    return files


def verify_folder_files(folder: str | os.PathLike[str], card: Mapping[str, Any], model_id: str = "") -> dict[str, Path]:
    """Every file a checked card names (weights, arrays, and the space's mask and reference when it has one), each
    verified against its pinned sha256: what a copy of the encoder folder must carry."""
    files = {f"weights.{k}": p for k, p in verify_files(folder, card, model_id).items()}
    if card.get("space"):
        files.update({f"space.{k}": p for k, p in verify_space_files(folder, card, model_id).items()})
    return files


def _check_hash(path: Path, want: str, who: str) -> None:
    regular_file(path, what=who)
    try:
        got = file_sha256(path)
    except OSError as exc:
        raise ModelLoadError(f"{who}: {path} cannot be read ({exc.strerror})") from exc
    if got != want:
        raise ModelLoadError(f"{who}: {path} is corrupt (sha256 {got[:12]}... but its card pins {want[:12]}...); "
                             "re-run `berg train` or reinstall the encoder")


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
    if card.get("space"):  # `berg encode DIR --output pred.nii.gz` maps the outputs into this space
        info["volume"] = True
        info["space"] = card["space"].get("name") or "subject space of berg train --space-mask"
    return EncoderSpec(
        model_id=model_id or card.get("model_id") or folder.name,
        family=family,
        factory="berg_core.trained.encoder:TrainedEncoder",
        metadata="berg_core.trained.encoder:load_metadata",
        description=_describe(card),
        stimulus=card["stimulus"],
        selection=selection,
        options=TRAINED_OPTIONS,
        params={"path": str(folder)},  # the factory's input (TrainedEncoder reads spec.params); info["path"] is for display
        info=info,
        card=str(card.get("card") or ""),
    )


#: the load options of every trained encoder (``TrainedEncoder``)
TRAINED_OPTIONS = Options(
    Option("batch_size", int, 32, minimum=1, help="sentences per forward pass (word models: a quarter of it, at least 1)"),
    Option("backbone", str, None, help="override every feature space's backbone (e.g. a local copy)"),
    Option("dtype", str, None, choices=("float32", "float16", "bfloat16"),
           help="backbone precision; None: float32 on CPU, float16 on GPU"),
    Option("feature_cache", bool, True, help="reuse features across runs (the feature cache)"),
)


def find_encoder_dirs(root: str | os.PathLike[str]) -> list[Path]:
    """``root`` itself if it is an encoder folder, else its sub-folders that are (sorted)."""
    root = Path(root)
    if is_encoder_dir(root):
        return [root]
    try:
        if not root.is_dir():
            return []
        return sorted(p for p in root.iterdir() if is_encoder_dir(p))
    except OSError as exc:
        raise ModelLoadError(f"encoder folder {root} cannot be listed ({exc.strerror})") from exc


def _report(register: Callable[..., None], source: str, error: BergError) -> None:
    """Tell the registry (``register.problem``) that ``source`` was skipped; a plain callable gets a warning."""
    problem = getattr(register, "problem", None)
    if callable(problem):
        problem(source, str(error))
    else:
        warnings.warn(f"skipped {source}: {error}", stacklevel=3)


def register_encoder_dirs(register: Callable[[EncoderSpec], None], root: str | os.PathLike[str], *, family: str = FAMILY) -> list[str]:
    """Register every encoder folder under ``root`` (see ``find_encoder_dirs``); returns their ids.

    A folder whose card is refused is reported (``berg plugins``) and skipped: it hides only itself.
    """
    ids: list[str] = []
    try:
        folders = find_encoder_dirs(root)
    except BergError as exc:
        _report(register, str(root), exc)
        return ids
    for folder in folders:
        try:
            spec = spec_from_dir(folder, family=family)
        except BergError as exc:
            _report(register, str(folder), exc)
            continue
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
