"""Find big arrays inside a pickled ``.npy`` dict without reading them (for streaming conversion).

BERG's weight files are ``np.save(path, {"ridge_weights": W, ...})``: an object ``.npy`` whose payload
is a pickle (protocol 4) of a dict. Inside it, ``W`` is pickled as ``ndarray.__reduce__`` gives it:
``_reconstruct(ndarray, (0,), b"b")`` then ``BUILD`` with the state ``(1, shape, dtype, fortran,
raw_bytes)``, and the raw bytes of a large array (>= 64 KiB) are written as one ``BINBYTES``/
``BINBYTES8`` record outside pickle frames: a contiguous block of the file. The plain unpickler reads
that block into memory (1x the array; a 6.3 GB float64 matrix is 6.3 GB of RAM).

``load_npy_lazily(path)`` unpickles with the same allow-list as ``berg_core.safe_pickle`` (its
``SafeUnpickler.find_class`` decides every global), but when a bytes record of at least ``min_bytes``
lies outside a frame it records its file offset and seeks past it; the array it belongs to comes back
as a ``RawArray`` (path, byte offset, shape, dtype, order) instead of an ndarray. Nothing big is read,
so ``h5matrix.RawColumns`` can then convert it block by block.

It uses CPython's pure-Python ``pickle._Unpickler`` (so opcodes can be intercepted); everything that
is not a big bytes record or the ``BUILD`` of an array holding one behaves exactly as in ``pickle``.
Anything unexpected (a big bytes record that is not an array payload) raises ``LazyLoadUnsupported``:
callers fall back to ``safe_pickle.load_npy_object`` (correct, but 1x the array in memory).
"""

from __future__ import annotations

import ast
import io
import os
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from berg_core.errors import ModelLoadError, UnsafePickleError

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
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

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

    def columns(self):
        """A ``berg_core.h5matrix.RawColumns`` column-block reader (2-D arrays)."""
        from berg_core.h5matrix import RawColumns

        if self.ndim != 2:
            raise ValueError(f"columns() needs a 2-D array, this one has shape {self.shape}")
        return RawColumns(self.path, self.offset, (self.shape[0], self.shape[1]), self.dtype, self.fortran)


@dataclass(frozen=True)
class _Payload:
    offset: int
    nbytes: int


class _LazyUnpickler(pickle._Unpickler):  # type: ignore[name-defined]  # noqa: SLF001 - needs overridable opcodes
    dispatch = dict(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]

    def __init__(self, fh: IO[bytes], path: Path, min_bytes: int) -> None:
        super().__init__(fh, encoding="latin1")
        from berg_core.safe_pickle import SafeUnpickler

        self._fh = fh
        self._path = path
        self._size = os.fstat(fh.fileno()).st_size
        self._min_bytes = min_bytes
        self._guard = SafeUnpickler(io.BytesIO(b""), source=str(path))

    def find_class(self, module: str, name: str) -> Any:
        return self._guard.find_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        return self._guard.persistent_load(pid)

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
        if isinstance(payload, _Payload):
            if not isinstance(inst, np.ndarray) or len(state) not in (4, 5):
                raise LazyLoadUnsupported("a large bytes record does not belong to an ndarray")
            shape, dtype, fortran = state[-4], state[-3], state[-2]
            if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(shape, tuple):
                raise LazyLoadUnsupported(f"unexpected array state (dtype {dtype!r}, shape {shape!r})")
            raw = RawArray(self._path, payload.offset, tuple(int(s) for s in shape), dtype, bool(fortran))
            if raw.nbytes != payload.nbytes:
                raise ModelLoadError(f"{self._path} is corrupt: an array of shape {shape} {dtype} needs {raw.nbytes} bytes, "
                                     f"the file holds {payload.nbytes}; delete it and re-fetch it with `berg fetch MODEL`")
            self.stack.pop()
            self.stack[-1] = raw
            for key, value in list(self.memo.items()):
                if value is inst:
                    self.memo[key] = raw
            return
        if _holds_payload(state):
            raise LazyLoadUnsupported("a large bytes record is used as object state")
        pickle._Unpickler.load_build(self)  # type: ignore[attr-defined]

    dispatch[pickle.BINBYTES[0]] = load_binbytes
    dispatch[pickle.BINBYTES8[0]] = load_binbytes8
    dispatch[pickle.BUILD[0]] = load_build


def _holds_payload(obj: Any, depth: int = 0) -> bool:
    if isinstance(obj, _Payload):
        return True
    if depth > 20:
        return False
    if isinstance(obj, dict):
        return any(_holds_payload(v, depth + 1) for v in obj.values())
    if isinstance(obj, (list, tuple, set, frozenset)):
        return any(_holds_payload(v, depth + 1) for v in obj)
    if isinstance(obj, np.ndarray) and obj.dtype.hasobject:
        return any(_holds_payload(v, depth + 1) for v in obj.ravel().tolist())
    return False


def _read_npy_header(fh: IO[bytes], path: Path) -> tuple[tuple[int, ...], bool, np.dtype]:
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(fh)
        if version == (2, 0):
            return np.lib.format.read_array_header_2_0(fh)
        if version == (3, 0):
            (length,) = struct.unpack("<I", fh.read(4))
            header = ast.literal_eval(fh.read(length).decode("utf-8"))
            return tuple(header["shape"]), bool(header["fortran_order"]), np.lib.format.descr_to_dtype(header["descr"])
        raise ValueError(f"unsupported .npy format version {version}")
    except (ValueError, OSError, SyntaxError, KeyError, struct.error) as exc:
        raise ModelLoadError(f"{path} is not a valid .npy file ({exc}): it is truncated or corrupt; delete it and "
                             "re-fetch it with `berg fetch MODEL`") from exc


def load_npy_lazily(path: str | os.PathLike[str], *, min_bytes: int = MIN_BYTES) -> Any:
    """Load an ``.npy`` like ``safe_pickle.load_npy_object``, big arrays left on disk as ``RawArray``.

    A plain numeric ``.npy`` comes back as one ``RawArray`` (its data follows the header). For a pickled
    object: arrays whose raw bytes are >= ``min_bytes`` and stored outside pickle frames become
    ``RawArray``; the rest is loaded normally. Raises ``UnsafePickleError`` (refused global),
    ``ModelLoadError`` (truncated/corrupt) or ``LazyLoadUnsupported`` (use ``load_npy_object``).
    """
    path = Path(path)
    with open(path, "rb") as fh:
        shape, fortran, dtype = _read_npy_header(fh, path)
        if not dtype.hasobject:
            raw = RawArray(path, fh.tell(), tuple(shape), dtype, fortran)
            if fh.tell() + raw.nbytes > os.fstat(fh.fileno()).st_size:
                raise ModelLoadError(f"{path} is truncated; delete it and re-fetch it with `berg fetch MODEL`")
            return raw
        try:
            obj = _LazyUnpickler(fh, path, min_bytes).load()
        except (UnsafePickleError, ModelLoadError, LazyLoadUnsupported):
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
                MemoryError, struct.error, io.UnsupportedOperation) as exc:
            raise ModelLoadError(f"could not unpickle {path} ({type(exc).__name__}: {exc}): the file is truncated or corrupt; "
                                 "delete it and re-fetch it with `berg fetch MODEL`") from exc
    if _holds_payload(obj):
        raise LazyLoadUnsupported("a large bytes record is not an array payload")
    if not isinstance(obj, np.ndarray):
        raise ModelLoadError(f"{path} holds a pickled {type(obj).__name__}, not an array: it is not a BERG .npy file")
    return obj[()] if obj.shape == () else obj


__all__ = ["LazyLoadUnsupported", "RawArray", "load_npy_lazily", "MIN_BYTES"]
