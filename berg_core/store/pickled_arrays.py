"""Find big arrays inside a pickled ``.npy`` dict without reading them (for streaming conversion).

BERG's weight files are ``np.save(path, {"ridge_weights": W, ...})``: an object ``.npy`` whose payload
is a pickle (protocol 4) of a dict. Inside it, ``W`` is pickled as ``ndarray.__reduce__`` gives it:
``_reconstruct(ndarray, (0,), b"b")`` then ``BUILD`` with the state ``(1, shape, dtype, fortran,
raw_bytes)``, and the raw bytes of a large array (>= 64 KiB) are written as one ``BINBYTES``/
``BINBYTES8`` record outside pickle frames: a contiguous block of the file. The plain unpickler reads
that block into memory (1x the array; a 6.3 GB float64 matrix is 6.3 GB of RAM).

``load_npy_lazily(path)`` unpickles with the same allow-list as ``berg_core.store.safe_pickle`` (its
``SafeUnpickler.find_class`` decides every global), but when a bytes record of at least ``min_bytes``
lies outside a frame it records its file offset and seeks past it; the array it belongs to comes back
as a ``RawArray`` (path, byte offset, shape, dtype, order) instead of an ndarray. Nothing big is read,
so ``h5matrix.RawColumns`` can then convert it block by block.

It is a ``safe_pickle.SafeUnpickler`` (CPython's pure-Python unpickler with every object-building
opcode checked: dtypes, array states, lengths, calls), so everything that is not a big bytes record or
the ``BUILD`` of an array holding one is refused or accepted exactly as there. Anything unexpected (a big bytes record that is not an array payload) raises ``LazyLoadUnsupported``:
callers fall back to ``safe_pickle.load_npy_object`` (correct, but 1x the array in memory).
"""

from __future__ import annotations

import io
import math
import os
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from berg_core.errors import ModelLoadError
from berg_core.store.safe_pickle import SafeUnpickler, iter_unique, read_npy_header

if TYPE_CHECKING:
    from berg_core.store.h5matrix import RawColumns

#: bytes records at least this large are located instead of read
MIN_BYTES = 1 << 20


class LazyLoadUnsupported(Exception):
    """The pickle holds a big bytes record berg cannot map to an array; load it the ordinary way."""


@dataclass(frozen=True)
class RawArray:
    """An array stored raw in ``path`` from byte ``offset``: ``shape``, ``dtype``, C or Fortran order."""

    path: Path
    offset: int
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool = False

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def memmap(self) -> np.memmap:
        """A read-only memory map of the array (pages are read on access)."""
        return np.memmap(self.path, dtype=self.dtype, mode="r", offset=self.offset, shape=self.shape,
                         order="F" if self.fortran else "C")

    def load(self) -> np.ndarray:
        """The whole array in memory (a copy)."""
        return np.array(self.memmap())

    def columns(self) -> RawColumns:
        """A ``berg_core.store.h5matrix.RawColumns`` column-block reader (2-D arrays)."""
        from berg_core.store.h5matrix import RawColumns

        if self.ndim != 2:
            raise ValueError(f"columns() needs a 2-D array, this one has shape {self.shape}")
        return RawColumns(self.path, self.offset, (self.shape[0], self.shape[1]), self.dtype, self.fortran)


@dataclass(frozen=True)
class _Payload:
    offset: int
    nbytes: int


class _Memo(dict):
    """An unpickler memo that remembers the keys each object was stored under (to swap an array for a ``RawArray``)."""

    def __init__(self) -> None:
        super().__init__()
        self.keys_of: dict[int, list[Any]] = {}

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        self.keys_of.setdefault(id(value), []).append(key)


class _LazyUnpickler(SafeUnpickler):
    """``SafeUnpickler`` (every check kept) that leaves big out-of-frame bytes records in the file."""

    dispatch = dict(SafeUnpickler.dispatch)
    passthrough = (LazyLoadUnsupported,)

    def __init__(self, fh: IO[bytes], path: Path, min_bytes: int) -> None:
        super().__init__(fh, source=str(path))
        self._fh = fh
        self._path = path
        self._min_bytes = min_bytes
        self.memo = _Memo()

    def _outside_frame(self) -> bool:
        frame = self._unframer.current_frame
        if frame is None:
            return True
        with frame.getbuffer() as view:
            exhausted = frame.tell() >= view.nbytes
        if exhausted:
            self._unframer.current_frame = None
        return exhausted

    def _bytes(self, n: int) -> None:
        if n >= self._min_bytes and self._outside_frame():
            offset = self._fh.tell()
            if offset + n > self._size:
                raise ModelLoadError(f"{self._path} is truncated ({self._size} bytes; an array needs bytes up to {offset + n}); "
                                     "delete it and re-fetch it with `berg fetch MODEL`")
            self._fh.seek(n, io.SEEK_CUR)
            self.append(_Payload(offset, n))
        else:
            self.append(self.read(n))

    def load_binbytes(self) -> None:
        (n,) = struct.unpack("<I", self.read(4))
        self._bytes(n)

    def load_binbytes8(self) -> None:
        (n,) = struct.unpack("<Q", self.read(8))
        self._bytes(n)

    def load_build(self) -> None:
        state, inst = self.stack[-1], self.stack[-2]
        payload = state[-1] if isinstance(state, tuple) and state else None
        if not isinstance(payload, _Payload):
            SafeUnpickler.load_build(self)  # a record used elsewhere is found in the result (load_npy_lazily)
            return
        if not isinstance(inst, np.ndarray) or self._pending.pop(id(inst), None) is not inst:
            raise LazyLoadUnsupported("a large bytes record does not belong to an ndarray")
        shape, dtype, fortran, _ = self.checked_array_state(state)
        if dtype.hasobject:
            raise LazyLoadUnsupported(f"a large bytes record is the data of an {dtype} array")
        raw = RawArray(self._path, payload.offset, shape, dtype, fortran)
        if raw.nbytes != payload.nbytes:
            raise ModelLoadError(f"{self._path} is corrupt: an array of shape {shape} {dtype} needs {raw.nbytes} bytes, "
                                 f"the file holds {payload.nbytes}; delete it and re-fetch it with `berg fetch MODEL`")
        self.stack.pop()
        self.stack[-1] = raw
        for key in self.memo.keys_of.pop(id(inst), ()):
            if self.memo.get(key) is inst:
                self.memo[key] = raw

    dispatch[pickle.BINBYTES[0]] = load_binbytes
    dispatch[pickle.BINBYTES8[0]] = load_binbytes8
    dispatch[pickle.BUILD[0]] = load_build


def _holds_payload(obj: Any) -> bool:
    """Whether a located bytes record is reachable from ``obj`` (each distinct object visited once)."""
    return any(isinstance(item, _Payload) for item in iter_unique(obj))


def load_npy_lazily(path: str | os.PathLike[str], *, min_bytes: int = MIN_BYTES) -> Any:
    """Load an ``.npy`` like ``safe_pickle.load_npy_object``, big arrays left on disk as ``RawArray``.

    A plain numeric ``.npy`` comes back as one ``RawArray`` (its data follows the header). For a pickled
    object: arrays whose raw bytes are >= ``min_bytes`` and stored outside pickle frames become
    ``RawArray``; the rest is loaded normally. Raises ``UnsafePickleError`` (refused global),
    ``ModelLoadError`` (truncated/corrupt) or ``LazyLoadUnsupported`` (use ``load_npy_object``).
    """
    path = Path(path)
    with open(path, "rb") as fh:
        shape, fortran, dtype = read_npy_header(fh, path)
        if not dtype.hasobject:
            raw = RawArray(path, fh.tell(), tuple(shape), dtype, fortran)
            if fh.tell() + raw.nbytes > os.fstat(fh.fileno()).st_size:
                raise ModelLoadError(f"{path} is truncated; delete it and re-fetch it with `berg fetch MODEL`")
            return raw
        obj = _LazyUnpickler(fh, path, min_bytes).load()
    if _holds_payload(obj):
        raise LazyLoadUnsupported("a large bytes record is not an array payload")
    if not isinstance(obj, np.ndarray):
        raise ModelLoadError(f"{path} holds a pickled {type(obj).__name__}, not an array: it is not a BERG .npy file")
    return obj[()] if obj.shape == () else obj


__all__ = ["LazyLoadUnsupported", "RawArray", "load_npy_lazily", "MIN_BYTES"]
