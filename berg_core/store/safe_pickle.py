"""An allow-list unpickler for BERG's pickles (``.npy`` files holding a dict, the RidgeCV ``.pkl``).

A pickle can name any importable callable; the plain unpickler imports and calls it (``os.system``
included). ``SafeUnpickler.find_class`` resolves only this allow-list and refuses everything else
with ``UnsafePickleError``:

* numpy array/scalar reconstruction: ``_reconstruct``, ``scalar``, ``_frombuffer`` under both
  ``numpy.core.*`` (numpy 1 pickles) and ``numpy._core.*`` (numpy 2 pickles), ``numpy.dtype``, and
  ``numpy.ndarray`` and the ``numpy.dtypes.*DType`` classes as values only (calling them is refused);
* plain-data builtins: ``slice``, ``set``, ``frozenset``, ``complex``, ``bytes`` and ``bytearray`` (of
  bytes, not of a size), ``object``, ``collections.OrderedDict``, and for protocol 0-2 pickles
  ``_codecs.encode(text, "latin1")`` (how they spell bytes) and ``copyreg._reconstructor`` (only for
  the estimator classes below);
* sklearn's ``RidgeCV`` (``sklearn.linear_model._ridge`` and the 0.24-era ``sklearn.linear_model.ridge``)
  mapped to ``PickledEstimator``, a plain attribute holder: sklearn is never imported.

Memory safety. numpy trusts a pickled dtype state: a state declaring an object field with flags saying
"no objects" makes numpy read file bytes as object pointers (a crash). So the unpickler is CPython's
pure-Python one with its object-building opcodes checked: a dtype is built only from a simple spec
(bool, integer, float, complex, ``str``, ``bytes`` or the object dtype ``O``; never structured, void,
subarray or datetime), always as a fresh copy, and its pickled state is compared with the state numpy
itself gives that dtype before it is applied. An array's state must match its dtype (shape x itemsize =
the bytes given, a list of exactly shape items for object arrays), and no shape, length field or
``bytearray`` may ask for more than the file holds, so nothing is allocated beyond the file's size.
Each dtype, array and estimator is given its state once, and only lists, dicts and sets are filled.

Time and memory. A pickle can fetch one memoised object over and over: every call, BUILD and hash is
charged what it copies, iterates or hashes (a tuple's hash walks it, so its expanded size) against a
budget of ``WORK_PER_BYTE`` x the file's size + ``WORK_BASE``, and tuples nested deeper than
``MAX_DEPTH`` are refused as they are built (hashing one nested a million deep overflows CPython's C
stack). After loading, the object graph is walked once (memoised by ``id``): cycles, nesting deeper
than ``MAX_DEPTH`` and shared references that expand past ``MAX_UNITS`` are refused
(``ModelLoadError``), so code that walks the result as a tree stays small.

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
import itertools
import math
import os
import pickle
import re
import struct
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from berg_core.errors import BergError, ModelLoadError, UnsafePickleError

_RIDGE_NAMES = ("sklearn.linear_model._ridge", "sklearn.linear_model.ridge")
_REFETCH = "delete it and re-fetch it with `berg fetch MODEL`"

#: deepest nesting of containers (dict, list, tuple, set, object array, estimator) a loaded pickle may have
MAX_DEPTH = 100
#: the most a loaded object may expand to when walked as a tree, shared references counted each time
#: they are reached: one unit per object plus one per 64 characters of a str/bytes (an array counts 1)
MAX_UNITS = 1 << 22
#: work budget of one unpickling, in units of ``SafeUnpickler._cost``: this many per byte of the file, plus WORK_BASE
WORK_PER_BYTE = 8
WORK_BASE = 1 << 22
_MAX_DIMS = 64  # numpy 2's limit (numpy 1: 32)
_NPY_MAX_HEADER = 10_000  # numpy's own limit on .npy header length
_DTYPE_KINDS = "biufcOUS"  # bool, int, uint, float, complex, object, str, bytes
_DTYPE_SPEC = re.compile(r"[biufcOUS][0-9]{0,9}")  # how numpy's dtype.__reduce__ spells those


class _Refused(Exception):
    """Raised by an allow-listed callable; the unpickler turns it into ``UnsafePickleError`` naming the file."""


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
                                    f"not a dict: this is not a BERG file; {_REFETCH}")
        for key, value in state.items():
            if not isinstance(key, str) or key.startswith("__"):
                raise UnsafePickleError(f"pickled {self.pickled_class} has attribute {_short(key)}: this is not a BERG file; "
                                        f"{_REFETCH}")
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


def _short(value: Any, limit: int = 60) -> str:
    """A short description of an untrusted value that never expands it (the repr of shared lists can be endless)."""
    if isinstance(value, (str, bytes)):
        return repr(value[:limit]) + ("..." if len(value) > limit else "")
    if isinstance(value, int) and not isinstance(value, bool):
        return repr(value) if value.bit_length() <= 64 else f"a {value.bit_length()}-bit int"
    if value is None or isinstance(value, (bool, float)):
        return repr(value)
    if isinstance(value, tuple) and len(value) <= 8 and all(isinstance(v, (str, bytes, int, float, type(None))) for v in value):
        return "(" + ", ".join(_short(v, 20) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    return f"a {type(value).__name__}"


# --------------------------------------------------------------------------- dtypes and array states


def check_dtype(dtype: Any) -> np.dtype:
    """``dtype`` if it is one BERG's files use (bool/int/uint/float/complex, ``str``, ``bytes``, object), else ``_Refused``.

    Structured, void, subarray, datetime and dtypes with metadata are refused, as is any whose object
    flag disagrees with its kind.
    """
    if not isinstance(dtype, np.dtype):
        raise _Refused(f"it gives a {type(dtype).__name__} where numpy needs a dtype")
    if (dtype.kind not in _DTYPE_KINDS or dtype.fields is not None or dtype.subdtype is not None
            or dtype.metadata is not None or dtype.hasobject != (dtype.kind == "O")):
        raise _Refused(f"it uses numpy dtype {_short(str(dtype))}, which BERG's files do not")
    return dtype


def _dtype_from_state(inst: np.dtype, state: Any, limit: int) -> np.dtype:
    """The dtype ``state`` describes for an ``inst`` of that kind; ``_Refused`` unless numpy would write exactly ``state``.

    numpy's state: ``(version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata])``.
    """
    if not (isinstance(state, tuple) and len(state) in (8, 9) and state[0] == 3 and state[2:5] == (None, None, None)
            and (len(state) == 8 or state[8] is None)):
        raise _Refused("it restores a numpy dtype with a structured, subarray or foreign state")
    byteorder, elsize = state[1], state[5]
    if byteorder not in ("<", ">", "|") or type(elsize) is not int or not -1 <= elsize <= limit:
        raise _Refused(f"it restores a numpy dtype with byte order {_short(byteorder)} and item size {_short(elsize)}")
    if inst.kind in "US":
        ref = np.dtype(f"{inst.kind}{elsize // 4 if inst.kind == 'U' else elsize}") if elsize >= 0 else None
    else:
        ref = np.dtype(inst.char)
    if ref is not None and byteorder != "|":
        ref = ref.newbyteorder(byteorder)
    if ref is None or ref.__reduce__()[2] != state[:8]:
        raise _Refused(f"it restores a {inst} dtype with a state that disagrees with itself ({', '.join(_short(v, 20) for v in state[:8])})")
    return ref


def _shape(shape: Any, limit: int | None) -> tuple[int, ...]:
    """``shape`` as a tuple of Python ints, each >= 0, at most ``limit`` elements in all (``_Refused`` otherwise)."""
    if not isinstance(shape, (tuple, list)) or len(shape) > _MAX_DIMS:
        raise _Refused(f"it gives an array shape that is a {type(shape).__name__}")
    if not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise _Refused(f"it gives array shape {_short(shape)}")
    out = tuple(int(n) for n in shape)
    if limit is not None and math.prod(out) > limit:
        raise _Refused(f"it asks for an array of shape {out}, more elements than the file has bytes")
    return out


def array_state(state: Any, limit: int | None) -> tuple[tuple[int, ...], np.dtype, bool, Any]:
    """Validate numpy's array state ``([1,] shape, dtype, fortran, data)``; return (shape, dtype, fortran, data).

    ``limit`` caps the number of elements (the file's size: every element needs at least one byte).
    """
    if not isinstance(state, tuple) or len(state) not in (4, 5) or (len(state) == 5 and type(state[0]) is not int):
        raise _Refused("it restores an array from a state that is not numpy's")
    shape, dtype, fortran, data = state[-4:]
    shape = _shape(shape, limit)
    check_dtype(dtype)
    if type(fortran) not in (bool, int):
        raise _Refused(f"it gives an array order flag that is a {type(fortran).__name__}")
    return shape, dtype, bool(fortran), data


# --------------------------------------------------------------------------------- allow-listed callables


class _SafeReconstructor:
    """Protocol 0/1 object creation (``copyreg._reconstructor``), limited to ``PickledEstimator`` classes.

    Allow-listed callables are slot-less instances, so a pickle's BUILD cannot set attributes on them.
    """

    __slots__ = ()

    def __call__(self, cls: type, base: type, state: Any) -> Any:
        if not (isinstance(cls, type) and issubclass(cls, PickledEstimator)) or base is not object or state is not None:
            raise _Refused(f"it calls copyreg._reconstructor({_short(cls)}, {_short(base)}, ...)")
        return object.__new__(cls)


_NP_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]  # C functions: no attributes to tamper with
_NP_SCALAR = np.float64(0).__reduce__()[0]
_NP_FROMBUFFER = np.zeros(2).__reduce_ex__(5)[0]  # numpy's pickle-5 helper (a Python function)


class _DType:
    """``numpy.dtype(spec, align, copy)`` for the simple specs numpy's pickles use; always a fresh copy.

    The copy matters: the BUILD that follows sets its state, which must never reach numpy's shared dtypes.
    """

    __slots__ = ()

    def __call__(self, spec: Any, align: Any = False, copy: Any = True) -> np.dtype:
        if not isinstance(spec, str) or not _DTYPE_SPEC.fullmatch(spec):
            raise _Refused(f"it builds numpy dtype {_short(spec)}, which BERG's files do not use")
        return check_dtype(np.dtype(spec, False, True))


class _Reconstruct:
    """numpy's ``_reconstruct(ndarray, (0,), b"b")``: an empty array whose BUILD then sets shape, dtype and data."""

    __slots__ = ()

    def __call__(self, subtype: Any, shape: Any, typecode: Any) -> np.ndarray:
        if subtype is not np.ndarray or type(shape) is not tuple or shape != (0,) or typecode not in (b"b", "b"):
            raise _Refused(f"it calls numpy's _reconstruct({_short(subtype)}, {_short(shape)}, {_short(typecode)})")
        return _NP_RECONSTRUCT(np.ndarray, (0,), b"b")


class _Scalar:
    """numpy's ``scalar(dtype, data)``: a numeric/str/bytes scalar from exactly ``dtype.itemsize`` bytes."""

    __slots__ = ()

    def __call__(self, dtype: Any, data: Any = None) -> np.generic:
        check_dtype(dtype)
        if dtype.hasobject or not isinstance(data, (bytes, str)) or len(data) != dtype.itemsize:
            raise _Refused(f"it builds a numpy {dtype} scalar from a {type(data).__name__} of {_short(_len(data))} items")
        return _NP_SCALAR(dtype, data)


class _FromBuffer:
    """numpy's ``_frombuffer(buf, dtype, shape, order)`` (pickle protocol 5) when shape x itemsize = the buffer's size."""

    __slots__ = ()

    def __call__(self, buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
        check_dtype(dtype)
        nbytes = memoryview(buf).nbytes
        shape = _shape(shape, nbytes)
        if dtype.hasobject or math.prod(shape) * dtype.itemsize != nbytes or order not in ("C", "F"):
            raise _Refused(f"it builds a {dtype} array of shape {shape} from {nbytes} bytes")
        return _NP_FROMBUFFER(buf, dtype, shape, order)


def _is_latin1(encoding: Any) -> bool:
    return str(encoding).lower().replace("_", "-") in {"latin1", "latin-1", "iso-8859-1"}


class _Latin1Encode:
    """``_codecs.encode(text, "latin1")``: how protocol 0-2 pickles spell a bytes object (latin-1 only)."""

    __slots__ = ()

    def __call__(self, text: Any, encoding: Any = "utf-8") -> bytes:
        if not isinstance(text, str) or not _is_latin1(encoding):
            raise _Refused(f"it calls _codecs.encode with encoding {_short(encoding)}")
        return text.encode("latin-1")


class _BytesOf:
    """``bytes(data)`` / ``bytearray(data)`` of bytes, or of latin-1 text (protocol 0-2); never of a size."""

    __slots__ = ("_kind",)

    def __init__(self, kind: type[bytes] | type[bytearray]) -> None:
        self._kind = kind

    def __call__(self, data: Any = b"", encoding: Any = None) -> bytes | bytearray:
        if isinstance(data, (bytes, bytearray)) and encoding is None:
            return self._kind(data)
        if isinstance(data, str) and _is_latin1(encoding):
            return self._kind(data, "latin-1")
        raise _Refused(f"it calls {self._kind.__name__}({_short(data)}), which BERG's files never do")


def _len(data: Any) -> Any:
    try:
        return len(data)
    except TypeError:
        return None


_DTYPE_CTOR = _DType()
_RECONSTRUCT = _Reconstruct()


def _numpy_globals() -> dict[tuple[str, str], Any]:
    """numpy's reconstruction callables under every module spelling numpy 1 and 2 pickles use."""
    out: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): _DTYPE_CTOR}
    for pkg in ("numpy.core", "numpy._core"):
        for mod in ("multiarray", "_multiarray_umath"):
            out[(f"{pkg}.{mod}", "_reconstruct")] = _RECONSTRUCT
            out[(f"{pkg}.{mod}", "scalar")] = _Scalar()
        out[(f"{pkg}.numeric", "_frombuffer")] = _FromBuffer()
    for name, obj in _dtype_classes().items():
        out[("numpy.dtypes", name)] = obj
    return out


def _dtype_classes() -> dict[str, type]:
    dtypes = getattr(np, "dtypes", None)  # numpy >= 1.25
    if dtypes is None:
        return {}
    return {name: obj for name in dir(dtypes) if name.endswith("DType")
            and isinstance(obj := getattr(dtypes, name), type) and issubclass(obj, np.dtype)}


_ALLOWED: dict[tuple[str, str], Any] = {
    **_numpy_globals(),
    ("builtins", "slice"): slice,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
    ("builtins", "bytes"): _BytesOf(bytes),  # protocol 2 spells b"" as bytes()
    ("builtins", "bytearray"): _BytesOf(bytearray),
    ("builtins", "object"): object,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("copyreg", "_reconstructor"): _SafeReconstructor(),
    ("_codecs", "encode"): _Latin1Encode(),
    **{(mod, "RidgeCV"): _estimator_class(mod, "RidgeCV") for mod in _RIDGE_NAMES},
}

#: allow-listed as values (``_reconstruct``'s subtype, a pickled dtype class) but never called:
#: ``ndarray(shape)`` would allocate any size, ``Float64DType()`` returns numpy's shared dtype
_VALUE_ONLY = frozenset(id(obj) for obj in (np.ndarray, *_dtype_classes().values()))

_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}  # names in Python 2 pickles


# ---------------------------------------------------------------------------------------- the unpickler


def _stream_size(fh: IO[bytes]) -> int:
    """The size in bytes of ``fh`` (a file or seekable stream); ``sys.maxsize`` when it cannot be known."""
    try:
        return os.fstat(fh.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        pass
    try:
        here = fh.tell()
        end = fh.seek(0, os.SEEK_END)
        fh.seek(here)
        return end
    except (AttributeError, OSError, ValueError):
        return sys.maxsize


class SafeUnpickler(pickle._Unpickler):  # type: ignore[name-defined]  # noqa: SLF001 - its opcodes must be checked
    """An unpickler that resolves only allow-listed globals (plus ``extra_globals``) and checks what it builds.

    CPython's pure-Python unpickler with these opcodes checked (see the module docstring):

    * calls (REDUCE, NEWOBJ, NEWOBJ_EX, OBJ, INST) never reach a value-only global;
    * BUILD only sets, once, the state of a dtype, array or ``PickledEstimator`` this unpickler built
      (dtype and array states validated first);
    * APPEND(S), SETITEM(S) and ADDITEMS only fill a list, dict or set (never an array: assigning a list to
      an array slice would make numpy expand it);
    * a length field, bytearray or array shape larger than the file is refused before anything is allocated;
    * work is budgeted: every call, BUILD and hash is charged the size of what it copies, iterates or
      hashes (a tuple: its size expanded, as hashing walks it), against ``WORK_PER_BYTE`` x the file's
      size + ``WORK_BASE`` units, so reusing one memoised object over and over cannot multiply a small
      file into gigabytes or hours; tuples nested deeper than ``MAX_DEPTH`` are refused.

    ``load()`` raises only ``BergError``s (``UnsafePickleError`` for a refusal, ``ModelLoadError`` for a
    corrupt pickle) and checks the result with ``check_graph``.
    """

    dispatch = dict(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]
    #: exceptions ``load()`` lets through unchanged (besides ``BergError``)
    passthrough: tuple[type[BaseException], ...] = ()

    def __init__(self, file: IO[bytes], *, extra_globals: Mapping[tuple[str, str], Any] | None = None,
                 source: str = "the pickle", size: int | None = None) -> None:
        super().__init__(file, encoding="latin1")
        self._extra = dict(extra_globals or {})
        self._source = source
        self._stream = file
        self._size = _stream_size(file) if size is None else size
        self._raw_read = file.read
        self._file_read = self._checked_read  # what load()'s unframer reads the file with (outside frames)
        self._work_left = WORK_PER_BYTE * self._size + WORK_BASE
        self._pending: dict[int, Any] = {}  # dtypes/arrays/estimators built here, awaiting their one BUILD
        self._tuples: dict[int, tuple[tuple[Any, ...], int, int]] = {}  # id -> (tuple, depth, hash cost), nested or costly ones
        self._list_costs: dict[int, tuple[list[Any], int]] = {}  # id -> (list, cost of hashing its items) once computed

    # -- resolving and calling ----------------------------------------------------------------------

    def find_class(self, module: str, name: str) -> Any:
        key = (_PY2_MODULES.get(module, module), name)
        if key in self._extra:
            return self._extra[key]
        if key in _ALLOWED:
            return _ALLOWED[key]
        raise UnsafePickleError(f"refused to load {self._source}: it asks for {module}.{name}, which is not on berg's "
                                f"allow-list, so this is not a BERG file (or it was tampered with); {_REFETCH}")

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"refused to load {self._source}: it uses persistent ids, which BERG files do not; {_REFETCH}")

    def _refuse(self, reason: str) -> UnsafePickleError:
        return UnsafePickleError(f"refused to load {self._source}: {reason}, so this is not a BERG file (or it was tampered "
                                 f"with); {_REFETCH}")

    def _charge_call(self, func: Any, args: Any, kwargs: Any) -> None:
        """Spend what calling ``func(*args, **kwargs)`` copies, iterates and (``set``/``frozenset`` of a list) hashes."""
        self._spend(1 + self._cost(args) + self._cost(kwargs))  # before iterating them
        self._spend(sum(map(self._cost, args)) + sum(map(self._cost, (kwargs or {}).values())))
        if func is set or func is frozenset:
            if len(args) > 1 or kwargs or (args and type(args[0]) not in (list, tuple)):
                raise self._refuse(f"it calls {func.__name__} with {len(args)} arguments, not one list")
            if args:
                self._spend(self._items_hash_cost(args[0]))
        elif func is collections.OrderedDict and (args or kwargs):
            raise self._refuse("it calls OrderedDict with arguments (pickles fill it with SETITEMS)")

    def _items_hash_cost(self, items: list[Any] | tuple[Any, ...]) -> int:
        """Units to hash every item of ``items``; a list's total is walked once and kept until it grows."""
        if type(items) is tuple:
            return self._hash_cost(items)
        known = self._list_costs.get(id(items))
        if known is None:
            self._spend(1 + len(items))  # the walk
            known = self._list_costs[id(items)] = (items, sum(map(self._hash_cost, items)))
        return known[1]

    def _call(self, func: Any, args: Any, kwargs: Any = None) -> Any:
        if id(func) in _VALUE_ONLY:
            raise self._refuse(f"it calls {getattr(func, '__name__', func)}, which BERG's files only name")
        self._charge_call(func, args, kwargs)
        try:
            out = func(*args, **(kwargs or {}))
        except _Refused as exc:
            raise self._refuse(str(exc)) from None
        if func is _DTYPE_CTOR or func is _RECONSTRUCT or isinstance(out, PickledEstimator):
            self._pending[id(out)] = out
        return out

    def _new(self, cls: Any, args: Any, kwargs: Any = None) -> Any:
        if not isinstance(cls, type) or id(cls) in _VALUE_ONLY:
            raise self._refuse(f"it creates an object of {_short(cls)} with NEWOBJ")
        self._charge_call(cls, args, kwargs)
        out = cls.__new__(cls, *args, **(kwargs or {}))
        if isinstance(out, PickledEstimator):
            self._pending[id(out)] = out
        return out

    def load_reduce(self) -> None:
        args = self.stack.pop()
        self.stack[-1] = self._call(self.stack[-1], args)

    def load_newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(self._new(cls, args))

    def load_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(self._new(cls, args, kwargs))

    def _instantiate(self, klass: Any, args: list[Any]) -> None:  # INST and OBJ
        self.append(self._call(klass, tuple(args)))

    # -- setting state --------------------------------------------------------------------------------

    def load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if not isinstance(inst, (PickledEstimator, np.dtype, np.ndarray)):
            raise self._refuse(f"it sets the state of a {type(inst).__name__}, which BERG's files never do")
        if self._pending.pop(id(inst), None) is not inst:
            raise self._refuse(f"it sets the state of a {type(inst).__name__} it did not build (or sets it twice)")
        self._spend(self._cost(state))  # before iterating it
        if type(state) is tuple:
            self._spend(sum(map(self._cost, state)))  # an array's data: numpy may copy it
        try:
            if isinstance(inst, PickledEstimator):
                inst.__setstate__(state)
            elif isinstance(inst, np.dtype):
                self._build_dtype(inst, state)
            else:
                self._build_array(inst, state)
        except _Refused as exc:
            raise self._refuse(str(exc)) from None

    def _build_dtype(self, inst: np.dtype, state: Any) -> None:
        ref = _dtype_from_state(inst, state, self._size)
        ref_state = ref.__reduce__()[2]
        if inst.__reduce__()[2] != ref_state:
            inst.__setstate__(ref_state)  # the state numpy itself gives this dtype, never the file's tuple
        if inst != ref or inst.itemsize != ref.itemsize or inst.flags != ref.flags:
            raise _Refused(f"it restores a dtype numpy reads back as {inst}, not {ref}")

    def checked_array_state(self, state: Any) -> tuple[tuple[int, ...], np.dtype, bool, Any]:
        """``array_state(state)`` capped by this file's size; ``UnsafePickleError`` naming the file."""
        try:
            return array_state(state, self._size)
        except _Refused as exc:
            raise self._refuse(str(exc)) from None

    def _build_array(self, inst: np.ndarray, state: Any) -> None:
        shape, dtype, _, data = array_state(state, self._size)
        count = math.prod(shape)
        if dtype.hasobject:
            ok = type(data) is list and len(data) == count
        else:
            ok = isinstance(data, (bytes, bytearray, str)) and len(data) == count * dtype.itemsize
        if not ok:
            raise _Refused(f"it gives a {dtype} array of shape {shape} a {type(data).__name__} of {_short(_len(data))} items")
        inst.__setstate__(state)

    # -- filling containers ---------------------------------------------------------------------------

    def _target(self, kinds: tuple[type, ...], opcode: str) -> Any:
        target = self.stack[-1]
        if type(target) not in kinds:
            raise self._refuse(f"it uses {opcode} on a {type(target).__name__}")
        return target

    def load_append(self) -> None:
        value = self.stack.pop()
        target = self._target((list,), "APPEND")
        self._list_costs.pop(id(target), None)
        target.append(value)

    def load_appends(self) -> None:
        items = self.pop_mark()
        target = self._target((list,), "APPENDS")
        self._list_costs.pop(id(target), None)
        target.extend(items)

    def load_setitem(self) -> None:
        value = self.stack.pop()
        key = self.stack.pop()
        self._spend(self._hash_cost(key))
        self._target((dict, collections.OrderedDict), "SETITEM")[key] = value

    def load_setitems(self) -> None:
        items = self.pop_mark()
        target = self._target((dict, collections.OrderedDict), "SETITEMS")
        self._spend(sum(self._hash_cost(key) for key in items[::2]))
        for i in range(0, len(items), 2):
            target[items[i]] = items[i + 1]

    def load_dict(self) -> None:
        items = self.pop_mark()
        self._spend(sum(self._hash_cost(key) for key in items[::2]))
        self.append({items[i]: items[i + 1] for i in range(0, len(items), 2)})

    def load_additems(self) -> None:
        items = self.pop_mark()
        target = self._target((set,), "ADDITEMS")
        self._spend(sum(self._hash_cost(x) for x in items))
        target.update(items)

    def load_frozenset(self) -> None:
        items = self.pop_mark()
        self._spend(sum(self._hash_cost(x) for x in items))
        self.append(frozenset(items))

    # -- lengths and work -----------------------------------------------------------------------------

    def _checked_read(self, n: int) -> bytes:
        try:
            left = self._size - self._stream.tell()
        except (AttributeError, OSError, ValueError):
            left = self._size
        if n > left:
            raise ModelLoadError(f"{self._source} is truncated or corrupt (a record of {n} bytes where {max(left, 0)} remain); "
                                 f"{_REFETCH}")
        return self._raw_read(n)

    def load_bytearray8(self) -> None:
        (n,) = struct.unpack("<Q", self.read(8))
        if n > self._size:
            raise ModelLoadError(f"{self._source} is corrupt: it asks for a {n}-byte bytearray in a {self._size}-byte file; "
                                 f"{_REFETCH}")
        buf = bytearray(n)
        self.readinto(buf)
        self.append(buf)

    def _spend(self, units: int) -> None:
        self._work_left -= units
        if self._work_left < 0:
            raise ModelLoadError(f"{self._source} asks for more copying and hashing than a {self._size}-byte file could need (it "
                                 f"reuses its parts over and over), which BERG's files never do: it is corrupt or not a BERG "
                                 f"file; {_REFETCH}")

    def _cost(self, obj: Any) -> int:
        """Units to copy or iterate ``obj``: 1 + its length (an array: its size; an int: its 64-bit digits)."""
        if isinstance(obj, (bytes, bytearray, str, list, tuple, dict, set, frozenset)):
            return 1 + len(obj)
        if isinstance(obj, np.ndarray):
            return 1 + obj.size
        if type(obj) is int:
            return 1 + obj.bit_length() // 64
        return 1

    def _hash_cost(self, obj: Any) -> int:
        """Units to hash ``obj``: a tuple is walked every time (its size expanded), a str/bytes hash is cached."""
        if type(obj) is tuple:
            known = self._tuples.get(id(obj))
            return known[2] if known else 1 + len(obj)
        return 1 + obj.bit_length() // 64 if type(obj) is int else 1

    # -- tuples: hashing walks them (uncached), and one nested ~1e6 deep overflows the C stack

    def _tuple(self, items: tuple[Any, ...]) -> tuple[Any, ...]:
        depth, cost = 1, 1
        for x in items:
            if type(x) is tuple:
                known = self._tuples.get(id(x))
                depth = max(depth, 1 + (known[1] if known else 1))
            cost += self._hash_cost(x)
        if depth > MAX_DEPTH:
            raise ModelLoadError(f"{self._source} nests tuples more than {MAX_DEPTH} levels deep, which BERG's files never do: "
                                 f"it is corrupt or not a BERG file; {_REFETCH}")
        if depth > 1 or cost > 1 + len(items):
            self._tuples[id(items)] = (items, depth, cost)  # holding the tuple keeps its id unique
        return items

    def load_tuple(self) -> None:
        items = tuple(self.pop_mark())  # first: pop_mark rebinds self.append
        self.append(self._tuple(items))

    def load_tuple1(self) -> None:
        self.stack[-1] = self._tuple((self.stack[-1],))

    def load_tuple2(self) -> None:
        self.stack[-2:] = [self._tuple((self.stack[-2], self.stack[-1]))]

    def load_tuple3(self) -> None:
        self.stack[-3:] = [self._tuple((self.stack[-3], self.stack[-2], self.stack[-1]))]

    for _opcode, _method in ((pickle.REDUCE, load_reduce), (pickle.NEWOBJ, load_newobj), (pickle.NEWOBJ_EX, load_newobj_ex),
                             (pickle.BUILD, load_build), (pickle.APPEND, load_append), (pickle.APPENDS, load_appends),
                             (pickle.SETITEM, load_setitem), (pickle.SETITEMS, load_setitems), (pickle.DICT, load_dict),
                             (pickle.ADDITEMS, load_additems), (pickle.FROZENSET, load_frozenset),
                             (pickle.BYTEARRAY8, load_bytearray8), (pickle.TUPLE, load_tuple), (pickle.TUPLE1, load_tuple1),
                             (pickle.TUPLE2, load_tuple2), (pickle.TUPLE3, load_tuple3)):
        dispatch[_opcode[0]] = _method
    del _opcode, _method

    # -- the whole load -------------------------------------------------------------------------------

    def load(self) -> Any:
        """The unpickled object; ``UnsafePickleError``/``ModelLoadError`` for anything refused or corrupt."""
        try:
            obj = super().load()
        except (BergError, *self.passthrough):
            raise
        except Exception as exc:  # noqa: BLE001 - a corrupt pickle can make the unpickler raise anything
            detail = " ".join(str(exc).split())[:200]
            raise ModelLoadError(f"could not unpickle {self._source} ({type(exc).__name__}: {detail}): the file is truncated or "
                                 f"corrupt; {_REFETCH}") from exc
        check_graph(obj, self._source)
        return obj


# ------------------------------------------------------------------------------------- object graphs


def _children(obj: Any) -> Iterable[Any] | None:
    """The objects ``obj`` holds when it is a container a tree walk descends into, else None."""
    if isinstance(obj, (list, tuple, set, frozenset)):
        return obj
    if isinstance(obj, dict):
        return itertools.chain(obj.keys(), obj.values())
    if isinstance(obj, np.ndarray):
        return obj.ravel() if obj.dtype.hasobject else None
    if isinstance(obj, PickledEstimator):
        return list(vars(obj).values())
    if isinstance(obj, slice):
        return (obj.start, obj.stop, obj.step)
    return None


def _leaf_units(obj: Any) -> int:
    return 1 + len(obj) // 64 if isinstance(obj, (str, bytes, bytearray)) else 1


def check_graph(obj: Any, what: str, *, max_depth: int = MAX_DEPTH, max_units: int = MAX_UNITS) -> int:
    """The size of ``obj`` walked as a tree, in units (see ``MAX_UNITS``); ``ModelLoadError`` if it is not a small tree.

    Memoised by ``id`` (each distinct container is visited once, so a 500-byte pickle of lists that share
    each other costs microseconds however far it expands) and iterative (no ``RecursionError``). Refused:
    a container that holds itself, nesting deeper than ``max_depth``, an expanded size over ``max_units``.
    """
    done: dict[int, int] = {}
    kids = _children(obj)
    if kids is None:
        return _leaf_units(obj)
    stack: list[list[Any]] = [[obj, iter(kids), 1]]
    on_path = {id(obj)}
    while True:
        frame = stack[-1]
        for child in frame[1]:
            grandkids = _children(child)
            if grandkids is None:
                frame[2] += _leaf_units(child)
            elif id(child) in done:
                frame[2] += done[id(child)]
            elif id(child) in on_path:
                raise ModelLoadError(f"{what} holds an object that contains itself, which BERG's files never do: it is corrupt "
                                     f"or not a BERG file; {_REFETCH}")
            elif len(stack) >= max_depth:
                raise ModelLoadError(f"{what} is nested more than {max_depth} levels deep, which BERG's files never are: it is "
                                     f"corrupt or not a BERG file; {_REFETCH}")
            else:
                on_path.add(id(child))
                stack.append([child, iter(grandkids), 1])
                break
            if frame[2] > max_units:
                break
        else:
            stack.pop()
            on_path.discard(id(frame[0]))
            done[id(frame[0])] = frame[2]
            if not stack:
                return frame[2]
            stack[-1][2] += frame[2]
            frame = stack[-1]
        if frame[2] > max_units:
            raise ModelLoadError(f"{what} expands to more than {max_units:,} objects (its parts refer to each other over and "
                                 f"over), which BERG's files never do: it is corrupt or not a BERG file; {_REFETCH}")


def iter_unique(obj: Any) -> Iterator[Any]:
    """Every distinct object reachable from ``obj`` (containers as ``check_graph`` sees them), each once."""
    seen = {id(obj)}
    todo = [obj]
    while todo:
        item = todo.pop()
        yield item
        for child in _children(item) or ():
            if id(child) not in seen:
                seen.add(id(child))
                todo.append(child)


# ------------------------------------------------------------------------------------------ files


def load_pickle(path_or_fileobj: str | os.PathLike[str] | IO[bytes], *,
                extra_globals: Mapping[tuple[str, str], Any] | None = None) -> Any:
    """Unpickle a file (path or binary file object) with the allow-list; return the object.

    Raises ``UnsafePickleError`` for a refused global or object and ``ModelLoadError`` for a
    truncated/corrupt pickle.
    """
    if isinstance(path_or_fileobj, (str, os.PathLike)):
        path = Path(path_or_fileobj)
        with open(path, "rb") as fh:
            return SafeUnpickler(fh, extra_globals=extra_globals, source=str(path)).load()
    source = str(getattr(path_or_fileobj, "name", "the pickle"))
    return SafeUnpickler(path_or_fileobj, extra_globals=extra_globals, source=source).load()


def parse_npy_header(fh: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) from an ``.npy`` header (format 1.0, 2.0 or 3.0) at ``fh``'s position.

    The one ``.npy`` header reader of berg (callers wrap its errors in their own one-line message).
    Shapes are non-negative Python ints (at most 32 dims); the data is not read.

    Raises:
        Exception: any malformed header (numpy's parser raises ValueError, SyntaxError, EOFError, ...).
    """
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    elif version == (3, 0):  # utf-8 header, 4-byte length (numpy writes it only for unicode field names)
        shape, fortran, dtype = _read_header_3_0(fh)
    else:
        raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
    if not (isinstance(shape, tuple) and len(shape) <= _MAX_DIMS and all(type(n) is int and n >= 0 for n in shape)):
        raise ValueError(f"bad shape {_short(shape)}")
    if type(fortran) is not bool or not isinstance(dtype, np.dtype):
        raise ValueError("bad fortran_order or descr")
    return shape, fortran, dtype


def read_npy_header(fh: IO[bytes], path: str | os.PathLike[str]) -> tuple[tuple[int, ...], bool, np.dtype]:
    """``parse_npy_header`` for a BERG file: any malformed header is a ``ModelLoadError`` (re-fetch)."""
    try:
        return parse_npy_header(fh)
    except Exception as exc:  # noqa: BLE001 - numpy's header parser raises many types for malformed input
        detail = " ".join(str(exc).split())[:200]
        raise ModelLoadError(f"{path} is not a valid .npy file ({type(exc).__name__}: {detail}): it is truncated or corrupt; "
                             f"{_REFETCH}") from exc


def _read_header_3_0(fh: IO[bytes]) -> tuple[Any, Any, np.dtype]:
    raw = fh.read(4)
    if len(raw) != 4:
        raise ValueError("EOF in the header length")
    (length,) = struct.unpack("<I", raw)
    if length > _NPY_MAX_HEADER:
        raise ValueError(f"header of {length} bytes (numpy's limit is {_NPY_MAX_HEADER})")
    text = fh.read(length)
    if len(text) != length:
        raise ValueError("EOF in the header")
    header = ast.literal_eval(text.decode("utf-8"))
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise ValueError(f"header is not a dict of descr, fortran_order and shape: {_short(header)}")
    return header["shape"], header["fortran_order"], np.lib.format.descr_to_dtype(header["descr"])


def load_npy_object(path: str | os.PathLike[str], *,
                    extra_globals: Mapping[tuple[str, str], Any] | None = None) -> Any:
    """Load a ``.npy`` file as ``np.load(path, allow_pickle=True).item()`` would, but safely.

    For a 0-d object array (what ``np.save(path, some_dict)`` writes) the held object is returned
    (usually a dict); other object arrays are returned as arrays; plain numeric ``.npy`` files are read
    with ``allow_pickle=False``. Raises ``UnsafePickleError``/``ModelLoadError`` (never anything else)
    for a hostile, malformed or truncated file.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        shape, _, dtype = read_npy_header(fh, path)
        if not dtype.hasobject:
            if math.prod(shape) * dtype.itemsize > size - fh.tell():
                raise ModelLoadError(f"{path} is truncated (its header promises {shape} {dtype}); {_REFETCH}")
            fh.seek(0)
            try:
                return np.lib.format.read_array(fh, allow_pickle=False)
            except Exception as exc:  # noqa: BLE001 - numpy raises many types for a corrupt file
                raise ModelLoadError(f"{path} is not a valid .npy file ({type(exc).__name__}): it is truncated or corrupt; "
                                     f"{_REFETCH}") from exc
        arr = SafeUnpickler(fh, extra_globals=extra_globals, source=str(path), size=size).load()
    if not isinstance(arr, np.ndarray):
        raise ModelLoadError(f"{path} holds a pickled {type(arr).__name__}, not an array: it is not a BERG .npy file; {_REFETCH}")
    return arr[()] if arr.shape == () else arr


__all__ = ["MAX_DEPTH", "MAX_UNITS", "PickledEstimator", "SafeUnpickler", "array_state", "check_dtype", "check_graph",
           "iter_unique", "load_npy_object", "load_pickle", "read_npy_header"]
