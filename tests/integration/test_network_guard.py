"""tests/conftest.py refuses non-loopback hosts in every suite, this one included (it has no conftest of its own)."""

import socket
import urllib.request

import pytest

from berg_core.testing import NetworkGuardError, serve_directory


def test_remote_hosts_are_refused_here_too(tmp_path):
    with pytest.raises(NetworkGuardError, match="a test tried to reach pypi.org"):
        socket.getaddrinfo("pypi.org", 443)
    with pytest.raises(NetworkGuardError, match="203.0.113.5"):
        urllib.request.urlopen("http://203.0.113.5/", timeout=1)
    (tmp_path / "f.txt").write_text("loopback works")
    with serve_directory(tmp_path) as url, urllib.request.urlopen(f"{url}/f.txt", timeout=5) as resp:
        assert resp.read() == b"loopback works"
