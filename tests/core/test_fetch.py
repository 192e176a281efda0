"""berg_core.fetch against a loopback mirror (berg_core.testing.serve_directory): nothing leaves the machine."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from berg_core import fetch
from berg_core.errors import DownloadError, ResourceError
from berg_core.fetch import MANIFEST_NAME, base_url, ensure_file, fetch_model_files, read_manifest, verify_file
from berg_core.spec import EncoderSpec, RemoteFile
from berg_core.testing import serve_directory, unused_url

REL = "encoding_models/modality-fmri/train_dataset-x/model-y/encoding_models_weights/weights.bin"


def _payload(n: int, seed: int = 0) -> bytes:
    """``n`` deterministic pseudo-random bytes."""
    out = bytearray()
    block = seed.to_bytes(8, "little")
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:n])


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(bucket root served by the mirror, empty berg_dir); cache isolated, offline unset, no retry pause."""
    monkeypatch.setenv("BERG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("BERG_OFFLINE", raising=False)
    monkeypatch.setattr(fetch, "RETRY_PAUSE_S", 0.0)
    bucket, berg_dir = tmp_path / "bucket", tmp_path / "berg"
    bucket.mkdir()
    berg_dir.mkdir()
    return bucket, berg_dir


def _put(bucket: Path, rel: str, data: bytes) -> str:
    path = bucket / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _litter(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith((".part", ".tmp", ".etag")))


def test_base_url_default_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BERG_BASE_URL", raising=False)
    assert base_url() == "https://brain-encoding-response-generator.s3.us-west-2.amazonaws.com"
    monkeypatch.setenv("BERG_BASE_URL", "http://mirror.example/berg///")
    assert base_url() == "http://mirror.example/berg"


def test_download_records_manifest_and_notice_once(dirs, monkeypatch, capsys) -> None:
    bucket, berg_dir = dirs
    data = _payload(300_000)
    digest = _put(bucket, REL, data)
    _put(bucket, "other.bin", b"x" * 10)
    with serve_directory(bucket) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        path = ensure_file(REL, berg_dir, show_progress=False)
        assert path == berg_dir / REL and path.read_bytes() == data
        rec = read_manifest(berg_dir)[REL]
        assert rec["size"] == len(data) and rec["sha256"] == digest
        assert rec["url"] == f"{url}/{REL}" and rec["fetched"]
        assert rec["verified_size"] == len(data) and rec["verified_mtime_ns"] == path.stat().st_mtime_ns
        ensure_file(REL, berg_dir, show_progress=False)  # present and recorded: no request
        ensure_file("other.bin", berg_dir, show_progress=False)
        assert url.gets(REL) == 1
    err = capsys.readouterr().err
    assert err.count("Terms and Conditions") == 1 and "public bucket" in err
    assert json.loads((berg_dir / MANIFEST_NAME).read_text())[REL]["sha256"] == digest
    assert _litter(berg_dir) == []


def test_resume_after_cut_connection(dirs, monkeypatch) -> None:
    bucket, berg_dir = dirs
    data = _payload(1_000_000, seed=1)
    digest = _put(bucket, REL, data)
    with serve_directory(bucket, cut_after=300_000) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        path = ensure_file(REL, berg_dir, sha256=digest, size=len(data), show_progress=False)
        assert url.ranges(REL) == [None, "bytes=300000-"]
    assert path.read_bytes() == data
    assert _litter(berg_dir) == []


def test_resume_when_server_ignores_range(dirs, monkeypatch) -> None:
    bucket, berg_dir = dirs
    data = _payload(500_000, seed=2)
    _put(bucket, REL, data)
    with serve_directory(bucket, cut_after=100_000, ignore_range=True) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        path = ensure_file(REL, berg_dir, show_progress=False)
        assert url.ranges(REL) == [None, "bytes=100000-"]  # asked to resume, got the whole file (200)
    assert path.read_bytes() == data
    assert read_manifest(berg_dir)[REL]["sha256"] == hashlib.sha256(data).hexdigest()


def test_leftover_part_from_killed_run_is_resumed(dirs, monkeypatch) -> None:
    bucket, berg_dir = dirs
    data = _payload(400_000, seed=3)
    _put(bucket, REL, data)
    part = berg_dir / (REL + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:123_456])
    with serve_directory(bucket) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        path = ensure_file(REL, berg_dir, show_progress=False)
        assert url.ranges(REL) == ["bytes=123456-"]
    assert path.read_bytes() == data and not part.exists()


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupt_file_on_disk_is_refetched(dirs, monkeypatch, damage) -> None:
    bucket, berg_dir = dirs
    data = _payload(200_000, seed=4)
    _put(bucket, REL, data)
    with serve_directory(bucket) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        path = ensure_file(REL, berg_dir, show_progress=False)
        st = path.stat()
        broken = bytearray(data)
        if damage == "flip":
            broken[1000] ^= 0xFF
        else:
            del broken[150_000:]
        path.write_bytes(bytes(broken))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        assert not verify_file(REL, berg_dir)
        ensure_file(REL, berg_dir, show_progress=False)
        assert url.gets(REL) == 2
    assert path.read_bytes() == data
    assert verify_file(REL, berg_dir)


def test_verification_is_cached_by_size_and_mtime(dirs, monkeypatch) -> None:
    bucket, berg_dir = dirs
    _put(bucket, REL, _payload(50_000))
    with serve_directory(bucket) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        ensure_file(REL, berg_dir, show_progress=False)

    def no_hashing(path: Path) -> str:
        raise AssertionError("re-hashed a file whose verification is cached")

    monkeypatch.setattr(fetch, "sha256_file", no_hashing)
    monkeypatch.setenv("BERG_OFFLINE", "1")
    assert ensure_file(REL, berg_dir, show_progress=False).is_file()


def test_existing_unrecorded_file_is_trusted_on_first_use(dirs, monkeypatch) -> None:
    bucket, berg_dir = dirs
    data = _payload(10_000)
    (berg_dir / REL).parent.mkdir(parents=True)
    (berg_dir / REL).write_bytes(data)  # e.g. from `aws s3 sync`
    monkeypatch.setenv("BERG_BASE_URL", unused_url())
    monkeypatch.setenv("BERG_OFFLINE", "1")
    ensure_file(REL, berg_dir, show_progress=False)
    rec = read_manifest(berg_dir)[REL]
    assert rec["sha256"] == hashlib.sha256(data).hexdigest() and rec["fetched"] is None


def test_existing_unrecorded_file_with_wrong_sha256_is_refetched(dirs, monkeypatch) -> None:
    bucket, berg_dir = dirs
    data = _payload(20_000, seed=5)
    digest = _put(bucket, REL, data)
    (berg_dir / REL).parent.mkdir(parents=True)
    (berg_dir / REL).write_bytes(b"stale" * 100)
    with serve_directory(bucket) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        path = ensure_file(REL, berg_dir, sha256=digest, show_progress=False)
        assert url.gets(REL) == 1
    assert path.read_bytes() == data


def test_truncated_body_is_rejected_and_never_placed(dirs, monkeypatch) -> None:
    bucket, berg_dir = dirs
    _put(bucket, REL, _payload(200_000, seed=6))
    with serve_directory(bucket, truncate=50_000) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        with pytest.raises(DownloadError) as info:
            ensure_file(REL, berg_dir, show_progress=False)
        assert url.gets(REL) == fetch.ATTEMPTS
    msg = str(info.value)
    assert f"{url}/{REL}" in msg and "BERG_BASE_URL" in msg and "\n" not in msg
    assert not (berg_dir / REL).exists()
    assert REL not in read_manifest(berg_dir)


def test_sha256_mismatch_raises_and_leaves_nothing(dirs, monkeypatch) -> None:
    bucket, berg_dir = dirs
    _put(bucket, REL, _payload(30_000, seed=7))
    with serve_directory(bucket) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        with pytest.raises(DownloadError, match="sha256"):
            ensure_file(REL, berg_dir, sha256="0" * 64, show_progress=False)
        with pytest.raises(DownloadError, match="bytes instead of the expected 7"):
            ensure_file(REL, berg_dir, size=7, show_progress=False)
    assert not (berg_dir / REL).exists()
    assert _litter(berg_dir) == []


def test_corrupting_server_detected_with_known_sha256(dirs, monkeypatch) -> None:
    bucket, berg_dir = dirs
    digest = _put(bucket, REL, _payload(30_000, seed=8))
    with serve_directory(bucket, corrupt=True) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        with pytest.raises(DownloadError, match="corrupt"):
            ensure_file(REL, berg_dir, sha256=digest, show_progress=False)
    assert not (berg_dir / REL).exists()


_CHILD = """
import sys
from pathlib import Path
from berg_core.fetch import ensure_file
ensure_file(sys.argv[1], Path(sys.argv[2]), show_progress=False)
"""


def test_two_processes_leave_one_valid_copy(dirs, monkeypatch) -> None:
    bucket, berg_dir = dirs
    data = _payload(1_500_000, seed=9)
    _put(bucket, REL, data)
    with serve_directory(bucket, chunk_delay=0.02) as url:
        env = {**os.environ, "BERG_BASE_URL": str(url)}
        procs = [subprocess.Popen([sys.executable, "-c", _CHILD, REL, str(berg_dir)], env=env, stderr=subprocess.PIPE)
                 for _ in range(2)]
        errs = [p.communicate(timeout=120)[1].decode() for p in procs]
        assert [p.returncode for p in procs] == [0, 0], errs
        assert url.gets(REL) == 1  # the second process waited on the lock and found the finished file
    assert (berg_dir / REL).read_bytes() == data
    assert _litter(berg_dir) == []
    assert read_manifest(berg_dir)[REL]["size"] == len(data)


def test_offline_missing_file_says_berg_fetch(dirs, monkeypatch) -> None:
    bucket, berg_dir = dirs
    _put(bucket, REL, b"data")
    with serve_directory(bucket) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        monkeypatch.setenv("BERG_OFFLINE", "1")
        with pytest.raises(ResourceError, match="weights missing: run `berg fetch"):
            ensure_file(REL, berg_dir, show_progress=False)
        assert url.gets() == 0


def test_unreachable_server_is_a_download_error(dirs, monkeypatch) -> None:
    _, berg_dir = dirs
    dead = unused_url()
    monkeypatch.setenv("BERG_BASE_URL", dead)
    with pytest.raises(DownloadError) as info:
        ensure_file(REL, berg_dir, show_progress=False)
    msg = str(info.value)
    assert f"{dead}/{REL}" in msg and "network" in msg and "berg fetch" in msg
    assert not (berg_dir / REL).exists()


def test_missing_on_server_is_one_request(dirs, monkeypatch) -> None:
    bucket, berg_dir = dirs
    with serve_directory(bucket) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        with pytest.raises(DownloadError, match="HTTP 404"):
            ensure_file(REL, berg_dir, show_progress=False)
        assert url.gets(REL) == 1


def test_bad_relative_path_is_refused(dirs) -> None:
    _, berg_dir = dirs
    with pytest.raises(ResourceError):
        ensure_file("../outside.bin", berg_dir, show_progress=False)


def test_fetch_model_files_per_subject(dirs, monkeypatch) -> None:
    bucket, berg_dir = dirs
    root = "encoding_models/modality-fmri/train_dataset-d/model-m"
    for name in ("weights_S1.bin", "weights_S2.bin", "shared.bin"):
        _put(bucket, f"{root}/{name}", name.encode() * 10)
    spec = EncoderSpec(
        model_id="fmri-test-model", family="test", factory="x:y", subjects=("S1", "S2"),
        remote_files=(RemoteFile(f"{root}/weights_{{subject}}.bin", per_subject=True), RemoteFile(f"{root}/shared.bin")),
    )
    with serve_directory(bucket) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        one = fetch_model_files(spec, "S1", berg_dir, show_progress=False)
        assert [p.name for p in one] == ["weights_S1.bin", "shared.bin"]
        every = fetch_model_files(spec, None, berg_dir, show_progress=False)
        assert [p.name for p in every] == ["weights_S1.bin", "shared.bin", "weights_S2.bin"]
        assert url.gets() == 3
    assert all(p.read_bytes() == p.name.encode() * 10 for p in every)
