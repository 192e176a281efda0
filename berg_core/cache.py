"""The berg cache: one root, atomic writes, file locks.

Root: ``$BERG_CACHE_DIR`` if set, else the platformdirs user cache dir for ``berg``.
Every write goes to a temporary file in the destination folder and is renamed into place, so a
reader never sees a half-written file; builders take a file lock so two processes building the same
entry leave one valid file (the second finds the first one's result).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def cache_root() -> Path:
    """The cache root folder (created on demand)."""
    env = os.environ.get("BERG_CACHE_DIR")
    if env:
        root = Path(env).expanduser()
    else:
        import platformdirs

        root = Path(platformdirs.user_cache_dir("berg"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def cache_key(**parts: Any) -> str:
    """A stable 20-hex-digit key from everything an entry depends on (JSON-serialisable values)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def cache_path(namespace: str, name: str) -> Path:
    """``<cache root>/<namespace>/<name>``, its folder created."""
    folder = cache_root() / namespace
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


@contextmanager
def file_lock(path: Path | str, timeout: float = -1) -> Iterator[None]:
    """Hold an inter-process lock tied to ``path`` (the lock file is ``path + '.lock'``)."""
    from filelock import FileLock

    lock_path = Path(str(path) + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock_path), timeout=timeout):
        yield


@contextmanager
def atomic_path(dest: Path | str, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; on success it is renamed onto ``dest``, else removed.

    ``suffix`` defaults to dest's suffix, so writers that pick a format by extension (h5py, np.save)
    behave.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{dest.name}.", suffix=(dest.suffix if suffix is None else suffix) + ".tmp",
        dir=dest.parent,
    )
    os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a shared cache must stay readable as with open()
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(dest: Path | str, data: bytes) -> None:
    """Write ``data`` to ``dest`` atomically."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(dest: Path | str, text: str) -> None:
    """Write ``text`` (utf-8) to ``dest`` atomically."""
    atomic_write_bytes(dest, text.encode("utf-8"))


def build_once(dest: Path | str, build: Callable[[Path], None], is_valid: Callable[[Path], bool] | None = None) -> Path:
    """Return ``dest``, building it with ``build(tmp_path)`` under a file lock if absent or invalid.

    ``build`` writes the complete entry to the temporary path it is given; the rename happens only
    after it returns. Two processes racing on the same ``dest`` build it once.
    """
    dest = Path(dest)
    valid = is_valid or (lambda p: p.exists())
    if valid(dest):
        return dest
    with file_lock(dest):
        if valid(dest):  # another process built it while we waited
            return dest
        with atomic_path(dest) as tmp:
            build(tmp)
    return dest
