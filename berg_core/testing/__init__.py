"""Test helpers (no network, no pytest import at module level).

``serve_directory`` — a loopback HTTP mirror of BERG's bucket for tests of anything that downloads::

    with serve_directory(tmp_path / "bucket") as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        ...
        assert url.gets("encoding_models/x.npy") == 1

``refuse_network`` — resolving or connecting to any non-loopback host raises ``NetworkGuardError``
(``isolated_berg`` turns it on for every test; ``tests/conftest.py`` for the suites without one).

``isolated_berg`` — the body of every suite's autouse fixture.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    import pytest

# ------------------------------------------------------------------------------ loopback HTTP mirror


@dataclass(frozen=True)
class RequestRecord:
    """One request the mirror received: method, path (relative, no leading /), Range and If-Range headers
    (None when absent) and the status answered."""

    method: str
    path: str
    range: str | None
    status: int
    if_range: str | None = None


class MirrorURL(str):
    """The mirror's base URL (a plain ``str`` for env vars) that also carries its request log."""

    requests: list[RequestRecord]

    def gets(self, path: str | None = None) -> int:
        """How many GET requests were received (for ``path`` relative to the root, if given)."""
        return sum(1 for r in self.requests if r.method == "GET" and (path is None or r.path == path))

    def ranges(self, path: str) -> list[str | None]:
        """The ``Range`` header of each GET of ``path``, in order (None when absent)."""
        return [r.range for r in self.requests if r.method == "GET" and r.path == path]

    def statuses(self, path: str) -> list[int]:
        """The status answered to each GET of ``path``, in order."""
        return [r.status for r in self.requests if r.method == "GET" and r.path == path]


@dataclass
class _Behaviour:
    cut_after: int | None  # first GET body cut (connection closed) after this many bytes, once
    truncate: int | None  # every body stops after this many bytes while Content-Length says more
    corrupt: bool  # flip the first byte of every body (same length, wrong content)
    ignore_range: bool  # always answer 200 with the whole file
    chunk_delay: float  # seconds slept after each 64 KiB block (slow server)
    etag: str  # "strong", "weak" or "none"
    last_modified: bool  # send Last-Modified
    declare_size: bool  # send Content-Length / a Content-Range total
    ignore_if_range: bool  # honour Range even when If-Range does not match
    change_after_cut: bytes | None  # new content of the file once the cut GET is over
    errors: list[int]  # statuses answered to the first GETs, in order
    retry_after: str | None  # Retry-After header sent with those errors
    stall_after: int | None  # the first GET sends this many bytes, then goes silent until shutdown
    stop: threading.Event
    cut_done: bool = False
    stall_done: bool = False


_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")
_BLOCK = 64 * 1024


def _validators(target: Path, data: bytes, behaviour: _Behaviour) -> tuple[str | None, str | None]:
    """(ETag, Last-Modified) of ``target`` as the mirror sends them (None when switched off)."""
    digest = hashlib.sha256(data).hexdigest()[:32]
    etag = {"strong": f'"{digest}"', "weak": f'W/"{digest}"'}.get(behaviour.etag)
    modified = formatdate(target.stat().st_mtime, usegmt=True) if behaviour.last_modified else None
    return etag, modified


def _handler(root: Path, behaviour: _Behaviour, log: list[RequestRecord], lock: threading.Lock) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # silence stderr
            pass

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _log(self, rel: str, status: int) -> None:
            with lock:
                log.append(RequestRecord(self.command, rel, self.headers.get("Range"), status, self.headers.get("If-Range")))

        def _empty(self, rel: str, status: int, headers: dict[str, str]) -> None:
            self._log(rel, status)
            self.send_response(status)
            for key, value in {**headers, "Content-Length": "0"}.items():
                self.send_header(key, value)
            self.end_headers()

        def _serve(self, body: bool) -> None:
            rel = unquote(urlsplit(self.path).path).lstrip("/")
            target = (root / rel).resolve()
            if not rel or root not in target.parents or not target.is_file():
                self._empty(rel, 404, {})
                return
            with lock:
                error = behaviour.errors.pop(0) if behaviour.errors and body else None
            if error is not None:
                self._empty(rel, error, {"Retry-After": behaviour.retry_after} if behaviour.retry_after else {})
                return
            data = target.read_bytes()
            size = len(data)
            etag, modified = _validators(target, data, behaviour)
            start, end, status = 0, size - 1, 200
            m = _RANGE.match(self.headers.get("Range", "") or "")
            if_range = self.headers.get("If-Range")
            validator_ok = if_range is None or behaviour.ignore_if_range or (
                if_range == etag and not if_range.startswith("W/")) or (if_range == modified)
            if m and not behaviour.ignore_range and validator_ok:
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
                if start >= size:
                    self._empty(rel, 416, {"Content-Range": f"bytes */{size}"})
                    return
                status = 206
            self._log(rel, status)
            payload = data[start:end + 1]
            if behaviour.corrupt and payload:
                payload = bytes([payload[0] ^ 0xFF]) + payload[1:]
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            if behaviour.declare_size:
                self.send_header("Content-Length", str(len(payload)))
            else:  # the body ends when the connection closes (HTTP/1.0 style)
                self.send_header("Connection", "close")
                self.close_connection = True
            self.send_header("Accept-Ranges", "bytes")
            if etag:
                self.send_header("ETag", etag)
            if modified:
                self.send_header("Last-Modified", modified)
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size if behaviour.declare_size else '*'}")
            self.end_headers()
            if not body:
                return
            limit = len(payload)
            cut = stall = False
            with lock:
                if behaviour.cut_after is not None and not behaviour.cut_done:
                    behaviour.cut_done, cut, limit = True, True, min(limit, behaviour.cut_after)
                if behaviour.stall_after is not None and not behaviour.stall_done:
                    behaviour.stall_done, stall, limit = True, True, min(limit, behaviour.stall_after)
            if behaviour.truncate is not None and behaviour.truncate < limit:
                limit, cut = behaviour.truncate, True
            for i in range(0, limit, _BLOCK):
                self.wfile.write(payload[i:min(i + _BLOCK, limit)])
                if behaviour.chunk_delay:
                    self.wfile.flush()
                    time.sleep(behaviour.chunk_delay)
            self.wfile.flush()
            if stall:  # silent, connection open, until the mirror shuts down
                behaviour.stop.wait()
                cut = True
            if cut:  # hang up mid-body: the client sees fewer bytes than Content-Length
                with lock:
                    new, behaviour.change_after_cut = behaviour.change_after_cut, None
                if new is not None:  # changed before the client can retry
                    mtime = target.stat().st_mtime
                    target.write_bytes(new)
                    os.utime(target, (mtime + 10, mtime + 10))  # a later Last-Modified too
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    return Handler


@contextmanager
def serve_directory(
    root: Path | str,
    *,
    cut_after: int | None = None,
    truncate: int | None = None,
    corrupt: bool = False,
    ignore_range: bool = False,
    chunk_delay: float = 0.0,
    etag: str = "strong",
    last_modified: bool = True,
    declare_size: bool = True,
    ignore_if_range: bool = False,
    change_after_cut: bytes | None = None,
    errors: tuple[int, ...] = (),
    retry_after: str | None = None,
    stall_after: int | None = None,
) -> Iterator[MirrorURL]:
    """Serve the files under ``root`` over HTTP on 127.0.0.1 (a free port) while the block runs.

    Yields the base URL (``http://127.0.0.1:PORT``, no trailing slash) as a ``MirrorURL`` (a ``str``
    with ``.requests``, ``.gets(path)``, ``.ranges(path)``, ``.statuses(path)``). Supports
    ``Range: bytes=a-`` / ``a-b`` (206 with ``Content-Range``; 416 past the end), ``If-Range`` (a strong
    ETag or the Last-Modified date; no match: 200 with the whole file) and HEAD. Every reply carries a
    strong ``ETag`` (from the content) and ``Last-Modified`` (the file's mtime) unless switched off.

    Args:
        cut_after: cut the first GET's body after this many bytes (the connection is closed), once.
        truncate: every body stops after this many bytes while ``Content-Length`` promises the full body.
        corrupt: flip the first byte of every body (right length, wrong content).
        ignore_range: answer every GET with 200 and the whole file, as servers without Range support do.
        chunk_delay: seconds to sleep after each 64 KiB block (a slow server, for race tests).
        etag: ``"strong"``, ``"weak"`` (``W/"..."``) or ``"none"`` (no ETag header).
        last_modified: send ``Last-Modified``.
        declare_size: False: no ``Content-Length`` (the body ends when the connection closes) and a
            ``Content-Range`` total of ``*``.
        ignore_if_range: honour ``Range`` even when ``If-Range`` does not match (a broken server).
        change_after_cut: once the ``cut_after`` GET is over, the served file gets this content (and a
            mtime 10 s later): a file that changed on the server between two attempts.
        errors: the first GETs are answered with these statuses, in order (e.g. ``(503, 429)``).
        retry_after: ``Retry-After`` header value sent with ``errors``.
        stall_after: the first GET sends this many bytes, then sends nothing (connection open) until the
            mirror shuts down.
    """
    root = Path(root).resolve()
    log: list[RequestRecord] = []
    lock = threading.Lock()
    stop = threading.Event()
    behaviour = _Behaviour(cut_after, truncate, corrupt, ignore_range, chunk_delay, etag, last_modified, declare_size,
                           ignore_if_range, change_after_cut, list(errors), retry_after, stall_after, stop)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(root, behaviour, log, lock))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    url = MirrorURL(f"http://127.0.0.1:{server.server_address[1]}")
    url.requests = log
    try:
        yield url
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def unused_url() -> str:
    """A loopback URL nothing listens on (a port bound then released), for 'server unreachable' tests."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def copy_into_bucket(src: Path | str, bucket: Path | str, rel_path: str) -> Path:
    """Copy ``src`` to ``bucket / rel_path`` (folders created); return the new path."""
    dest = Path(bucket) / rel_path
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    return dest


# ------------------------------------------------------------------------- end of the HTTP mirror part


# ---------------------------------------------------------------------------------- network guard


class NetworkGuardError(RuntimeError):
    """A test tried to reach a host that is not loopback (raised by ``refuse_network``)."""


_LOCAL_NAMES = {"", "localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def is_loopback_host(host: object) -> bool:
    """True for None, ``localhost`` and loopback/unspecified IP literals (``127.x``, ``::1``, ``0.0.0.0``)."""
    if host is None:
        return True
    name = (host.decode("ascii", "replace") if isinstance(host, bytes) else str(host)).strip("[]").lower()
    if name in _LOCAL_NAMES:
        return True
    try:
        ip = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified


def _refuse(host: object, via: str) -> None:
    if not is_loopback_host(host):
        raise NetworkGuardError(f"a test tried to reach {host!s} ({via}); tests may only use loopback: serve files with "
                                "berg_core.testing.serve_directory")


#: a socket address: (host, port, ...) for the inet families, a path (str or bytes) for Unix sockets
_Address = tuple[Any, ...] | str | bytes
#: whether ``refuse_network`` is active (a nested use is a no-op)
_network_refused = False


@contextmanager
def refuse_network() -> Iterator[None]:
    """While the block runs, resolving or connecting to any non-loopback host raises ``NetworkGuardError``.

    Patches ``socket.getaddrinfo``, ``socket.create_connection`` and ``socket.socket.connect`` /
    ``connect_ex`` (inet families only; Unix sockets pass). Nested use is a no-op. Child processes are
    not covered.
    """
    global _network_refused
    if _network_refused:
        yield
        return
    from unittest import mock

    real_getaddrinfo, real_create_connection = socket.getaddrinfo, socket.create_connection
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    inet = (socket.AF_INET, socket.AF_INET6)

    def getaddrinfo(host: bytes | str | None, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        _refuse(host, "getaddrinfo")
        return real_getaddrinfo(host, *args, **kwargs)

    def create_connection(address: tuple[str | None, int], *args: Any, **kwargs: Any) -> socket.socket:
        _refuse(address[0], "create_connection")
        return real_create_connection(address, *args, **kwargs)

    def connect(self: socket.socket, address: _Address) -> None:
        if self.family in inet:
            _refuse(address[0], "socket.connect")
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: _Address) -> int:
        if self.family in inet:
            _refuse(address[0], "socket.connect_ex")
        return real_connect_ex(self, address)

    with mock.patch.object(socket, "getaddrinfo", getaddrinfo), mock.patch.object(socket, "create_connection", create_connection), \
            mock.patch.object(socket.socket, "connect", connect), mock.patch.object(socket.socket, "connect_ex", connect_ex):
        _network_refused = True
        try:
            yield
        finally:
            _network_refused = False


# ---------------------------------------------------------------------------- isolated test environment
BERG_PLUGIN_VARS = ("BERG_LOAD_PLUGINS", "BERG_DISABLE_PLUGINS", "BERG_STRICT_PLUGINS", "BERG_OFFLINE", "BERG_BASE_URL")


@contextmanager
def isolated_berg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **extra_env: str) -> Iterator[None]:
    """For an autouse fixture: own cache root and berg_dir under ``tmp_path``, hub offline, no plugin
    env vars, a fresh registry (and feature memory cache) before and after, no connection to any
    non-loopback host (``refuse_network``); ``extra_env`` sets more."""
    from berg_core.features import cache as features
    from berg_core.registry import reset_registry

    for var in BERG_PLUGIN_VARS:
        monkeypatch.delenv(var, raising=False)
    env = {"BERG_CACHE_DIR": str(tmp_path / "cache"), "BERG_DIR": str(tmp_path / "berg"), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **extra_env}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    reset_registry()
    features.clear_memory()
    try:
        with refuse_network():
            yield
    finally:
        features.clear_memory()
        reset_registry()
