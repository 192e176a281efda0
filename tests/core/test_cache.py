import errno
import multiprocessing as mp
import os
import subprocess
import sys
from pathlib import Path

import pytest

from berg_core.errors import ResourceError
from berg_core.store.cache import (
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    build_once,
    cache_key,
    cache_path,
    cache_root,
    clean_stale_tmps,
    format_bytes,
)


def test_cache_root_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("BERG_CACHE_DIR", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c" and (tmp_path / "c").is_dir()
    assert cache_path("ns", "f.npy") == tmp_path / "c" / "ns" / "f.npy"


def test_cache_path_without_create_leaves_no_trace(tmp_path, monkeypatch):
    monkeypatch.setenv("BERG_CACHE_DIR", str(tmp_path / "c"))
    assert cache_path("ns", "f.npy", create=False) == tmp_path / "c" / "ns" / "f.npy"
    assert not (tmp_path / "c").exists()


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


# ------------------------------------------------------------------------ killed writers' temporary files

_WRITER = """
import sys, time
from berg_core.store.cache import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_text("half")
    print(tmp, flush=True)
    time.sleep(120)
"""


def _start_writer(dest: Path) -> tuple[subprocess.Popen, Path]:
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(dest)], stdout=subprocess.PIPE, text=True)
    tmp = Path(proc.stdout.readline().strip())
    assert tmp.is_file() and tmp.parent == dest.parent
    return proc, tmp


def test_next_write_removes_the_tmp_of_a_killed_writer_not_of_a_live_one(tmp_path):
    dest = tmp_path / "entry.npy"
    killed, killed_tmp = _start_writer(dest)
    live, live_tmp = _start_writer(dest)
    try:
        killed.kill()
        killed.wait(30)
        assert killed_tmp.exists()  # what a SIGKILL leaves behind
        old = tmp_path / f".{dest.name}.oldformat.npy.tmp"  # no pid in the name: removed only when stale by age
        old.write_text("x")
        fresh = tmp_path / f".{dest.name}.recentone.npy.tmp"
        fresh.write_text("x")
        os.utime(old, (0, 0))
        other = tmp_path / f".other.npy.{killed_tmp.name.split('.')[3]}.x.npy.tmp"  # another target's file
        other.write_text("x")
        atomic_write_text(dest, "whole")
        assert dest.read_text() == "whole"
        assert not killed_tmp.exists() and not old.exists()
        assert live_tmp.exists() and fresh.exists() and other.exists()
    finally:
        live.kill()
        live.wait(30)


def test_clean_stale_tmps_keeps_the_own_process_files(tmp_path):
    dest = tmp_path / "x.txt"
    with atomic_path(dest) as tmp:
        tmp.write_text("writing")
        assert clean_stale_tmps(dest) == [] and tmp.exists()


# ------------------------------------------------------------------------------------ storage errors


def test_disk_full_during_an_atomic_write_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("BERG_CACHE_DIR", str(tmp_path / "c"))
    dest = cache_path("ns", "big.bin")

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(ResourceError) as info:
        atomic_write_bytes(dest, b"x" * 2_500_000)
    assert str(info.value) == (f"disk full while writing in {dest.parent}: free at least 2.5 MB there, or set $BERG_CACHE_DIR "
                               "to a folder on a larger disk")
    assert list(dest.parent.iterdir()) == []


def test_disk_full_in_a_builder_names_the_folder(tmp_path):
    def build(tmp: Path) -> None:
        tmp.write_bytes(b"y" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(ResourceError, match=r"^disk full while writing in .*: free space there \(it was full after 1.0 kB"):
        build_once(tmp_path / "out" / "f.npy", build)
    assert [p.name for p in (tmp_path / "out").iterdir() if not p.name.endswith(".lock")] == []


def test_other_errors_of_a_builder_pass_through(tmp_path):
    def build(tmp: Path) -> None:
        raise FileNotFoundError(errno.ENOENT, "No such file", "source.npy")

    with pytest.raises(FileNotFoundError):
        build_once(tmp_path / "f.npy", build)


@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS])
def test_read_only_cache_is_one_line(tmp_path, monkeypatch, code):
    import tempfile

    monkeypatch.setenv("BERG_CACHE_DIR", str(tmp_path / "c"))
    dest = cache_path("ns", "f.npy")

    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code), str(dest.parent / ".f.npy.tmp"))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(ResourceError) as info:
        atomic_write_text(dest, "x")
    msg = str(info.value)
    assert msg.startswith(f"cannot write in {dest.parent} (") and msg.endswith(
        "make it writable, or set $BERG_CACHE_DIR to a folder you can write to")


def test_cache_dir_that_is_a_file_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "c").write_text("a file")
    monkeypatch.setenv("BERG_CACHE_DIR", str(tmp_path / "c"))
    with pytest.raises(ResourceError, match=r"^cannot write in .*c \(file exists\): check that it is a folder .*\$BERG_CACHE_DIR"):
        cache_root()
    with pytest.raises(ResourceError):
        cache_path("ns", "x.npy")


def test_format_bytes():
    assert [format_bytes(n) for n in (0, 999, 1000, 2_500_000, 7 * 10**12)] == ["0 bytes", "999 bytes", "1.0 kB", "2.5 MB", "7.0 TB"]
