"""Backbone feature cache: compute a stimulus's backbone features once, reuse them everywhere.

Encoding one story for eight subjects needs the same backbone features eight times; only the weights
differ. ``cached_features(key_parts, compute)`` returns the array stored under the key made of
``key_parts`` (plus berg-core's version), computing it with ``compute()`` only on a miss:

1. in this process: an LRU memory cache (``MEMORY_BYTES`` in all), arrays returned read-only;
2. across processes: ``<cache root>/features/<key>.npy``, written once with
   ``berg_core.cache.build_once`` (file lock + atomic rename), read with ``allow_pickle=False``. An
   unreadable entry is deleted and recomputed.

The key must name everything the numbers depend on: backbone name, revision (``backbone_revision``
gives a hub commit or a fingerprint of a local folder), layer, dtype, the stimulus
(``stimulus_hash``), the feature recipe (context sizes, pooling, ...). ``enabled=False`` skips both
caches (``feature_cache=False`` option of the encoders).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from berg_core.cache import build_once, cache_key, cache_path

#: bytes of features kept in memory per process (least recently used entries are dropped first)
MEMORY_BYTES = 1 << 30
NAMESPACE = "features"

_memory: OrderedDict[str, np.ndarray] = OrderedDict()
_lock = threading.Lock()
#: counts of (memory hits, disk hits, computations) since the last ``clear_memory`` (for tests/benchmarks)
stats = {"memory": 0, "disk": 0, "computed": 0}


def _version() -> str:
    from berg_core import __version__

    return __version__


def feature_key(key_parts: Mapping[str, Any]) -> str:
    """The cache key of ``key_parts`` (JSON-able values) + berg-core's version."""
    return cache_key(**dict(key_parts), berg_core=_version())


def feature_path(key_parts: Mapping[str, Any]) -> Path:
    """Where the disk entry of ``key_parts`` lives (it may not exist)."""
    return cache_path(NAMESPACE, feature_key(key_parts) + ".npy")


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


def _read(path: Path) -> np.ndarray | None:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None


def cached_features(key_parts: Mapping[str, Any], compute: Callable[[], np.ndarray], *, enabled: bool = True,
                    disk: bool = True) -> np.ndarray:
    """The features for ``key_parts``: from memory, else from disk, else ``compute()`` (then stored).

    Returns a read-only array (copy it to modify). ``enabled=False`` always computes and stores
    nothing; ``disk=False`` keeps the entry in memory only.
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
    path = cache_path(NAMESPACE, key + ".npy")
    computed: list[np.ndarray] = []

    def build(tmp: Path) -> None:
        value = np.ascontiguousarray(compute())
        computed.append(value)
        with open(tmp, "wb") as fh:
            np.save(fh, value, allow_pickle=False)

    if path.is_file():
        value = _read(path)
        if value is not None:
            stats["disk"] += 1
            return _remember(key, value)
        try:  # a damaged entry (e.g. written by a crashed disk): recompute it
            os.unlink(path)
        except OSError:
            pass
    try:
        build_once(path, build, lambda p: p.is_file())
    except OSError:  # a read-only or full cache: keep the features in memory only
        if not computed:
            computed.append(np.asarray(compute()))
    if computed:
        stats["computed"] += 1
        return _remember(key, computed[0])
    value = _read(path)
    if value is None:  # pragma: no cover - removed between build_once and here
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


__all__ = ["backbone_revision", "cached_features", "clear_memory", "feature_key", "feature_path", "stimulus_hash", "stats"]
