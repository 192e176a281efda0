"""Backbone feature cache: compute a stimulus's backbone features once, reuse them everywhere.

Encoding one story for eight subjects needs the same backbone features eight times; only the weights
differ. ``cached_features(key_parts, compute)`` returns the array stored under the key made of
``key_parts`` (plus berg-core's version), computing it with ``compute()`` only on a miss:

1. in this process: an LRU memory cache (``MEMORY_BYTES`` in all), arrays returned read-only;
2. across processes: ``<cache root>/features/<key>.npz``, written once with
   ``berg_core.store.cache.build_once`` (file lock + atomic rename). The entry holds ``features`` and
   ``sha256`` (``content_sha256``: dtype, shape and bytes of the features). It is read without pickle,
   with every size checked before allocating, and its checksum verified: an entry that does not verify
   (a flipped byte, a truncated or foreign file, wrong entries, dtype or shape) is never used: it is
   deleted and recomputed, with a ``FeatureCacheWarning``.

The key must name everything the numbers depend on: backbone name, revision (``backbone_revision``
gives a hub commit or a fingerprint of a local folder), layer, dtype, the stimulus
(``stimulus_hash``), the feature recipe (context sizes, pooling, ...). ``enabled=False`` skips both
caches (``feature_cache=False`` option of the encoders).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from berg_core.store.cache import build_once, cache_key, cache_path

#: bytes of features kept in memory per process (least recently used entries are dropped first)
MEMORY_BYTES = 1 << 30
NAMESPACE = "features"

_memory: OrderedDict[str, np.ndarray] = OrderedDict()
_lock = threading.Lock()
#: counts of (memory hits, disk hits, computations) since the last ``clear_memory`` (for tests/benchmarks)
stats = {"memory": 0, "disk": 0, "computed": 0}
_SUFFIX = ".npz"
_ENTRIES = ("features.npy", "sha256.npy")


class FeatureCacheWarning(UserWarning):
    """A feature cache entry did not verify and was recomputed."""


def _version() -> str:
    from berg_core import __version__

    return __version__


def feature_key(key_parts: Mapping[str, Any]) -> str:
    """The cache key of ``key_parts`` (JSON-able values) + berg-core's version."""
    return cache_key(**dict(key_parts), berg_core=_version())


def feature_path(key_parts: Mapping[str, Any]) -> Path:
    """Where the disk entry of ``key_parts`` lives (it may not exist)."""
    return cache_path(NAMESPACE, feature_key(key_parts) + _SUFFIX)


def stimulus_hash(words: Sequence[str], onsets: Sequence[float] | np.ndarray | None = None) -> str:
    """sha256 hex of the words (exact strings, in order) and, if given, the onsets (float64 bytes)."""
    h = hashlib.sha256(json.dumps(list(words), ensure_ascii=False).encode("utf-8"))
    if onsets is not None:
        h.update(b"\0onsets\0" + np.ascontiguousarray(onsets, dtype="<f8").tobytes())
    return h.hexdigest()


def backbone_revision(name: str, revision: str | None = None) -> str:
    """What identifies a backbone's weights: ``revision`` if given, else a local folder's fingerprint
    (names, sizes and mtimes of its files), else ``"hub:<name>@main"`` for a hub id (resolve the commit
    with the loaded model's ``Backbone.revision`` when you have it)."""
    if revision:
        return str(revision)
    folder = Path(name).expanduser()
    if folder.is_dir():
        h = hashlib.sha256()
        for entry in sorted(folder.iterdir()):
            if entry.is_file():
                st = entry.stat()
                h.update(f"{entry.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return f"local:{h.hexdigest()[:20]}"
    return f"hub:{name}@main"


def _remember(key: str, value: np.ndarray) -> np.ndarray:
    value = np.asarray(value)
    value.setflags(write=False)
    with _lock:
        _memory[key] = value
        _memory.move_to_end(key)
        total = sum(a.nbytes for a in _memory.values())
        while total > MEMORY_BYTES and len(_memory) > 1:
            _, dropped = _memory.popitem(last=False)
            total -= dropped.nbytes
    return value


def content_sha256(value: np.ndarray) -> str:
    """sha256 hex of an array's dtype, shape and C-order bytes (what a feature cache entry records)."""
    value = np.ascontiguousarray(value)
    h = hashlib.sha256(f"{value.dtype.str}|{value.shape}|".encode())
    h.update(value.data.cast("B"))
    return h.hexdigest()


def _read_member(fh: IO[bytes], limit: int) -> np.ndarray:
    """One ``.npy`` member of an entry: header checked, at most ``limit`` data bytes, nothing after them."""
    from berg_core.store.safe_pickle import parse_npy_header

    shape, fortran, dtype = parse_npy_header(fh)
    if dtype.kind not in "biufcU" or dtype.fields is not None or dtype.subdtype is not None:
        raise ValueError(f"dtype {dtype}")
    nbytes = math.prod(shape) * dtype.itemsize  # Python ints: no overflow for absurd headers
    if nbytes > limit:
        raise ValueError(f"a {shape} array does not fit in a {limit}-byte file")
    data = fh.read(nbytes)
    if len(data) != nbytes or fh.read(1):  # the last read also makes zipfile check the member's CRC
        raise ValueError("the data size does not match its header")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def _read(path: Path, shape: tuple[int, ...] | None, dtype: np.dtype | None) -> tuple[np.ndarray | None, str]:
    """(the verified features, "") or (None, why the entry is unusable). Never raises."""
    try:
        limit = path.stat().st_size
        with zipfile.ZipFile(path) as zf:
            names = sorted(zf.namelist())
            if names != sorted(_ENTRIES):
                return None, f"entries {names}"
            with zf.open("sha256.npy") as fh:
                digest = _read_member(fh, limit)
            with zf.open("features.npy") as fh:
                value = _read_member(fh, limit)
    except Exception as exc:  # noqa: BLE001 - any failure to read a cache entry means: recompute it
        return None, f"unreadable: {type(exc).__name__}: {exc}"
    if digest.shape != () or digest.dtype.kind != "U" or str(digest) != content_sha256(value):
        return None, "checksum mismatch"
    if dtype is not None and value.dtype != dtype:
        return None, f"dtype {value.dtype}, expected {dtype}"
    if shape is not None and value.shape != tuple(shape):
        return None, f"shape {value.shape}, expected {tuple(shape)}"
    return value, ""


def _discard(path: Path, why: str) -> None:
    why = " ".join(why.split())[:200]  # one line, whatever the exception said
    warnings.warn(f"feature cache entry {path} is damaged ({why}); recomputing it", FeatureCacheWarning, stacklevel=3)
    try:
        os.unlink(path)
    except OSError:
        pass


def cached_features(key_parts: Mapping[str, Any], compute: Callable[[], np.ndarray], *, enabled: bool = True,
                    disk: bool = True, shape: tuple[int, ...] | None = None, dtype: Any = None) -> np.ndarray:
    """The features for ``key_parts``: from memory, else from disk, else ``compute()`` (then stored).

    Returns a read-only array (copy it to modify). ``enabled=False`` always computes and stores
    nothing; ``disk=False`` keeps the entry in memory only. ``shape``/``dtype``, when given, are what
    ``compute()`` returns: a disk entry of another shape or dtype is recomputed like a damaged one.
    """
    if not enabled:
        stats["computed"] += 1
        return np.asarray(compute())
    key = feature_key(key_parts)
    with _lock:
        hit = _memory.get(key)
        if hit is not None:
            _memory.move_to_end(key)
            stats["memory"] += 1
            return hit
    if not disk:
        stats["computed"] += 1
        return _remember(key, compute())
    want = None if dtype is None else np.dtype(dtype)
    path = cache_path(NAMESPACE, key + _SUFFIX)
    computed: list[np.ndarray] = []

    def build(tmp: Path) -> None:
        value = np.ascontiguousarray(compute())
        computed.append(value)
        with open(tmp, "wb") as fh:
            np.savez(fh, features=value, sha256=np.array(content_sha256(value)))

    if path.is_file():
        value, why = _read(path, shape, want)
        if value is not None:
            stats["disk"] += 1
            return _remember(key, value)
        _discard(path, why)
    try:
        build_once(path, build, lambda p: p.is_file())
    except OSError:  # a read-only or full cache: keep the features in memory only
        if not computed:
            computed.append(np.asarray(compute()))
    if computed:
        stats["computed"] += 1
        return _remember(key, computed[0])
    value, why = _read(path, shape, want)  # another process built it meanwhile
    if value is None:
        _discard(path, why)
        stats["computed"] += 1
        value = np.asarray(compute())
    else:
        stats["disk"] += 1
    return _remember(key, value)


def clear_memory() -> None:
    """Empty this process's memory cache and reset ``stats`` (the disk cache stays)."""
    with _lock:
        _memory.clear()
    for k in stats:
        stats[k] = 0


__all__ = ["FeatureCacheWarning", "backbone_revision", "cached_features", "clear_memory", "content_sha256", "feature_key",
           "feature_path", "stimulus_hash", "stats"]
