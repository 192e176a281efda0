import multiprocessing as mp
import os
from pathlib import Path

import pytest

from berg_core.cache import atomic_path, atomic_write_text, build_once, cache_key, cache_path, cache_root


def test_cache_root_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("BERG_CACHE_DIR", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c" and (tmp_path / "c").is_dir()
    assert cache_path("ns", "f.npy") == tmp_path / "c" / "ns" / "f.npy"


def test_cache_key_depends_on_every_part():
    assert cache_key(a=1, b="x") == cache_key(b="x", a=1)
    assert cache_key(a=1, b="x") != cache_key(a=1, b="y")


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    dest = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(dest) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    atomic_write_text(dest, "whole")
    assert dest.read_text() == "whole" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def _build_slowly(dest: str, log: str) -> None:
    import time

    def build(tmp: Path) -> None:
        with open(log, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        time.sleep(0.5)
        tmp.write_text("built")

    build_once(dest, build)


def test_build_once_across_processes(tmp_path):
    dest, log = tmp_path / "entry.txt", tmp_path / "log.txt"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_build_slowly, args=(str(dest), str(log))) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert dest.read_text() == "built"
    assert len(log.read_text().split()) == 1  # built exactly once
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["entry.txt", "log.txt"]


def test_atomic_files_get_normal_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "shared.txt", "x")
    finally:
        os.umask(umask)
    assert (tmp_path / "shared.txt").stat().st_mode & 0o777 == 0o644
