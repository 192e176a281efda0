"""Test helpers (no network, no pytest import at module level).

``serve_directory`` — a loopback HTTP mirror of BERG's bucket for tests of anything that downloads::

    with serve_directory(tmp_path / "bucket") as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        ...
        assert url.gets("encoding_models/x.npy") == 1

Other helpers may follow below this section.
"""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

# ------------------------------------------------------------------------------ loopback HTTP mirror


@dataclass(frozen=True)
class RequestRecord:
    """One request the mirror received: method, path (relative, no leading /), Range header or None."""

    method: str
    path: str
    range: str | None
    status: int


class MirrorURL(str):
    """The mirror's base URL (a plain ``str`` for env vars) that also carries its request log."""

    requests: list[RequestRecord]

    def gets(self, path: str | None = None) -> int:
        """How many GET requests were received (for ``path`` relative to the root, if given)."""
        return sum(1 for r in self.requests if r.method == "GET" and (path is None or r.path == path))

    def ranges(self, path: str) -> list[str | None]:
        """The ``Range`` header of each GET of ``path``, in order (None when absent)."""
        return [r.range for r in self.requests if r.method == "GET" and r.path == path]


@dataclass
class _Behaviour:
    cut_after: int | None  # first GET body cut (connection closed) after this many bytes, once
    truncate: int | None  # every body stops after this many bytes while Content-Length says more
    corrupt: bool  # flip the first byte of every body (same length, wrong content)
    ignore_range: bool  # always answer 200 with the whole file
    chunk_delay: float  # seconds slept after each 64 KiB block (slow server)
    cut_done: bool = False


_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")
_BLOCK = 64 * 1024


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
                log.append(RequestRecord(self.command, rel, self.headers.get("Range"), status))

        def _serve(self, body: bool) -> None:
            rel = unquote(urlsplit(self.path).path).lstrip("/")
            target = (root / rel).resolve()
            if not rel or root not in target.parents or not target.is_file():
                self._log(rel, 404)
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = target.read_bytes()
            size = len(data)
            start, end, status = 0, size - 1, 200
            m = _RANGE.match(self.headers.get("Range", "") or "")
            if m and not behaviour.ignore_range:
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
                if start >= size:
                    self._log(rel, 416)
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
            self._log(rel, status)
            payload = data[start:end + 1]
            if behaviour.corrupt and payload:
                payload = bytes([payload[0] ^ 0xFF]) + payload[1:]
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            if not body:
                return
            limit = len(payload)
            cut = False
            with lock:
                if body and behaviour.cut_after is not None and not behaviour.cut_done:
                    behaviour.cut_done, cut, limit = True, True, min(limit, behaviour.cut_after)
            if behaviour.truncate is not None and behaviour.truncate < limit:
                limit, cut = behaviour.truncate, True
            for i in range(0, limit, _BLOCK):
                self.wfile.write(payload[i:min(i + _BLOCK, limit)])
                if behaviour.chunk_delay:
                    self.wfile.flush()
                    time.sleep(behaviour.chunk_delay)
            if cut:  # hang up mid-body: the client sees fewer bytes than Content-Length
                self.wfile.flush()
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
) -> Iterator[MirrorURL]:
    """Serve the files under ``root`` over HTTP on 127.0.0.1 (a free port) while the block runs.

    Yields the base URL (``http://127.0.0.1:PORT``, no trailing slash) as a ``MirrorURL`` (a ``str``
    with ``.requests``, ``.gets(path)``, ``.ranges(path)``). Supports ``Range: bytes=a-`` / ``a-b``
    (206 with ``Content-Range``; 416 past the end) and HEAD.

    Args:
        cut_after: cut the first GET's body after this many bytes (the connection is closed), once.
        truncate: every body stops after this many bytes while ``Content-Length`` promises the full body.
        corrupt: flip the first byte of every body (right length, wrong content).
        ignore_range: answer every GET with 200 and the whole file, as servers without Range support do.
        chunk_delay: seconds to sleep after each 64 KiB block (a slow server, for race tests).
    """
    root = Path(root).resolve()
    log: list[RequestRecord] = []
    lock = threading.Lock()
    behaviour = _Behaviour(cut_after, truncate, corrupt, ignore_range, chunk_delay)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(root, behaviour, log, lock))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    url = MirrorURL(f"http://127.0.0.1:{server.server_address[1]}")
    url.requests = log
    try:
        yield url
    finally:
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


# ---------------------------------------------------------------------------- isolated test environment
BERG_PLUGIN_VARS = ("BERG_LOAD_PLUGINS", "BERG_DISABLE_PLUGINS", "BERG_STRICT_PLUGINS", "BERG_OFFLINE", "BERG_BASE_URL")


@contextmanager
def isolated_berg(monkeypatch, tmp_path: Path, **extra_env: str) -> Iterator[None]:
    """For an autouse fixture: own cache root and berg_dir under ``tmp_path``, hub offline, no plugin
    env vars, a fresh registry (and feature memory cache) before and after; ``extra_env`` sets more."""
    from berg_core import features
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
        yield
    finally:
        features.clear_memory()
        reset_registry()
