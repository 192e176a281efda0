"""Trust on first use for the hub revisions the variant table cannot pin (no hub access when it was written).

A table revision that is a 40-hex commit is used verbatim. Otherwise (``"main"``) the commit the hub cache holds
for it the first time a repo is fetched or loaded (the snapshot folder's name, which ``huggingface_hub`` names after
the commit it served) is recorded in ``<berg cache>/text2fmri/revisions.json`` (``{repo: commit}``), and from then on
exactly that commit is requested (``revision=<commit>``): one install's weights cannot change silently when the
repo's ``main`` moves. Deleting an entry (or the file) accepts the hub's current ``main`` on the next fetch.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

from berg_core import BergError, ModelLoadError, cache_path

LOCK_NAMESPACE = "text2fmri"
LOCK_NAME = "revisions.json"
_COMMIT = re.compile(r"[0-9a-f]{40}")


def is_commit(revision: object) -> bool:
    """True for a full 40-hex git commit (what a pinned revision must be)."""
    return isinstance(revision, str) and _COMMIT.fullmatch(revision) is not None


def lock_path(*, create: bool = True) -> Path:
    """``<berg cache>/text2fmri/revisions.json`` (its folder created unless ``create=False``)."""
    return cache_path(LOCK_NAMESPACE, LOCK_NAME, create=create)


def read_locks() -> dict[str, str]:
    """``{repo: commit}`` recorded so far ({} when there is no lock file); a damaged file is one ``ModelLoadError`` line.
    Reading creates nothing (``berg list`` reads it when the plugin registers)."""
    path = lock_path(create=False)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"cannot read the revision lock {path} ({type(exc).__name__}); delete it and run `berg fetch` "
                             "again to record the hub's commits") from exc
    try:
        locks = json.loads(text)
    except json.JSONDecodeError:
        locks = None
    if not isinstance(locks, dict) or not all(isinstance(k, str) and is_commit(v) for k, v in locks.items()):
        raise ModelLoadError(f"the revision lock {path} is not a JSON object of repo -> 40-hex commit; delete it and run "
                             "`berg fetch` again to record the hub's commits")
    return locks


def record_lock(repo: str, commit: str) -> None:
    """Add ``repo -> commit`` to the lock file (atomically: a temporary file renamed over it)."""
    path = lock_path()
    locks = {**read_locks(), repo: commit}
    fd, tmp = tempfile.mkstemp(prefix=f".{LOCK_NAME}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(dict(sorted(locks.items())), f, indent=1)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def requested_revision(repo: str, table_revision: str) -> tuple[str, bool]:
    """(the revision to request, whether it is fixed): the table's commit verbatim, else the locked commit, else
    the table's unpinned revision (``False``: lock what it resolves to with ``lock_resolved``)."""
    if is_commit(table_revision):
        return table_revision, True
    locked = read_locks().get(repo)
    return (locked, True) if locked else (table_revision, False)


def snapshot_commit(folder: Path | str) -> str | None:
    """The commit of a Hugging Face cache snapshot folder (``.../snapshots/<commit>``), or None (any other folder)."""
    folder = Path(folder)
    return folder.name if folder.parent.name == "snapshots" and is_commit(folder.name) else None


def cached_commit(repo: str, revision: str | None, cache_dir: Path | None = None) -> str | None:
    """The commit the Hugging Face cache holds for ``repo`` at ``revision`` (a branch resolved through the cache's
    ``refs``; a commit as is), read from where its ``config.json`` lies; None when it is not cached."""
    from huggingface_hub import try_to_load_from_cache

    try:
        path = try_to_load_from_cache(repo, "config.json", revision=revision, cache_dir=cache_dir)
    except Exception:  # a malformed repo id or revision: nothing cached under it
        return None
    return snapshot_commit(Path(path).parent) if isinstance(path, str) else None


def lock_resolved(repo: str, commit: str | None) -> None:
    """Record the commit an unpinned revision resolved to (first fetch or load); nothing when it is unknown."""
    if commit and is_commit(commit):
        record_lock(repo, commit)


def locks_line() -> str:
    """``berg info``'s line: the commits locked so far, or how they get locked (never raises)."""
    try:
        locks = read_locks()
        where = str(lock_path(create=False))
    except (BergError, OSError) as exc:
        return f"revision lock unreadable: {exc}"
    if not locks:
        return f"none yet: the first `berg fetch` (or load) records the commits the hub serves in {where}"
    return ", ".join(f"{repo}@{commit}" for repo, commit in locks.items()) + f" (trust on first use; {where})"
