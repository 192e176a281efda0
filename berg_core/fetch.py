"""The one downloader: BERG's files from its public S3 bucket into ``berg_dir``, resumable and verified.

A file's URL is ``base_url() + "/" + rel_path`` where ``rel_path`` is its path relative to berg_dir
(BERG's bucket root is berg_dir's root). ``ensure_file`` returns ``berg_dir / rel_path`` once it is
present and valid:

* present with a record in ``berg_dir/.berg-manifest.json``: size checked on every call, sha256 checked
  once per (size, mtime_ns) (the verification is cached in the record, so a 6 GB file is hashed once,
  not on every load); a mismatch means corrupt or truncated and the file is fetched again;
* present without a record (e.g. a tree made with ``aws s3 sync``): checked against the given
  sha256/size if any, otherwise recorded as it is (trust on first use);
* missing: downloaded to ``<dest>.part`` (resumed with a ``Range`` request when a ``.part`` exists,
  ``If-Range`` with the ETag seen when it was started), length checked against ``Content-Length`` /
  ``Content-Range``, hashed while streaming, checked against the given sha256/size, then renamed into
  place and recorded. A cut connection is resumed within the same call (``ATTEMPTS`` tries in all);
  an incomplete ``.part`` is kept for the next call, a ``.part`` that fails its checksum is deleted.

The whole fetch of one file holds ``berg_core.cache.file_lock(dest)``, so two processes fetching the
same file leave one valid copy: the second one waits and then finds the first one's finished file.
``BERG_OFFLINE=1`` never downloads (a missing file is a ``ResourceError`` naming ``berg fetch``).

Why the standard library and not pooch: pooch downloads to a temporary file that it discards on
failure (no resume of a multi-GB transfer), holds no lock (two processes both download and race on the
rename), and wants a registry of known hashes up front while BERG publishes none (we record them on
first download). Resume + lock + a trust-on-first-use manifest is about 200 lines on ``urllib``, with no
extra dependency and full control of the error messages.

Units: sizes in bytes, timeouts in seconds, ``mtime_ns`` in nanoseconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from berg_core.cache import atomic_write_text, file_lock
from berg_core.errors import DownloadError, ResourceError
from berg_core.progress import progress_bar
from berg_core.spec import EncoderSpec

DEFAULT_BASE_URL = "https://brain-encoding-response-generator.s3.us-west-2.amazonaws.com"
MANIFEST_NAME = ".berg-manifest.json"
NOTICE_MARKER = ".berg-notice-shown"
ATTEMPTS = 3  # tries per ensure_file call; each retry resumes from the bytes already on disk
TIMEOUT_S = 60.0  # socket timeout per connect/read, seconds
CHUNK_BYTES = 1 << 20  # read/write/hash block, bytes
RETRY_PAUSE_S = 0.5  # pause before retry k is k * RETRY_PAUSE_S seconds

_HINT = "check your network connection, set BERG_BASE_URL to a reachable mirror, or run `berg fetch MODEL` again"


class _Retry(Exception):
    """A transient failure: the next attempt resumes from what is on disk."""


# --------------------------------------------------------------------------------------------- public


def base_url() -> str:
    """``$BERG_BASE_URL`` (trailing ``/`` stripped) if set, else BERG's public S3 bucket URL."""
    env = os.environ.get("BERG_BASE_URL", "").strip()
    return env.rstrip("/") if env else DEFAULT_BASE_URL


def offline() -> bool:
    """True when ``BERG_OFFLINE`` is set to a true value (1/true/yes/on)."""
    return os.environ.get("BERG_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def file_url(rel_path: str) -> str:
    """The URL of ``rel_path`` (a path relative to berg_dir) on the current mirror."""
    return f"{base_url()}/{_clean_rel(rel_path)}"


def ensure_file(
    rel_path: str,
    berg_dir: Path,
    *,
    sha256: str | None = None,
    size: int | None = None,
    show_progress: bool = True,
) -> Path:
    """Return ``berg_dir / rel_path`` once present and valid, downloading it if needed.

    Args:
        rel_path: path relative to berg_dir (= the key in BERG's bucket), ``/``-separated.
        berg_dir: the local mirror root.
        sha256: expected hex digest, if known.
        size: expected size in bytes, if known.
        show_progress: draw a tqdm bar while downloading.

    Raises:
        ResourceError: the file is missing and ``BERG_OFFLINE`` is set.
        DownloadError: the download failed or the result failed its size/sha256 check.
    """
    rel = _clean_rel(rel_path)
    berg_dir = Path(berg_dir)
    dest = berg_dir / rel
    sha256 = sha256.lower() if sha256 else None
    if dest.is_file() and _existing_ok(rel, dest, berg_dir, sha256, size):
        return dest  # fast path: no lock, works on a read-only berg_dir
    if offline() and not dest.is_file():
        raise _offline_error(rel, dest)
    with file_lock(dest):
        if dest.is_file():
            if _existing_ok(rel, dest, berg_dir, sha256, size):
                return dest  # another process finished it while we waited
            if offline():
                raise ResourceError(f"{dest} is corrupt or truncated and BERG_OFFLINE is set: unset it and run `berg fetch MODEL` to fetch it again")
            dest.unlink()
            _forget(berg_dir, rel)
        elif offline():
            raise _offline_error(rel, dest)
        url = file_url(rel)
        _notice_once(berg_dir)
        part, digest = _download(url, dest, sha256=sha256, size=size, show_progress=show_progress)
        st = part.stat()  # os.replace keeps size and mtime, so the record is valid for dest
        now = datetime.now(UTC).isoformat(timespec="seconds")
        _record(berg_dir, rel, {"size": st.st_size, "sha256": digest, "verified_size": st.st_size,
                                "verified_mtime_ns": st.st_mtime_ns, "url": url, "fetched": now})
        os.replace(part, dest)  # recorded first: a lock-free reader never sees dest without its record
    return dest


def verify_file(rel_path: str, berg_dir: Path) -> bool:
    """True when ``berg_dir / rel_path`` exists and matches its manifest record (or is recorded now)."""
    rel = _clean_rel(rel_path)
    dest = Path(berg_dir) / rel
    return dest.is_file() and _existing_ok(rel, dest, Path(berg_dir), None, None)


def fetch_model_files(spec: EncoderSpec, subject: str | None, berg_dir: Path, *, show_progress: bool = True) -> list[Path]:
    """Ensure every remote file of ``spec`` for ``subject`` (all subjects when ``subject`` is None).

    Returns the local paths in the order of ``spec.remote_files`` (per subject, subjects in order).
    """
    if subject is None and spec.subjects and any("{subject}" in f.path for f in spec.remote_files):
        files = [f for s in spec.subjects for f in spec.files_for(s)]
    else:
        files = spec.files_for(subject)
    seen: set[str] = set()
    out: list[Path] = []
    for f in files:
        if f.path in seen:  # subject-independent files appear once per subject
            continue
        seen.add(f.path)
        out.append(ensure_file(f.path, Path(berg_dir), sha256=f.sha256, size=f.size, show_progress=show_progress))
    return out


def read_manifest(berg_dir: Path) -> dict[str, dict[str, Any]]:
    """The manifest of ``berg_dir`` (``{}`` when absent or unreadable)."""
    path = Path(berg_dir) / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in ``CHUNK_BYTES`` blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK_BYTES):
            h.update(block)
    return h.hexdigest()


# ------------------------------------------------------------------------------------------ manifest


def _clean_rel(rel_path: str) -> str:
    rel = PurePosixPath(str(rel_path).replace("\\", "/"))
    if rel.is_absolute() or ".." in rel.parts or not rel.parts or str(rel) == ".":
        raise ResourceError(f"bad remote file path {rel_path!r}: expected a path relative to berg_dir")
    return str(rel)


def _update_manifest(berg_dir: Path, rel: str, record: dict[str, Any] | None) -> None:
    """Set (or with ``None`` drop) one record under the manifest lock; a read-only berg_dir is skipped."""
    path = berg_dir / MANIFEST_NAME
    try:
        with file_lock(path):
            data = read_manifest(berg_dir)
            if record is None:
                if data.pop(rel, None) is None:
                    return
            else:
                data[rel] = record
            atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
    except OSError:
        pass  # nothing cached; the file itself was checked


def _record(berg_dir: Path, rel: str, record: dict[str, Any]) -> None:
    _update_manifest(berg_dir, rel, record)


def _forget(berg_dir: Path, rel: str) -> None:
    _update_manifest(berg_dir, rel, None)


def _existing_ok(rel: str, dest: Path, berg_dir: Path, sha256: str | None, size: int | None) -> bool:
    """Check an existing file against its record (or the given values); record/cache the result."""
    st = dest.stat()
    if size is not None and st.st_size != size:
        return False
    rec = read_manifest(berg_dir).get(rel)
    if rec is not None:
        if st.st_size != rec.get("size") or (sha256 is not None and rec.get("sha256") != sha256):
            return False
        if rec.get("verified_size") == st.st_size and rec.get("verified_mtime_ns") == st.st_mtime_ns:
            return True
        if sha256_file(dest) != rec.get("sha256"):
            return False
        _record(berg_dir, rel, {**rec, "verified_size": st.st_size, "verified_mtime_ns": st.st_mtime_ns})
        return True
    digest = sha256_file(dest)
    if sha256 is not None and digest != sha256:
        return False
    _record(berg_dir, rel, {"size": st.st_size, "sha256": digest, "verified_size": st.st_size,
                            "verified_mtime_ns": st.st_mtime_ns, "url": file_url(rel), "fetched": None})
    return True


def _offline_error(rel: str, dest: Path) -> ResourceError:
    return ResourceError(f"weights missing: run `berg fetch MODEL` (or unset BERG_OFFLINE) to download {rel} into {dest.parent}")


def _notice_once(berg_dir: Path) -> None:
    """Tell the user once per berg_dir where the files come from and that BERG's terms apply."""
    marker = berg_dir / NOTICE_MARKER
    if marker.exists():
        return
    print(f"berg: downloading model files from BERG's public bucket ({base_url()}); BERG's Terms and "
          "Conditions apply to them (see https://github.com/gifale95/BERG).", file=sys.stderr)
    with contextlib.suppress(OSError):
        berg_dir.mkdir(parents=True, exist_ok=True)
        marker.write_text("notice shown\n", encoding="utf-8")


# ------------------------------------------------------------------------------------------ download


def _download(url: str, dest: Path, *, sha256: str | None, size: int | None, show_progress: bool) -> tuple[Path, str]:
    """Download ``url`` completely into ``<dest>.part`` and check it; return (the .part path, sha256 hex)."""
    part = dest.with_name(dest.name + ".part")
    etag_file = dest.with_name(dest.name + ".part.etag")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not part.exists():
        etag_file.unlink(missing_ok=True)
    last = ""
    for attempt in range(ATTEMPTS):
        if attempt:
            time.sleep(RETRY_PAUSE_S * attempt)
        try:
            hasher = _transfer(url, part, etag_file, show_progress)
            break
        except _Retry as exc:
            last = str(exc)
    else:
        raise DownloadError(f"could not download {url}: {last} (after {ATTEMPTS} attempts; the partial file is kept "
                            f"and resumed next time): {_HINT}")
    got = part.stat().st_size
    digest = hasher.hexdigest()
    problem = None
    if size is not None and got != size:
        problem = f"{got} bytes instead of the expected {size}"
    elif sha256 is not None and digest != sha256:
        problem = f"sha256 {digest} instead of the expected {sha256}"
    if problem:
        part.unlink(missing_ok=True)
        etag_file.unlink(missing_ok=True)
        raise DownloadError(f"download of {url} is corrupt ({problem}); it was deleted: check BERG_BASE_URL points at "
                            "BERG's bucket or an exact mirror, then run `berg fetch MODEL` again")
    etag_file.unlink(missing_ok=True)
    return part, digest


def _transfer(url: str, part: Path, etag_file: Path, show_progress: bool) -> Any:
    """One attempt: append the rest of ``url`` to ``part``; return the sha256 hasher of the whole file.

    Raises ``_Retry`` for transient failures (connection cut, short body, 5xx) and ``DownloadError``
    for permanent ones (404/403, bad URL).
    """
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "berg (python urllib)", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if etag_file.exists():
            headers["If-Range"] = etag_file.read_text(encoding="utf-8").strip()
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            total = _range_total(exc.headers.get("Content-Range"))
            if total == offset:  # the .part is already complete (e.g. killed before the rename)
                return _hash_prefix(part, offset)
            part.unlink(missing_ok=True)
            raise _Retry(f"server refused to resume at byte {offset} (HTTP 416); restarting") from exc
        if exc.code in (408, 429) or exc.code >= 500:
            raise _Retry(f"HTTP {exc.code} {exc.reason}") from exc
        raise DownloadError(f"could not download {url}: HTTP {exc.code} {exc.reason}: check BERG_BASE_URL "
                            f"({base_url()}) and the model id, or run `berg fetch MODEL`") from exc
    except ValueError as exc:  # unknown url type / malformed URL
        raise DownloadError(f"could not download {url}: {exc}: set BERG_BASE_URL to an http(s) URL") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise _Retry(_reason(exc)) from exc
    with resp:
        if resp.status == 206:
            start, total = _content_range(resp.headers.get("Content-Range"))
            if start != offset:
                part.unlink(missing_ok=True)
                raise _Retry(f"server resumed at byte {start} instead of {offset}; restarting")
            hasher = _hash_prefix(part, offset)
            mode = "ab"
        else:  # 200: fresh download, or a server that ignored Range / an If-Range that did not match
            offset, hasher, mode = 0, hashlib.sha256(), "wb"
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            etag = resp.headers.get("ETag")
            if etag and not etag.startswith("W/"):
                etag_file.write_text(etag, encoding="utf-8")
            else:
                etag_file.unlink(missing_ok=True)
        received = offset
        with open(part, mode) as out, _bar(show_progress, total, offset, part) as bar:
            try:
                for block in _blocks(resp):
                    out.write(block)
                    hasher.update(block)
                    received += len(block)
                    bar.update(len(block))
            except (OSError, http.client.HTTPException) as exc:
                raise _Retry(f"connection lost after {received} bytes ({_reason(exc)})") from exc
    if total is not None and received != total:
        raise _Retry(f"connection closed after {received} of {total} bytes")
    return hasher


def _blocks(resp: Any) -> Iterator[bytes]:
    while block := resp.read(CHUNK_BYTES):
        yield block


@contextlib.contextmanager
def _bar(show: bool, total: int | None, initial: int, part: Path) -> Iterator[Any]:
    bar = progress_bar(show=show, total=total, desc=part.name.removesuffix(".part"), unit="B", unit_scale=True)
    if initial:
        bar.update(initial)
    try:
        yield bar
    finally:
        bar.close()


def _hash_prefix(part: Path, length: int) -> Any:
    """A sha256 hasher fed with the first ``length`` bytes of ``part`` (the part being resumed)."""
    h = hashlib.sha256()
    with open(part, "rb") as fh:
        remaining = length
        while remaining > 0 and (block := fh.read(min(CHUNK_BYTES, remaining))):
            h.update(block)
            remaining -= len(block)
    return h


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def _content_range(value: str | None) -> tuple[int, int | None]:
    """(first byte, total size or None) of a ``Content-Range: bytes a-b/total`` header."""
    m = _CONTENT_RANGE.match(value or "")
    if not m:
        raise _Retry(f"bad Content-Range header {value!r} in a 206 reply")
    return int(m.group(1)), (None if m.group(3) == "*" else int(m.group(3)))


def _range_total(value: str | None) -> int | None:
    m = re.match(r"bytes\s+\*/(\d+)", value or "")
    return int(m.group(1)) if m else None


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason) if reason else (str(exc) or type(exc).__name__)


__all__ = [
    "ATTEMPTS",
    "DEFAULT_BASE_URL",
    "MANIFEST_NAME",
    "base_url",
    "ensure_file",
    "fetch_model_files",
    "file_url",
    "offline",
    "read_manifest",
    "sha256_file",
    "verify_file",
]
