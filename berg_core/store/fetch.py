"""The one downloader: BERG's files from its public S3 bucket into ``berg_dir``, resumable and verified.

A file's URL is ``base_url() + "/" + rel_path`` where ``rel_path`` is its path relative to berg_dir
(BERG's bucket root is berg_dir's root). ``ensure_file`` returns ``berg_dir / rel_path`` once it is
present and valid:

* present with a record in ``berg_dir/.berg-manifest.json``: size checked on every call, sha256 checked
  once per (size, mtime_ns) (the verification is cached in the record, so a 6 GB file is hashed once,
  not on every load); a mismatch means corrupt or truncated and the file is fetched again. Code that
  hashes a source file anyway (e.g. to key a converted cache) calls ``verify_recorded``, which catches
  a file changed on disk with its mtime kept;
* present without a record (e.g. a tree made with ``aws s3 sync``): checked against the given
  sha256/size if any, otherwise recorded as it is (trust on first use);
* missing: downloaded to ``<dest>.part``, length checked against ``Content-Length`` / ``Content-Range``,
  hashed while streaming, checked against the given sha256/size, then recorded and renamed into place.
  A body whose size the server never declared (no ``Content-Length``, no ``Content-Range`` total, not
  chunked) is refused unless a size or sha256 is known, so a cut transfer is never recorded as good.

Resume: the validators of the reply that started a ``.part`` (strong ``ETag``, else ``Last-Modified``)
are kept in ``<dest>.part.meta``; a resume sends ``Range`` with ``If-Range: <validator>``, so a file that
changed on the server comes back whole (200) instead of being stitched from two versions. A ``.part``
without a validator (a weak ETag only, or none) is restarted from zero. A cut connection, a stall, a 5xx,
408 or 429 (honouring ``Retry-After``) is retried within the same call (``ATTEMPTS`` tries); a resumable
``.part`` is kept for the next call, anything else is deleted.

Time limits (seconds, overridable by environment variable): ``$BERG_DOWNLOAD_STALL_TIMEOUT`` (default
``STALL_S``) without a single byte and an attempt is "stalled: no data for N s from HOST";
``$BERG_DOWNLOAD_TIMEOUT`` (default ``DEADLINE_S``) for one file, all attempts together.

Storage: a full disk is "disk full" with the folder and how much to free (checked before the transfer
when the size is known); a read-only berg_dir is one line naming the folder and ``$BERG_DIR``.

The whole fetch of one file holds ``berg_core.store.cache.file_lock(dest)``, so two processes fetching the
same file leave one valid copy: the second one waits and then finds the first one's finished file.
``BERG_OFFLINE=1`` never downloads (a missing file is a ``ResourceError`` naming ``berg fetch``).

Why the standard library and not pooch: pooch downloads to a temporary file that it discards on
failure (no resume of a multi-GB transfer), holds no lock (two processes both download and race on the
rename), and wants a registry of known hashes up front while BERG publishes none (we record them on
first download). Resume + lock + a trust-on-first-use manifest is a few hundred lines on ``urllib``,
with no extra dependency and full control of the error messages.

Units: sizes in bytes, timeouts in seconds, ``mtime_ns`` in nanoseconds.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import json
import math
import os
import re
import shutil
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from berg_core import errors
from berg_core.console import notice, progress_bar
from berg_core.errors import BergError, DownloadError, InvalidParameterError, ModelLoadError, ResourceError
from berg_core.spec import EncoderSpec
from berg_core.store.cache import atomic_write_text, file_lock, format_bytes, storage_error, storage_errors

DEFAULT_BASE_URL = "https://brain-encoding-response-generator.s3.us-west-2.amazonaws.com"
MANIFEST_NAME = ".berg-manifest.json"
NOTICE_MARKER = ".berg-notice-shown"
ATTEMPTS = 3  # tries per ensure_file call; a retry resumes from the bytes on disk when a validator allows
STALL_S = 30.0  # default $BERG_DOWNLOAD_STALL_TIMEOUT: seconds without data before an attempt is abandoned
DEADLINE_S = 6 * 3600.0  # default $BERG_DOWNLOAD_TIMEOUT: seconds for one file, all attempts together
CHUNK_BYTES = 1 << 20  # read/write/hash block, bytes
RETRY_PAUSE_S = 0.5  # pause before retry k is k * RETRY_PAUSE_S seconds (unless the server says Retry-After)
MAX_RETRY_AFTER_S = 120.0  # the longest Retry-After honoured, seconds
MAX_MANIFEST_BYTES = 64 << 20  # a larger manifest is treated as damaged (no records)
BERG_DIR_SETTING = "$BERG_DIR (or --berg-dir)"

_SHA256 = re.compile(r"[0-9a-f]{64}")


class _Retry(Exception):
    """A transient failure: the next attempt resumes from what is on disk (when a validator allows)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _TimeUp(Exception):
    """The overall deadline passed during a transfer."""


@dataclass(frozen=True)
class _Limits:
    stall_s: float  # socket timeout for connect and each read, seconds
    budget_s: float  # the whole file, seconds
    deadline: float  # time.monotonic() value at which the budget runs out

    @classmethod
    def from_env(cls) -> _Limits:
        stall = _env_seconds("BERG_DOWNLOAD_STALL_TIMEOUT", STALL_S)
        budget = _env_seconds("BERG_DOWNLOAD_TIMEOUT", DEADLINE_S)
        return cls(stall, budget, time.monotonic() + budget)

    def left(self) -> float:
        return self.deadline - time.monotonic()


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


def fetch_command(model_id: str | None) -> str:
    """The command that (re)downloads a model's files, in backticks for messages: ```berg fetch <model_id>```, or
    ``berg_core.errors.FETCH_PLACEHOLDER`` when the model is not known here (the facade fills it in)."""
    return f"`{errors.fetch_command(model_id)}`" if model_id else f"`{errors.FETCH_PLACEHOLDER}`"


def ensure_file(
    rel_path: str,
    berg_dir: Path,
    *,
    sha256: str | None = None,
    size: int | None = None,
    show_progress: bool = True,
    model_id: str | None = None,
    url: str | None = None,
) -> Path:
    """Return ``berg_dir / rel_path`` once present and valid, downloading it if needed.

    Args:
        rel_path: path relative to berg_dir (= the key in BERG's bucket), ``/``-separated.
        berg_dir: the local mirror root.
        sha256: expected hex digest, if known.
        size: expected size in bytes, if known.
        show_progress: draw a tqdm bar while downloading.
        model_id: the model the file belongs to, named in the messages (``berg fetch <model_id>``).
        url: where to download it from (default: ``rel_path`` on BERG's mirror, ``file_url``).

    Raises:
        ResourceError: the file is missing and ``BERG_OFFLINE`` is set; berg_dir is a file, read-only or full.
        DownloadError: the download failed or the result failed its size/sha256 check.
    """
    rel = _clean_rel(rel_path)
    berg_dir = Path(berg_dir)
    _check_berg_dir(berg_dir)
    dest = berg_dir / rel
    sha256 = sha256.lower() if sha256 else None
    if dest.is_file() and _existing_ok(rel, dest, berg_dir, sha256, size):
        return dest  # fast path: no lock, works on a read-only berg_dir
    if offline() and not dest.is_file():
        raise _offline_error(rel, dest, model_id)
    with file_lock(dest, setting=BERG_DIR_SETTING):
        if dest.is_file():
            if _existing_ok(rel, dest, berg_dir, sha256, size):
                return dest  # another process finished it while we waited
            if offline():
                raise ResourceError(f"{dest} is corrupt or truncated and BERG_OFFLINE is set: unset it and run "
                                    f"{fetch_command(model_id)} to fetch it again")
            with storage_errors(dest.parent, BERG_DIR_SETTING):
                dest.unlink()
            _forget(berg_dir, rel)
        elif offline():
            raise _offline_error(rel, dest, model_id)
        url = url or file_url(rel)
        shown = _show_notice(berg_dir)
        part, digest = _download(url, dest, sha256=sha256, size=size, show_progress=show_progress, model_id=model_id)
        st = part.stat()  # os.replace keeps size and mtime, so the record is valid for dest
        now = datetime.now(UTC).isoformat(timespec="seconds")
        _record(berg_dir, rel, {"size": st.st_size, "sha256": digest, "verified_size": st.st_size,
                                "verified_mtime_ns": st.st_mtime_ns, "url": url, "fetched": now})
        with storage_errors(dest.parent, BERG_DIR_SETTING):
            os.replace(part, dest)  # recorded first: a lock-free reader never sees dest without its record
            dest.with_name(dest.name + ".part.meta").unlink(missing_ok=True)
        if shown:
            _mark_notice_shown(berg_dir)  # only once a file really arrived
    return dest


def verify_file(rel_path: str, berg_dir: Path) -> bool:
    """True when ``berg_dir / rel_path`` exists and matches its manifest record (or is recorded now)."""
    rel = _clean_rel(rel_path)
    dest = Path(berg_dir) / rel
    return dest.is_file() and _existing_ok(rel, dest, Path(berg_dir), None, None)


def verify_recorded(path: Path | str, berg_dir: Path | str, digest: str, model_id: str | None = None) -> None:
    """Check ``digest`` (the sha256 hex of ``path``, just computed by the caller) against the manifest.

    For code that hashes a source file anyway (e.g. to key its converted cache): ``ensure_file`` checks
    a recorded file only when its size or mtime changed, so a file damaged in place with its mtime kept
    is caught here. On a mismatch the record's cached verification is dropped (the next ``ensure_file``
    re-hashes the file and fetches it again). A file outside ``berg_dir`` or without a record passes.

    Raises:
        ModelLoadError: ``digest`` differs from the sha256 recorded when the file was fetched.
    """
    berg_dir = Path(berg_dir)
    try:
        rel = Path(path).resolve().relative_to(berg_dir.resolve()).as_posix()
    except (ValueError, OSError, RuntimeError):
        return
    rec = read_manifest(berg_dir).get(rel)
    if rec is None or rec["sha256"] == digest.lower():
        return
    _record(berg_dir, rel, {k: v for k, v in rec.items() if not k.startswith("verified_")})
    raise ModelLoadError(f"{path} is not the file berg downloaded (sha256 {digest[:12]}... instead of the recorded "
                         f"{rec['sha256'][:12]}...): it was damaged or changed on disk; delete it and run "
                         f"{fetch_command(model_id)}")


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
        out.append(ensure_file(f.path, Path(berg_dir), sha256=f.sha256, size=f.size, show_progress=show_progress,
                               model_id=spec.model_id))
    return out


def read_manifest(berg_dir: Path) -> dict[str, dict[str, Any]]:
    """The valid records of ``berg_dir``'s manifest: ``{rel_path: record}``.

    A record is a dict with ``sha256`` (64 lower-case hex digits) and ``size`` (int bytes); other keys
    (``verified_size``, ``verified_mtime_ns``: int; ``url``, ``fetched``: str or None) are dropped when of
    the wrong type. An absent, unreadable, oversized, non-UTF-8 or invalid-JSON manifest has no records,
    and a malformed record is skipped: such files are verified again (hashed) on their next use.
    """
    path = Path(berg_dir) / MANIFEST_NAME
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            return {}
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {rel: rec for rel, raw in data.items() if isinstance(rel, str) and (rec := _clean_record(raw)) is not None}


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


def _check_berg_dir(berg_dir: Path) -> None:
    if berg_dir.exists() and not berg_dir.is_dir():
        raise ResourceError(f"berg_dir {berg_dir} is a file, not a folder: set {BERG_DIR_SETTING} to a folder")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _clean_record(raw: Any) -> dict[str, Any] | None:
    """``raw`` as a manifest record, or None when it is not one (see ``read_manifest``)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("sha256"), str) or not _SHA256.fullmatch(raw["sha256"]):
        return None
    if not _is_int(raw.get("size")):
        return None
    rec: dict[str, Any] = {"sha256": raw["sha256"], "size": raw["size"]}
    for key in ("verified_size", "verified_mtime_ns"):
        if _is_int(raw.get(key)):
            rec[key] = raw[key]
    for key in ("url", "fetched"):
        if key in raw and (raw[key] is None or isinstance(raw[key], str)):
            rec[key] = raw[key]
    return rec


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
            atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n", setting=BERG_DIR_SETTING)
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
        if st.st_size != rec["size"] or (sha256 is not None and rec["sha256"] != sha256):
            return False
        if rec.get("verified_size") == st.st_size and rec.get("verified_mtime_ns") == st.st_mtime_ns:
            return True
        if sha256_file(dest) != rec["sha256"]:
            return False
        _record(berg_dir, rel, {**rec, "verified_size": st.st_size, "verified_mtime_ns": st.st_mtime_ns})
        return True
    digest = sha256_file(dest)
    if sha256 is not None and digest != sha256:
        return False
    _record(berg_dir, rel, {"size": st.st_size, "sha256": digest, "verified_size": st.st_size,
                            "verified_mtime_ns": st.st_mtime_ns, "url": file_url(rel), "fetched": None})
    return True


def _offline_error(rel: str, dest: Path, model_id: str | None) -> ResourceError:
    return ResourceError(f"weights missing: run {fetch_command(model_id)} (or unset BERG_OFFLINE) to download {rel} into {dest.parent}")


def _show_notice(berg_dir: Path) -> bool:
    """Tell the user where the files come from and that BERG's terms apply, until a download succeeded
    in this berg_dir; True when the notice was printed."""
    if (berg_dir / NOTICE_MARKER).exists():
        return False
    print(f"berg: downloading model files from BERG's public bucket ({base_url()}); BERG's Terms and "
          "Conditions apply to them (see https://github.com/gifale95/BERG).", file=sys.stderr)
    return True


def _mark_notice_shown(berg_dir: Path) -> None:
    with contextlib.suppress(OSError):
        (berg_dir / NOTICE_MARKER).write_text("notice shown\n", encoding="utf-8")


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise InvalidParameterError(f"{name}={raw!r} is not a positive number of seconds: unset it or set it to e.g. {default:g}")
    return value


# ------------------------------------------------------------------------------------------ download


def _pause(seconds: float) -> None:
    """Wait before a retry (a seam for tests)."""
    time.sleep(seconds)


def _download(url: str, dest: Path, *, sha256: str | None, size: int | None, show_progress: bool,
              model_id: str | None) -> tuple[Path, str]:
    """Download ``url`` completely into ``<dest>.part`` and check it; return (the .part path, sha256 hex)."""
    limits = _Limits.from_env()
    part = dest.with_name(dest.name + ".part")
    meta = dest.with_name(dest.name + ".part.meta")
    with storage_errors(dest.parent, BERG_DIR_SETTING):
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.with_name(dest.name + ".part.etag").unlink(missing_ok=True)  # left by older versions of berg
        if not part.exists():
            meta.unlink(missing_ok=True)
    last: _Retry | None = None
    for attempt in range(ATTEMPTS):
        if last is not None:
            wait = last.retry_after if last.retry_after is not None else RETRY_PAUSE_S * attempt
            if wait > limits.left():
                raise _give_up(url, part, meta, f"{last} and the server asks to wait {wait:g} s, past the "
                                                f"{limits.budget_s:g} s budget (BERG_DOWNLOAD_TIMEOUT)", model_id)
            notice(f"berg: {last}; retrying in {wait:g} s (attempt {attempt + 1} of {ATTEMPTS})")
            _pause(wait)
        try:
            hasher, framed = _transfer(url, part, meta, show_progress, limits)
            break
        except _Retry as exc:
            last = exc
        except _TimeUp:
            raise _give_up(url, part, meta, f"it took longer than {limits.budget_s:g} s (BERG_DOWNLOAD_TIMEOUT)",
                           model_id) from None
        except OSError as exc:
            if isinstance(exc, BergError) or exc.errno is None:
                raise
            raise _storage_failure(exc, url, part, meta, model_id) from exc
    else:
        raise _give_up(url, part, meta, f"{last} (after {ATTEMPTS} attempts)", model_id)
    got = part.stat().st_size
    digest = hasher.hexdigest()
    problem = None
    if size is not None and got != size:
        problem = f"is corrupt ({got} bytes instead of the expected {size})"
    elif sha256 is not None and digest != sha256:
        problem = f"is corrupt (sha256 {digest} instead of the expected {sha256})"
    elif not framed and size is None and sha256 is None:
        problem = ("came without a declared size (no Content-Length or Content-Range total), so a cut transfer "
                   "cannot be told from a whole file")
    if problem:
        _discard(part, meta)
        raise DownloadError(f"download of {url} {problem}; it was deleted: check BERG_BASE_URL points at "
                            f"BERG's bucket or an exact mirror, then run {fetch_command(model_id)} again")
    return part, digest  # its .part.meta stays until the rename: a run killed before it resumes with a 416


def _discard(part: Path, meta: Path) -> None:
    part.unlink(missing_ok=True)
    meta.unlink(missing_ok=True)


def _kept(part: Path, meta: Path) -> str:
    """What is left for the next call: a resumable .part (kept) or nothing (deleted)."""
    n = part.stat().st_size if part.is_file() else 0
    if n and _read_meta(meta) is not None:
        return f"the {format_bytes(n)} received so far are kept in {part} and resumed next time"
    _discard(part, meta)
    return "nothing was kept"


def _give_up(url: str, part: Path, meta: Path, why: str, model_id: str | None) -> DownloadError:
    return DownloadError(f"could not download {url}: {why}; {_kept(part, meta)}: check your network connection, set "
                         f"BERG_BASE_URL to a reachable mirror, or run {fetch_command(model_id)} again")


def _storage_failure(exc: OSError, url: str, part: Path, meta: Path, model_id: str | None) -> ResourceError:
    total = (_read_meta(meta) or {}).get("total")
    have = part.stat().st_size if part.is_file() else 0
    need = total - have if isinstance(total, int) and total > have else None
    err = storage_error(exc, part.parent, BERG_DIR_SETTING, need_bytes=need, wrote_bytes=have or None)
    return ResourceError(f"{err}, then run {fetch_command(model_id)} again (downloading {url}; {_kept(part, meta)})")


def _read_meta(meta: Path) -> dict[str, Any] | None:
    """The validators a ``.part`` was started with (``etag``/``last_modified``/``total``/``url``), or None."""
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or not (isinstance(data.get("etag"), str) or isinstance(data.get("last_modified"), str)):
        return None
    return data


def _transfer(url: str, part: Path, meta_path: Path, show_progress: bool, limits: _Limits) -> tuple[Any, bool]:
    """One attempt: complete ``part`` from ``url``; return (sha256 hasher of the whole file, whether its end was
    known: a declared size or chunked framing).

    Raises ``_Retry`` for transient failures (connection cut, stall, short body, 5xx/408/429, a changed
    file), ``_TimeUp`` past the deadline, ``DownloadError`` for permanent ones (404/403, bad URL) and
    ``OSError`` when writing fails.
    """
    host = urlsplit(url).hostname or url
    offset = part.stat().st_size if part.exists() else 0
    meta = _read_meta(meta_path) if offset else None
    if offset and meta is None:  # no validator: a resume could stitch two versions of the file
        _discard(part, meta_path)
        offset, meta = 0, None
    headers = {"User-Agent": "berg (python urllib)", "Accept-Encoding": "identity"}
    if meta is not None:
        headers["Range"] = f"bytes={offset}-"
        headers["If-Range"] = meta.get("etag") or meta["last_modified"]
    timeout = max(min(limits.stall_s, limits.left()), 0.001)
    if limits.left() <= 0:
        raise _TimeUp
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            total = _range_total(exc.headers.get("Content-Range"))
            if total == offset and meta is not None and meta.get("total") == total:  # complete, killed before the rename
                return _hash_prefix(part, offset), True
            _discard(part, meta_path)
            raise _Retry(f"server refused to resume at byte {offset} (HTTP 416); restarting from zero") from exc
        if exc.code in (408, 429) or exc.code >= 500:
            raise _Retry(f"HTTP {exc.code} {exc.reason}", _retry_after(exc.headers.get("Retry-After"))) from exc
        raise DownloadError(f"could not download {url}: HTTP {exc.code} {exc.reason}: check BERG_BASE_URL "
                            f"({base_url()}) and the model id") from exc
    except ValueError as exc:  # unknown url type / malformed URL
        raise DownloadError(f"could not download {url}: {exc}: set BERG_BASE_URL to an http(s) URL") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        if limits.left() <= 0:
            raise _TimeUp from exc
        raise _Retry(_reason(exc, host, timeout)) from exc
    with resp:
        etag, modified = resp.headers.get("ETag"), resp.headers.get("Last-Modified")
        if resp.status == 206:
            start, total = _content_range(resp.headers.get("Content-Range"))
            same = meta is not None and (etag == meta.get("etag") if meta.get("etag") else modified == meta.get("last_modified"))
            if start != offset or not same or (total is not None and (meta or {}).get("total") not in (None, total)):
                # a server that ignored If-Range (the reply's validator differs) or answered another range
                _discard(part, meta_path)
                raise _Retry(f"{url} changed on the server or was resumed at the wrong byte; restarting from zero")
            framed, mode = total is not None, "ab"
            hasher = _hash_prefix(part, offset)
        else:  # 200: fresh download, or a server that ignored Range / an If-Range that did not match
            offset, hasher, mode = 0, hashlib.sha256(), "wb"
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            framed = total is not None or bool(getattr(resp, "chunked", False))
            strong = etag if etag and not etag.startswith("W/") else None
            _discard(part, meta_path)
            if strong or modified:
                meta_path.write_text(json.dumps({"url": url, "etag": strong, "last_modified": modified, "total": total}),
                                     encoding="utf-8")
        if total is not None and total > offset:
            _check_space(part.parent, total - offset)
        received = _stream(resp, part, mode, hasher, offset, total, show_progress, limits, host, timeout)
    if total is not None and received != total:
        raise _Retry(f"connection closed after {received} of {total} bytes")
    return hasher, framed


def _stream(resp: Any, part: Path, mode: str, hasher: Any, offset: int, total: int | None, show_progress: bool,
            limits: _Limits, host: str, timeout: float) -> int:
    """Append the body of ``resp`` to ``part`` (and ``hasher``); return the bytes the file now holds."""
    received = offset
    read = getattr(resp, "read1", resp.read)  # read1: returns what arrived, so the deadline is checked often
    with open(part, mode) as out, _bar(show_progress, total, offset, part) as bar:
        while True:
            if limits.left() <= 0:
                raise _TimeUp
            try:
                block = read(CHUNK_BYTES)
            except (OSError, http.client.HTTPException) as exc:
                if limits.left() <= 0:
                    raise _TimeUp from exc
                reason = _reason(exc, host, timeout)
                if reason.startswith("stalled"):
                    raise _Retry(f"{reason} after {received} bytes") from exc
                raise _Retry(f"connection lost after {received} bytes ({reason})") from exc
            if not block:
                return received
            out.write(block)
            hasher.update(block)
            received += len(block)
            bar.update(len(block))


def _check_space(folder: Path, need: int) -> None:
    """Raise the disk-full error before a transfer that cannot fit in ``folder``."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if need > free:
        raise storage_error(OSError(errno.ENOSPC, "No space left on device"), folder, BERG_DIR_SETTING, need_bytes=need - free)


@contextlib.contextmanager
def _bar(show: bool, total: int | None, initial: int, part: Path) -> Any:
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


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or an HTTP date), capped at
    ``MAX_RETRY_AFTER_S``; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError, OverflowError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def _reason(exc: BaseException, host: str, timeout: float) -> str:
    reason = getattr(exc, "reason", None)
    if isinstance(exc, TimeoutError) or isinstance(reason, TimeoutError):
        return f"stalled: no data for {timeout:g} s from {host}"
    return str(reason) if reason else (str(exc) or type(exc).__name__)


__all__ = [
    "ATTEMPTS",
    "DEFAULT_BASE_URL",
    "MANIFEST_NAME",
    "base_url",
    "ensure_file",
    "fetch_command",
    "fetch_model_files",
    "file_url",
    "offline",
    "read_manifest",
    "sha256_file",
    "verify_file",
    "verify_recorded",
]
