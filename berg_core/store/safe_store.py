"""A pickle-free store for BERG's metadata dicts: one ``.npz`` read with ``allow_pickle=False``.

BERG ships metadata as a pickled dict inside a ``.npy``. After one read through the allow-list
unpickler, the dict is written here as a JSON tree (entry ``__tree__``: a 0-d unicode array) plus one
npz entry per array, so later loads never unpickle anything. Round trip is exact for:
``dict`` (str/int keys), ``list``, ``tuple``, ``str``, ``int``, ``float`` (NaN/inf included), ``bool``,
``None``, ``bytes``, numpy scalars, numeric/bool/unicode arrays, and object arrays (of str: stored as
a unicode array; of anything else: stored element by element) — the latter come back as object arrays.

The tree is checked first (``safe_pickle.check_graph``: no cycles, bounded depth, bounded size when
shared references are expanded), and an array reached twice is stored once, so a small hostile dict
cannot make the JSON tree or the npz large.
"""

from __future__ import annotations

import base64
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from berg_core.errors import ModelLoadError
from berg_core.store.safe_pickle import check_graph

TREE_KEY = "__tree__"


def save_tree(path: Path | str, obj: Any) -> None:
    """Write ``obj`` to ``path`` (a file path; written as is, no ``.npz`` suffix added).

    ``ModelLoadError`` if ``obj`` holds itself, nests too deep or expands too far (see ``check_graph``).
    """
    check_graph(obj, "the metadata to store")
    arrays: dict[str, np.ndarray] = {}
    tree = _encode(obj, arrays, {})
    arrays[TREE_KEY] = np.array(json.dumps(tree, allow_nan=True))
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as the first positional's `allow_pickle`


def load_tree(path: Path | str) -> Any:
    """Read what ``save_tree`` wrote (``allow_pickle=False``: nothing is unpickled)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, KeyError, EOFError) as exc:
        raise ModelLoadError(f"cached file {path} is unreadable ({exc}); delete it and load the model again") from exc
    if TREE_KEY not in arrays:
        raise ModelLoadError(f"cached file {path} lacks its {TREE_KEY} entry; delete it and load the model again")
    try:
        return _decode(json.loads(str(arrays.pop(TREE_KEY)[()])), arrays)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError) as exc:
        raise ModelLoadError(f"cached file {path} is corrupt ({type(exc).__name__}); delete it and load the model again") from exc


def is_valid_tree(path: Path | str) -> bool:
    """True when ``path`` is a complete zip holding the tree entry (a cheap check, no array is read)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return f"{TREE_KEY}.npy" in zf.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def _encode(obj: Any, arrays: dict[str, np.ndarray], names: dict[int, str]) -> Any:
    """The JSON node for ``obj``; arrays go to ``arrays`` (``names``: id of an array already stored -> its name)."""
    if isinstance(obj, np.generic):  # first: np.str_ / np.float64 are also str / float
        if obj.dtype.kind in "biuf":
            return {"t": "npscalar", "dtype": obj.dtype.str, "v": obj.item()}
        return _encode(np.asarray(obj), arrays, {}) | {"scalar": True}
    if obj is None or isinstance(obj, (bool, str)):
        return {"t": "v", "v": str(obj) if isinstance(obj, str) else obj}
    if isinstance(obj, (int, float)):
        return {"t": "int" if isinstance(obj, int) else "float", "v": obj}
    if isinstance(obj, bytes):
        return {"t": "bytes", "v": base64.b64encode(obj).decode("ascii")}
    if isinstance(obj, np.ndarray):
        if id(obj) in names:
            return {"t": "strobjarray" if obj.dtype.hasobject else "array", "name": names[id(obj)]}
        name = f"a{len(arrays)}"
        if obj.dtype.hasobject:
            flat = obj.ravel().tolist()
            if flat and all(isinstance(x, str) for x in flat):
                arrays[name] = np.array(flat, dtype=str).reshape(obj.shape)
                names[id(obj)] = name
                return {"t": "strobjarray", "name": name}
            return {"t": "objarray", "shape": list(obj.shape), "items": [_encode(x, arrays, names) for x in flat]}
        if obj.dtype.kind not in "biufcUS":
            raise ModelLoadError(f"cannot store an array of dtype {obj.dtype} without pickle")
        arrays[name] = obj
        names[id(obj)] = name
        return {"t": "array", "name": name}
    if isinstance(obj, Mapping):
        items = []
        for key, value in obj.items():
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise ModelLoadError(f"cannot store a dict key of type {type(key).__name__} without pickle")
            items.append([key, _encode(value, arrays, names)])
        return {"t": "dict", "items": items}
    if isinstance(obj, (list, tuple)):
        return {"t": "list" if isinstance(obj, list) else "tuple", "items": [_encode(x, arrays, names) for x in obj]}
    raise ModelLoadError(f"cannot store a {type(obj).__name__} without pickle")


def _decode(node: Any, arrays: dict[str, np.ndarray]) -> Any:
    kind = node["t"]
    if kind == "v":
        return node["v"]
    if kind == "int":
        return int(node["v"])
    if kind == "float":
        return float(node["v"])
    if kind == "bytes":
        return base64.b64decode(node["v"])
    if kind == "npscalar":
        return np.dtype(node["dtype"]).type(node["v"])
    if kind == "array":
        arr = arrays[node["name"]]
        return arr[()] if node.get("scalar") else arr
    if kind == "strobjarray":
        return arrays[node["name"]].astype(object)
    if kind == "objarray":
        flat = [_decode(x, arrays) for x in node["items"]]
        out = np.empty(len(flat), dtype=object)
        for i, item in enumerate(flat):  # element by element: never let numpy broadcast nested items
            out[i] = item
        return out.reshape(node["shape"])
    if kind == "dict":
        return {key: _decode(value, arrays) for key, value in node["items"]}
    if kind == "list":
        return [_decode(x, arrays) for x in node["items"]]
    if kind == "tuple":
        return tuple(_decode(x, arrays) for x in node["items"])
    raise ModelLoadError(f"unknown node type {kind!r} in a cached metadata file; delete it and load the model again")
