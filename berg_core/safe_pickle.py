"""An allow-list unpickler for BERG's pickles (``.npy`` files holding a dict, the RidgeCV ``.pkl``).

A pickle can name any importable callable; the plain unpickler imports and calls it (``os.system``
included). ``SafeUnpickler.find_class`` resolves only this allow-list and refuses everything else
with ``UnsafePickleError``:

* numpy array/scalar reconstruction: ``_reconstruct``, ``scalar``, ``_frombuffer`` under both
  ``numpy.core.*`` (numpy 1 pickles) and ``numpy._core.*`` (numpy 2 pickles), ``numpy.ndarray``,
  ``numpy.dtype``, the ``numpy.dtypes.*DType`` classes;
* plain-data builtins: ``slice``, ``set``, ``frozenset``, ``complex``, ``bytearray``, ``object``,
  ``collections.OrderedDict``, and for protocol 0-2 pickles ``_codecs.encode(text, "latin1")`` (how they
  spell bytes) and ``copyreg._reconstructor`` (only for the estimator classes below);
* sklearn's ``RidgeCV`` (``sklearn.linear_model._ridge`` and the 0.24-era ``sklearn.linear_model.ridge``)
  mapped to ``PickledEstimator``, a plain attribute holder: sklearn is never imported.

Memory (arrays are the bulk): an array pickled with protocol 2-4 (``np.save`` uses 4) is stored as one
bytes object; the unpickler reads it into a single buffer and numpy's ``__setstate__`` uses that buffer
as the array's memory without copying (arrays over 1000 bytes, aligned, native byte order). Peak memory
is therefore about 1x the array payload (plus small per-read buffers): loading BERG's 8192 x 95,556
float64 weights (6.3 GB) peaks near 6.3 GB (the array's ``.base`` is that bytes buffer). Converting to
float32 afterwards adds the float32 copy (3.1 GB) while both exist. Byte-swapped or misaligned payloads
cost one extra copy inside numpy.
"""

from __future__ import annotations

import ast
import collections
import io
import os
import pickle
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from berg_core.errors import ModelLoadError, UnsafePickleError

_RIDGE_NAMES = ("sklearn.linear_model._ridge", "sklearn.linear_model.ridge")


class PickledEstimator:
    """The state of a pickled sklearn estimator as plain attributes (``coef_``, ``intercept_``, ...).

    ``pickled_class`` is the dotted name of the class the pickle asked for (e.g.
    ``"sklearn.linear_model._ridge.RidgeCV"``); no sklearn code is involved.
    """

    pickled_class: str = ""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            merged: dict[str, Any] = {}
            for part in state:
                if isinstance(part, Mapping):
                    merged.update(part)
            state = merged
        if not isinstance(state, Mapping):
            raise UnsafePickleError(f"pickled {self.pickled_class or 'estimator'} has a {type(state).__name__} state, "
                                    "not a dict: this is not a BERG file; delete it and re-fetch it with `berg fetch MODEL`")
        for key, value in state.items():
            if not isinstance(key, str) or key.startswith("__"):
                raise UnsafePickleError(f"pickled {self.pickled_class} has attribute {key!r}: this is not a BERG file; "
                                        "delete it and re-fetch it with `berg fetch MODEL`")
            self.__dict__[key] = value

    def __repr__(self) -> str:
        attrs = ", ".join(sorted(k for k in self.__dict__ if not k.startswith("_")))
        return f"PickledEstimator({self.pickled_class}: {attrs})"


_estimator_classes: dict[str, type[PickledEstimator]] = {}


def _estimator_class(module: str, name: str) -> type[PickledEstimator]:
    """A ``PickledEstimator`` subclass named like the pickled class (one per dotted name)."""
    dotted = f"{module}.{name}"
    if dotted not in _estimator_classes:
        _estimator_classes[dotted] = type(name, (PickledEstimator,), {"pickled_class": dotted, "__module__": __name__})
    return _estimator_classes[dotted]


class _SafeReconstructor:
    """Protocol 0/1 object creation (``copyreg._reconstructor``), limited to ``PickledEstimator`` classes.

    Allow-listed callables are slot-less instances, so a pickle's BUILD cannot set attributes on them.
    """

    __slots__ = ()

    def __call__(self, cls: type, base: type, state: Any) -> Any:
        if not (isinstance(cls, type) and issubclass(cls, PickledEstimator)) or base is not object or state is not None:
            raise UnsafePickleError(f"refused copyreg._reconstructor({cls!r}, {base!r}, ...): this is not a BERG file; "
                                    "delete it and re-fetch it with `berg fetch MODEL`")
        return object.__new__(cls)


_NP_FROMBUFFER = np.zeros(2).__reduce_ex__(5)[0]  # numpy's pickle-5 helper (a Python function)


class _FromBuffer:
    """numpy's ``_frombuffer(buf, dtype, shape, order)`` behind a slot-less wrapper."""

    __slots__ = ()

    def __call__(self, *args: Any) -> Any:
        return _NP_FROMBUFFER(*args)


class _Latin1Encode:
    """``_codecs.encode(text, "latin1")``: how protocol 0-2 pickles spell a bytes object (latin-1 only)."""

    __slots__ = ()

    def __call__(self, text: Any, encoding: Any = "utf-8") -> bytes:
        if not isinstance(text, str) or str(encoding).lower().replace("_", "-") not in {"latin1", "latin-1", "iso-8859-1"}:
            raise UnsafePickleError(f"refused _codecs.encode with encoding {encoding!r}: this is not a BERG file; "
                                    "delete it and re-fetch it with `berg fetch MODEL`")
        return text.encode("latin-1")


def _numpy_globals() -> dict[tuple[str, str], Any]:
    """numpy's reconstruction callables under every module spelling numpy 1 and 2 pickles use."""
    reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]  # C functions: no attributes to tamper with
    scalar = np.float64(0).__reduce__()[0]
    frombuffer = _FromBuffer()
    out: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for pkg in ("numpy.core", "numpy._core"):
        for mod in ("multiarray", "_multiarray_umath"):
            out[(f"{pkg}.{mod}", "_reconstruct")] = reconstruct
            out[(f"{pkg}.{mod}", "scalar")] = scalar
        out[(f"{pkg}.numeric", "_frombuffer")] = frombuffer
    dtypes = getattr(np, "dtypes", None)  # numpy >= 1.25
    if dtypes is not None:
        for name in dir(dtypes):
            obj = getattr(dtypes, name)
            if name.endswith("DType") and isinstance(obj, type) and issubclass(obj, np.dtype):
                out[("numpy.dtypes", name)] = obj
    return out


_ALLOWED: dict[tuple[str, str], Any] = {
    **_numpy_globals(),
    ("builtins", "slice"): slice,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
    ("builtins", "bytearray"): bytearray,
    ("builtins", "object"): object,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("copyreg", "_reconstructor"): _SafeReconstructor(),
    ("_codecs", "encode"): _Latin1Encode(),
    **{(mod, "RidgeCV"): _estimator_class(mod, "RidgeCV") for mod in _RIDGE_NAMES},
}


_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}  # names in Python 2 pickles


class SafeUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only allow-listed globals (plus ``extra_globals``)."""

    def __init__(self, file: IO[bytes], *, extra_globals: Mapping[tuple[str, str], Any] | None = None,
                 source: str = "the pickle") -> None:
        super().__init__(file, encoding="latin1")
        self._extra = dict(extra_globals or {})
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        key = (_PY2_MODULES.get(module, module), name)
        if key in self._extra:
            return self._extra[key]
        if key in _ALLOWED:
            return _ALLOWED[key]
        raise UnsafePickleError(f"refused to load {self._source}: it asks for {module}.{name}, which is not on berg's "
                                "allow-list, so this is not a BERG file (or it was tampered with); delete it and "
                                "re-fetch it with `berg fetch MODEL`")

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"refused to load {self._source}: it uses persistent ids, which BERG files do not")


def load_pickle(path_or_fileobj: str | os.PathLike[str] | IO[bytes], *,
                extra_globals: Mapping[tuple[str, str], Any] | None = None) -> Any:
    """Unpickle a file (path or binary file object) with the allow-list; return the object.

    Raises ``UnsafePickleError`` for a refused global and ``ModelLoadError`` for a truncated/corrupt pickle.
    """
    if isinstance(path_or_fileobj, (str, os.PathLike)):
        path = Path(path_or_fileobj)
        with open(path, "rb") as fh:
            return _unpickle(fh, str(path), extra_globals)
    return _unpickle(path_or_fileobj, getattr(path_or_fileobj, "name", "the pickle"), extra_globals)


def load_npy_object(path: str | os.PathLike[str], *,
                    extra_globals: Mapping[tuple[str, str], Any] | None = None) -> Any:
    """Load a ``.npy`` file as ``np.load(path, allow_pickle=True).item()`` would, but safely.

    For a 0-d object array (what ``np.save(path, some_dict)`` writes) the held object is returned
    (usually a dict); other object arrays are returned as arrays; plain numeric ``.npy`` files are read
    with ``allow_pickle=False``.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        try:
            version = np.lib.format.read_magic(fh)
            dtype = _read_header(fh, version)[2]
        except (ValueError, OSError, SyntaxError, struct.error) as exc:
            raise ModelLoadError(f"{path} is not a valid .npy file ({exc}): it is truncated or corrupt; delete it and "
                                 "re-fetch it with `berg fetch MODEL`") from exc
        if not dtype.hasobject:
            fh.seek(0)
            return np.lib.format.read_array(fh, allow_pickle=False)
        arr = _unpickle(fh, str(path), extra_globals)
    if not isinstance(arr, np.ndarray):
        raise ModelLoadError(f"{path} holds a pickled {type(arr).__name__}, not an array: it is not a BERG .npy file")
    return arr[()] if arr.shape == () else arr


def _read_header(fh: IO[bytes], version: tuple[int, int]) -> tuple[tuple[int, ...], bool, np.dtype]:
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(fh)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(fh)
    if version == (3, 0):  # utf-8 header, 4-byte length (numpy writes it only for unicode field names)
        (length,) = struct.unpack("<I", fh.read(4))
        header = ast.literal_eval(fh.read(length).decode("utf-8"))
        return tuple(header["shape"]), bool(header["fortran_order"]), np.lib.format.descr_to_dtype(header["descr"])
    raise ValueError(f"unsupported .npy format version {version}")


def _unpickle(fh: IO[bytes], source: str, extra_globals: Mapping[tuple[str, str], Any] | None) -> Any:
    try:
        return SafeUnpickler(fh, extra_globals=extra_globals, source=source).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            MemoryError, struct.error, io.UnsupportedOperation) as exc:
        raise ModelLoadError(f"could not unpickle {source} ({type(exc).__name__}: {exc}): the file is truncated or "
                             "corrupt; delete it and re-fetch it with `berg fetch MODEL`") from exc


__all__ = ["PickledEstimator", "SafeUnpickler", "load_npy_object", "load_pickle"]
