"""The berg cache: one root, atomic writes, file locks, one-line storage errors.

Root: ``$BERG_CACHE_DIR`` if set, else the platformdirs user cache dir for ``berg``.
Every write goes to a temporary file in the destination folder and is renamed into place, so a
reader never sees a half-written file; builders take a file lock so two processes building the same
entry leave one valid file (the second finds the first one's result).

Temporary files are named ``.<dest name>.<host>-<pid>.<random><suffix>.tmp``; the next write of the same
``dest`` removes those left by a killed writer (same host and its process gone; any host after
``STALE_TMP_S``), never one a live process is still writing.

A write that fails for lack of space or permission is a one-line ``ResourceError`` naming the folder
and what to do ("disk full ... free at least ...", "cannot write in ... set $BERG_CACHE_DIR ...").
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from berg_core.errors import BergError, ResourceError

T = TypeVar("T")

CACHE_SETTING = "$BERG_CACHE_DIR"
STALE_TMP_S = 7 * 24 * 3600.0  # a temporary file untouched this long (seconds) is stale whoever wrote it
_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"
_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_DENIED = {errno.EACCES, errno.EPERM, errno.EROFS}


# ------------------------------------------------------------------------------------ storage errors


def format_bytes(n: int) -> str:
    """``n`` bytes as a short human string (``"1.5 GB"``; decimal units)."""
    value = float(n)
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def storage_error(exc: OSError, folder: Path | str, setting: str | None, need_bytes: int | None = None,
                  wrote_bytes: int | None = None) -> ResourceError:
    """One line for an ``OSError`` met while writing in ``folder``.

    Args:
        exc: the error (its errno picks the wording: disk full, read-only/permission, other).
        folder: the folder being written in.
        setting: what the user can point elsewhere (``"$BERG_DIR (or --berg-dir)"``, ``"$BERG_CACHE_DIR"``),
            or None when the path was the user's own choice.
        need_bytes: bytes still needed, when known (for "free at least ...").
        wrote_bytes: bytes already written when the disk filled, when the total is unknown.
    """
    elsewhere = f"set {setting} to a folder" if setting else "write to a folder"
    if exc.errno in _FULL:
        if need_bytes:
            amount = f"free at least {format_bytes(need_bytes)} there"
        elif wrote_bytes:
            amount = f"free space there (it was full after {format_bytes(wrote_bytes)} of this file)"
        else:
            amount = "free space there"
        return ResourceError(f"disk full while writing in {folder}: {amount}, or {elsewhere} on a larger disk")
    reason = (exc.strerror or type(exc).__name__).lower()
    if exc.errno in _DENIED:
        return ResourceError(f"cannot write in {folder} ({reason}): make it writable, or {elsewhere} you can write to")
    return ResourceError(f"cannot write in {folder} ({reason}): check that it is a folder you can write to, or {elsewhere} that is")


@contextmanager
def storage_errors(folder: Path | str, setting: str | None, need_bytes: int | None = None) -> Iterator[None]:
    """Turn an ``OSError`` raised in the block into ``storage_error(...)`` (``BergError``\\s pass through)."""
    try:
        yield
    except BergError:
        raise
    except OSError as exc:
        if exc.errno is None:  # not a file-system error (e.g. a lock timeout)
            raise
        raise storage_error(exc, folder, setting, need_bytes) from exc


def _setting_for(folder: Path) -> str | None:
    """``$BERG_CACHE_DIR`` when ``folder`` is inside the cache root, else None (a path the caller chose)."""
    try:
        return CACHE_SETTING if folder.resolve().is_relative_to(_root_path().resolve()) else None
    except (OSError, RuntimeError):
        return None


# ------------------------------------------------------------------------------------------- root


def _root_path() -> Path:
    env = os.environ.get("BERG_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("berg"))


def cache_root() -> Path:
    """The cache root folder (created on demand).

    Raises:
        ResourceError: the folder cannot be created (a file in the way, read-only, disk full).
    """
    root = _root_path()
    with storage_errors(root, CACHE_SETTING):
        root.mkdir(parents=True, exist_ok=True)
    return root


def cache_key(**parts: Any) -> str:
    """A stable 20-hex-digit key from everything an entry depends on (JSON-serialisable values)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def cache_path(namespace: str, name: str, *, create: bool = True) -> Path:
    """``<cache root>/<namespace>/<name>``, its folder created (``create=False``: only the path, for a read that must
    leave no trace, e.g. at registration)."""
    if not create:
        return _root_path() / namespace / name
    folder = cache_root() / namespace
    with storage_errors(folder, CACHE_SETTING):
        folder.mkdir(parents=True, exist_ok=True)
    return folder / name


# ----------------------------------------------------------------------------------- locks, writes


@contextmanager
def file_lock(path: Path | str, timeout: float = -1, *, setting: str | None = None) -> Iterator[None]:
    """Hold an inter-process lock tied to ``path`` (the lock file is ``path + '.lock'``).

    ``setting`` names what the user can point elsewhere in the one-line error (see ``storage_error``;
    default ``$BERG_CACHE_DIR`` inside the cache root).

    Raises:
        ResourceError: the lock file cannot be created (read-only folder, disk full, a file in the way).
    """
    from filelock import FileLock

    lock_path = Path(str(path) + ".lock")
    lock = FileLock(str(lock_path), timeout=timeout)
    with storage_errors(lock_path.parent, setting or _setting_for(lock_path.parent)):
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: it exists but belongs to someone else
        return True
    return True


def clean_stale_tmps(dest: Path | str) -> list[Path]:
    """Remove the temporary files of ``dest`` left by killed writers; return what was removed.

    A temporary file is stale when its writer ran on this host and that process is gone, or when it
    was last modified more than ``STALE_TMP_S`` ago (a writer on another host, or an older name format).
    """
    dest = Path(dest)
    prefix = f".{dest.name}."
    pattern = re.compile(re.escape(prefix) + r"(?:([A-Za-z0-9]+)-(\d+)\.)?.*\.tmp$")
    removed: list[Path] = []
    now = time.time()
    try:
        entries = [e for e in os.scandir(dest.parent) if e.name.startswith(prefix) and e.name.endswith(".tmp")]
    except OSError:
        return removed
    for entry in entries:
        m = pattern.match(entry.name)
        if not m:
            continue
        try:
            old = now - entry.stat(follow_symlinks=False).st_mtime > STALE_TMP_S
            dead = m.group(1) == _HOST and m.group(2) is not None and not _pid_alive(int(m.group(2)))
            if (old or dead) and int(m.group(2) or -1) != os.getpid():
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue  # gone already, or not ours to delete
    return removed


@contextmanager
def atomic_path(dest: Path | str, suffix: str | None = None, *, setting: str | None = None,
                need_bytes: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; on success it is renamed onto ``dest``, else removed.

    ``suffix`` defaults to dest's suffix, so writers that pick a format by extension (h5py, np.save)
    behave. Stale temporary files of ``dest`` from killed writers are removed first. ``setting`` names
    what the user can point elsewhere in the one-line error for a full or read-only disk (default:
    ``$BERG_CACHE_DIR`` inside the cache root, else nothing); ``need_bytes`` is the size being written,
    when known. A disk-full ``OSError`` raised by the caller's writer becomes that one-line error too;
    other errors of the writer pass through unchanged.

    Raises:
        ResourceError: the disk is full, or the folder is read-only / not a folder.
    """
    dest = Path(dest)
    folder = dest.parent
    setting = setting or _setting_for(folder)
    with storage_errors(folder, setting):
        folder.mkdir(parents=True, exist_ok=True)
        clean_stale_tmps(dest)
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{dest.name}.{_HOST}-{os.getpid()}.", suffix=(dest.suffix if suffix is None else suffix) + ".tmp",
            dir=folder,
        )
        os.close(fd)
    tmp = Path(tmp_name)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a shared cache must stay readable as with open()
        try:
            yield tmp
        except OSError as exc:
            if isinstance(exc, BergError) or exc.errno not in _FULL:
                raise
            wrote = tmp.stat().st_size if tmp.exists() else None
            raise storage_error(exc, folder, setting, need_bytes, wrote_bytes=wrote) from exc
        with storage_errors(folder, setting):
            os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(dest: Path | str, data: bytes, *, setting: str | None = None) -> None:
    """Write ``data`` to ``dest`` atomically (see ``atomic_path`` for the errors)."""
    with atomic_path(dest, setting=setting, need_bytes=len(data)) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(dest: Path | str, text: str, *, setting: str | None = None) -> None:
    """Write ``text`` (utf-8) to ``dest`` atomically."""
    atomic_write_bytes(dest, text.encode("utf-8"), setting=setting)


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


# ------------------------------------------------------------------------------------ atomic folders


def _stage_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"\.{re.escape(name)}\.(?P<kind>tmp|old)-(?P<host>.+)-(?P<pid>\d+)-(?P<token>[0-9a-f]{{8}})")


#: stage tags of the ``atomic_folder`` calls running in this process
_ACTIVE_STAGES: set[str] = set()


def _clean_stale_stages(path: Path) -> None:
    """Remove what killed writers left beside ``path``; an old folder whose switch was cut short is put back."""
    pattern, host = _stage_pattern(path.name), socket.gethostname()
    for entry in sorted(path.parent.iterdir()):
        match = pattern.fullmatch(entry.name)
        if not match or match["host"] != host:
            continue
        pid = int(match["pid"])
        if (f"{host}-{pid}-{match['token']}" in _ACTIVE_STAGES) if pid == os.getpid() else _pid_alive(pid):
            continue
        if match["kind"] == "old" and not path.exists():
            os.rename(entry, path)  # the fallback switch was killed between its two renames
        else:
            shutil.rmtree(entry, ignore_errors=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if not path.is_dir() or exc.errno not in (errno.EINVAL, errno.EBADF, errno.EACCES):
            raise
    finally:
        os.close(fd)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _switch(stage: Path, path: Path, tag: str) -> None:
    """Put the complete folder ``stage`` at ``path``; whatever was there is removed afterwards."""
    if not path.exists():
        os.rename(stage, path)
    elif _exchange(stage, path):
        shutil.rmtree(stage)  # now the old folder
    else:
        old = path.parent / f".{path.name}.old-{tag}"
        os.rename(path, old)
        os.rename(stage, path)
        shutil.rmtree(old)
    _fsync(path.parent)


@contextmanager
def atomic_folder(path: Path | str, *, recheck: Callable[[Path], object] | None = None,
                  setting: str | None = None) -> Iterator[Path]:
    """Yield an empty hidden sibling of the folder ``path`` to write into; on success it replaces ``path`` at once.

    Everything written is fsynced, then the staged folder and ``path`` are swapped in one atomic rename
    (``renameat2`` exchange on Linux; elsewhere two renames, undone by the next writer if cut between
    them), so at every instant ``path`` is the complete old folder or the complete new one. On an
    exception the staged folder is removed and ``path`` is untouched; stages of killed writers are
    removed by the next ``atomic_folder`` on the same path. ``recheck(path)`` runs when an old folder
    was put back by that cleanup (callers that refuse to replace some folders re-apply their checks).

    Raises:
        ResourceError: the disk is full, or the parent folder is read-only / not a folder.
    """
    path = Path(os.path.abspath(os.fspath(path)))
    setting = setting or _setting_for(path.parent)
    tag = f"{socket.gethostname()}-{os.getpid()}-{os.urandom(4).hex()}"
    stage = path.parent / f".{path.name}.tmp-{tag}"
    with storage_errors(path.parent, setting):
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists()
        _clean_stale_stages(path)
        if recheck is not None and not existed and path.exists():
            recheck(path)
        stage.mkdir()
    _ACTIVE_STAGES.add(tag)
    try:
        yield stage
        with storage_errors(path.parent, setting):
            for root, _dirs, files in os.walk(stage):
                for name in files:
                    _fsync(Path(root) / name)
                _fsync(Path(root))
            _switch(stage, path, tag)
    finally:
        _ACTIVE_STAGES.discard(tag)
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
