"""berg_core.store.fetch against a loopback mirror (berg_core.testing.serve_directory): nothing leaves the machine."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from berg_core.errors import DownloadError, InvalidParameterError, ModelLoadError, ResourceError
from berg_core.spec import EncoderSpec, RemoteFile
from berg_core.store import fetch
from berg_core.store.fetch import MANIFEST_NAME, base_url, ensure_file, fetch_model_files, read_manifest, verify_file
from berg_core.testing import NetworkGuardError, is_loopback_host, serve_directory, unused_url

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
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith((".part", ".tmp", ".etag", ".meta")))


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


def test_part_kept_by_a_failed_call_is_resumed_by_the_next(dirs, monkeypatch) -> None:
    bucket, berg_dir = dirs
    data = _payload(400_000, seed=3)
    _put(bucket, REL, data)
    with serve_directory(bucket, truncate=100_000) as url:  # every attempt stops 100 kB further
        monkeypatch.setenv("BERG_BASE_URL", url)
        with pytest.raises(DownloadError, match="kept in .*weights.bin.part and resumed next time"):
            ensure_file(REL, berg_dir, show_progress=False)
    part = berg_dir / (REL + ".part")
    assert part.stat().st_size == 300_000
    with serve_directory(bucket) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        path = ensure_file(REL, berg_dir, show_progress=False)
        assert url.ranges(REL) == ["bytes=300000-"] and url.statuses(REL) == [206]
    assert path.read_bytes() == data and _litter(berg_dir) == []


def test_part_without_a_validator_is_restarted_from_zero(dirs, monkeypatch) -> None:
    bucket, berg_dir = dirs
    data = _payload(400_000, seed=3)
    _put(bucket, REL, data)
    part = berg_dir / (REL + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"from another version of the file" * 100)  # e.g. left by an older berg: no .part.meta
    with serve_directory(bucket) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        path = ensure_file(REL, berg_dir, show_progress=False)
        assert url.ranges(REL) == [None]
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
from berg_core.store.fetch import ensure_file
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


@pytest.mark.parametrize("rel", ["../outside.bin", "/etc/passwd", "a/../../b.bin", "."])
def test_bad_relative_path_is_refused_before_any_request(dirs, monkeypatch, rel) -> None:
    bucket, berg_dir = dirs
    _put(bucket, "outside.bin", b"x")
    with serve_directory(bucket) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        with pytest.raises(ResourceError, match=r"^bad remote file path .*: expected a path relative to berg_dir$"):
            ensure_file(rel, berg_dir, show_progress=False)
        assert url.requests == []
    assert list(berg_dir.iterdir()) == []


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


# ------------------------------------------------------------------ validators, If-Range, 416, retries


def test_file_changed_on_server_without_validators_is_not_stitched(dirs, monkeypatch) -> None:
    bucket, berg_dir = dirs
    old, new = _payload(600_000, seed=10), _payload(600_000, seed=11)
    _put(bucket, REL, old)
    with serve_directory(bucket, cut_after=250_000, change_after_cut=new, etag="none", last_modified=False) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        path = ensure_file(REL, berg_dir, show_progress=False)
        assert url.ranges(REL) == [None, None]  # no validator: restarted from zero, no Range
    assert path.read_bytes() == new
    assert read_manifest(berg_dir)[REL]["sha256"] == hashlib.sha256(new).hexdigest()


@pytest.mark.parametrize("validator", ["etag", "last_modified"])
def test_resume_sends_if_range_and_a_changed_file_comes_back_whole(dirs, monkeypatch, validator) -> None:
    bucket, berg_dir = dirs
    old, new = _payload(600_000, seed=12), _payload(600_000, seed=13)
    _put(bucket, REL, old)
    options = {"etag": "strong" if validator == "etag" else "none", "last_modified": validator == "last_modified"}
    with serve_directory(bucket, cut_after=250_000, **options) as url:  # unchanged: resumed with 206
        monkeypatch.setenv("BERG_BASE_URL", url)
        ensure_file(REL, berg_dir, show_progress=False)
        first_if_range = [r.if_range for r in url.requests]
        assert url.ranges(REL) == [None, "bytes=250000-"] and url.statuses(REL) == [200, 206]
    assert (berg_dir / REL).read_bytes() == old
    assert first_if_range[0] is None
    if validator == "etag":
        assert first_if_range[1] == '"' + hashlib.sha256(old).hexdigest()[:32] + '"'
    else:
        assert first_if_range[1].endswith(" GMT")
    (berg_dir / REL).unlink()
    fetch._forget(berg_dir, REL)
    with serve_directory(bucket, cut_after=250_000, change_after_cut=new, **options) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        ensure_file(REL, berg_dir, show_progress=False)
        assert url.ranges(REL) == [None, "bytes=250000-"] and url.statuses(REL) == [200, 200]  # If-Range failed: whole
    assert (berg_dir / REL).read_bytes() == new


def test_weak_etag_is_no_validator(dirs, monkeypatch) -> None:
    bucket, berg_dir = dirs
    old, new = _payload(300_000, seed=14), _payload(300_000, seed=15)
    _put(bucket, REL, old)
    with serve_directory(bucket, cut_after=100_000, change_after_cut=new, etag="weak", last_modified=False) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        ensure_file(REL, berg_dir, show_progress=False)
        assert url.ranges(REL) == [None, None]
    assert (berg_dir / REL).read_bytes() == new


def test_server_ignoring_if_range_is_caught_by_the_reply_etag(dirs, monkeypatch) -> None:
    bucket, berg_dir = dirs
    old, new = _payload(300_000, seed=16), _payload(300_000, seed=17)
    _put(bucket, REL, old)
    with serve_directory(bucket, cut_after=100_000, change_after_cut=new, ignore_if_range=True) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        ensure_file(REL, berg_dir, show_progress=False)
        assert url.ranges(REL) == [None, "bytes=100000-", None] and url.statuses(REL) == [200, 206, 200]
    assert (berg_dir / REL).read_bytes() == new


def test_complete_part_of_a_run_killed_before_the_rename_is_used_after_416(dirs, monkeypatch) -> None:
    bucket, berg_dir = dirs
    data = _payload(200_000, seed=18)
    _put(bucket, REL, data)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    with serve_directory(bucket) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        with monkeypatch.context() as m:
            m.setattr(fetch, "_record", killed)
            with pytest.raises(KeyboardInterrupt):
                ensure_file(REL, berg_dir, show_progress=False)
        assert not (berg_dir / REL).exists() and (berg_dir / (REL + ".part")).stat().st_size == len(data)
        path = ensure_file(REL, berg_dir, show_progress=False)
        assert url.ranges(REL) == [None, f"bytes={len(data)}-"] and url.statuses(REL) == [200, 416]
    assert path.read_bytes() == data and _litter(berg_dir) == []
    assert read_manifest(berg_dir)[REL]["sha256"] == hashlib.sha256(data).hexdigest()


def test_416_past_the_end_restarts_from_zero(dirs, monkeypatch) -> None:
    bucket, berg_dir = dirs
    old, new = _payload(400_000, seed=19), _payload(50_000, seed=20)
    _put(bucket, REL, old)
    with serve_directory(bucket, truncate=100_000) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        with pytest.raises(DownloadError):
            ensure_file(REL, berg_dir, show_progress=False)
    _put(bucket, REL, new)  # the file shrank on the server; this server ignores If-Range, so Range is past the end
    with serve_directory(bucket, ignore_if_range=True) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        path = ensure_file(REL, berg_dir, show_progress=False)
        assert url.statuses(REL) == [416, 200] and url.ranges(REL) == ["bytes=300000-", None]
    assert path.read_bytes() == new


def test_5xx_and_429_are_retried_after_retry_after(dirs, monkeypatch) -> None:
    bucket, berg_dir = dirs
    data = _payload(10_000, seed=21)
    _put(bucket, REL, data)
    waits: list[float] = []
    monkeypatch.setattr(fetch, "_pause", waits.append)
    with serve_directory(bucket, errors=(503, 429), retry_after="7") as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        path = ensure_file(REL, berg_dir, show_progress=False)
        assert url.statuses(REL) == [503, 429, 200]
    assert waits == [7.0, 7.0] and path.read_bytes() == data


def test_persistent_5xx_gives_up_without_claiming_a_partial_file(dirs, monkeypatch) -> None:
    bucket, berg_dir = dirs
    _put(bucket, REL, b"x" * 1000)
    with serve_directory(bucket, errors=(500, 502, 503, 504)) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        with pytest.raises(DownloadError) as info:
            ensure_file(REL, berg_dir, show_progress=False)
        assert url.statuses(REL) == [500, 502, 503]
    msg = str(info.value)
    assert "HTTP 503" in msg and "nothing was kept" in msg and "kept in" not in msg and "\n" not in msg
    assert _litter(berg_dir) == []


def test_retry_after_beyond_the_budget_gives_up_at_once(dirs, monkeypatch) -> None:
    bucket, berg_dir = dirs
    _put(bucket, REL, b"x" * 1000)
    monkeypatch.setenv("BERG_DOWNLOAD_TIMEOUT", "5")
    with serve_directory(bucket, errors=(429,), retry_after="60") as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        with pytest.raises(DownloadError, match="asks to wait 60 s, past the 5 s budget"):
            ensure_file(REL, berg_dir, show_progress=False)
        assert url.gets(REL) == 1


def test_cut_without_validator_keeps_nothing_and_says_so(dirs, monkeypatch) -> None:
    bucket, berg_dir = dirs
    _put(bucket, REL, _payload(300_000, seed=22))
    with serve_directory(bucket, truncate=100_000, etag="none", last_modified=False) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        with pytest.raises(DownloadError, match="nothing was kept") as info:
            ensure_file(REL, berg_dir, show_progress=False)
        assert url.ranges(REL) == [None, None, None]
    assert "kept in" not in str(info.value) and _litter(berg_dir) == []


def test_unreachable_server_keeps_nothing_and_says_so(dirs, monkeypatch) -> None:
    _, berg_dir = dirs
    monkeypatch.setenv("BERG_BASE_URL", unused_url())
    with pytest.raises(DownloadError, match="nothing was kept"):
        ensure_file(REL, berg_dir, show_progress=False)
    assert _litter(berg_dir) == []


# ------------------------------------------------------------------ sizes the server never declared


def test_body_of_undeclared_size_is_never_trusted(dirs, monkeypatch) -> None:
    bucket, berg_dir = dirs
    data = _payload(100_000, seed=23)
    digest = _put(bucket, REL, data)
    with serve_directory(bucket, declare_size=False) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        with pytest.raises(DownloadError, match="without a declared size") as info:
            ensure_file(REL, berg_dir, show_progress=False)
        assert "\n" not in str(info.value)
        assert not (berg_dir / REL).exists() and REL not in read_manifest(berg_dir) and _litter(berg_dir) == []
        path = ensure_file(REL, berg_dir, sha256=digest, show_progress=False)  # a known sha256 makes it checkable
    assert path.read_bytes() == data


def test_resume_with_undeclared_total_is_never_trusted(dirs, monkeypatch) -> None:
    bucket, berg_dir = dirs
    _put(bucket, REL, _payload(400_000, seed=24))
    with serve_directory(bucket, truncate=100_000) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        with pytest.raises(DownloadError):
            ensure_file(REL, berg_dir, show_progress=False)
    with serve_directory(bucket, declare_size=False) as url:  # 206 with "Content-Range: bytes a-b/*"
        monkeypatch.setenv("BERG_BASE_URL", url)
        with pytest.raises(DownloadError, match="without a declared size"):
            ensure_file(REL, berg_dir, show_progress=False)
        assert url.statuses(REL) == [206]
    assert not (berg_dir / REL).exists() and REL not in read_manifest(berg_dir)


# ------------------------------------------------------------------------------------ stall, deadline


def test_stall_is_reported_and_retried(dirs, monkeypatch, capsys) -> None:
    bucket, berg_dir = dirs
    data = _payload(300_000, seed=25)
    _put(bucket, REL, data)
    monkeypatch.setenv("BERG_DOWNLOAD_STALL_TIMEOUT", "0.5")
    with serve_directory(bucket, stall_after=100_000) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        path = ensure_file(REL, berg_dir, show_progress=False)
        assert url.ranges(REL)[0] is None and url.ranges(REL)[1].startswith("bytes=")
    assert path.read_bytes() == data
    err = capsys.readouterr().err
    assert "stalled: no data for 0.5 s from 127.0.0.1 after 100000 bytes; retrying" in err


def test_overall_deadline(dirs, monkeypatch) -> None:
    import time

    bucket, berg_dir = dirs
    data = _payload(2_000_000, seed=26)
    _put(bucket, REL, data)
    monkeypatch.setenv("BERG_DOWNLOAD_TIMEOUT", "0.5")
    with serve_directory(bucket, chunk_delay=0.1) as url:  # ~3 s for the whole file
        monkeypatch.setenv("BERG_BASE_URL", url)
        start = time.monotonic()
        with pytest.raises(DownloadError, match=r"took longer than 0.5 s \(BERG_DOWNLOAD_TIMEOUT\); the .* received so far are kept"):
            ensure_file(REL, berg_dir, show_progress=False)
        assert time.monotonic() - start < 2.5
    monkeypatch.delenv("BERG_DOWNLOAD_TIMEOUT")
    with serve_directory(bucket) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        assert ensure_file(REL, berg_dir, show_progress=False).read_bytes() == data
        assert url.statuses(REL) == [206]


@pytest.mark.parametrize("value", ["soon", "0", "-3", "nan"])
def test_bad_timeout_setting_is_one_line(dirs, monkeypatch, value) -> None:
    _, berg_dir = dirs
    monkeypatch.setenv("BERG_BASE_URL", unused_url())
    monkeypatch.setenv("BERG_DOWNLOAD_TIMEOUT", value)
    with pytest.raises(InvalidParameterError, match="BERG_DOWNLOAD_TIMEOUT=.* is not a positive number of seconds"):
        ensure_file(REL, berg_dir, show_progress=False)


# ------------------------------------------------------------------------------------ notice, storage


def test_terms_notice_marked_shown_only_after_a_file_arrived(dirs, monkeypatch, capsys) -> None:
    bucket, berg_dir = dirs
    with serve_directory(bucket) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        with pytest.raises(DownloadError, match="HTTP 404"):
            ensure_file(REL, berg_dir, show_progress=False)
        assert not (berg_dir / fetch.NOTICE_MARKER).exists()
        _put(bucket, REL, b"now it exists")
        ensure_file(REL, berg_dir, show_progress=False)
        assert (berg_dir / fetch.NOTICE_MARKER).exists()
        _put(bucket, "second.bin", b"2")
        ensure_file("second.bin", berg_dir, show_progress=False)
    assert capsys.readouterr().err.count("Terms and Conditions") == 2  # the failed try, then the first success


class _FullDisk:
    """A writable file object whose disk fills after ``room`` bytes."""

    def __init__(self, fh, room: int) -> None:
        self.fh, self.room = fh, room

    def write(self, block: bytes) -> int:
        if len(block) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(block)
        return self.fh.write(block)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.fh.close()


def test_disk_full_while_downloading(dirs, monkeypatch) -> None:
    bucket, berg_dir = dirs
    data = _payload(3_000_000, seed=27)
    _put(bucket, REL, data)
    monkeypatch.setattr(fetch, "open", lambda path, mode="r": _FullDisk(open(path, mode), 1_500_000), raising=False)
    with serve_directory(bucket) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        with pytest.raises(ResourceError) as info:
            ensure_file(REL, berg_dir, show_progress=False, model_id="fmri-x")
    msg = str(info.value)
    folder = (berg_dir / REL).parent
    assert msg.startswith(f"disk full while writing in {folder}: free at least ") and "$BERG_DIR" in msg
    assert "run `berg fetch fmri-x` again" in msg and "kept in" in msg and "\n" not in msg
    assert 0 < (berg_dir / (REL + ".part")).stat().st_size <= 1_500_000


def test_disk_too_small_is_refused_before_the_transfer(dirs, monkeypatch) -> None:
    import shutil
    from collections import namedtuple

    bucket, berg_dir = dirs
    _put(bucket, REL, _payload(3_000_000, seed=28))
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(fetch.shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1_000_000, 1_000_000))
    with serve_directory(bucket) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        with pytest.raises(ResourceError, match=r"disk full while writing in .*: free at least 2.0 MB there"):
            ensure_file(REL, berg_dir, show_progress=False)
    assert not (berg_dir / REL).exists() and not (berg_dir / (REL + ".part")).exists()
    assert shutil.disk_usage is fetch.shutil.disk_usage  # (the patch is undone by monkeypatch)


def test_read_only_berg_dir_is_one_line(dirs, monkeypatch) -> None:
    import filelock

    bucket, berg_dir = dirs
    _put(bucket, REL, b"data")

    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", self.lock_file)

    monkeypatch.setattr(filelock.FileLock, "acquire", read_only)
    with serve_directory(bucket) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        with pytest.raises(ResourceError) as info:
            ensure_file(REL, berg_dir, show_progress=False)
        assert url.requests == []
    assert str(info.value) == (f"cannot write in {(berg_dir / REL).parent} (read-only file system): make it writable, "
                               "or set $BERG_DIR (or --berg-dir) to a folder you can write to")


def test_berg_dir_that_is_a_file_is_one_line(dirs, monkeypatch, tmp_path) -> None:
    not_a_dir = tmp_path / "berg-file"
    not_a_dir.write_text("oops")
    monkeypatch.setenv("BERG_BASE_URL", unused_url())
    with pytest.raises(ResourceError, match=r"berg_dir .*berg-file is a file, not a folder: set \$BERG_DIR"):
        ensure_file(REL, not_a_dir, show_progress=False)
    assert read_manifest(not_a_dir) == {} and not verify_file(REL, not_a_dir)


# ------------------------------------------------------------------------------------ damaged manifest


@pytest.mark.parametrize("content", [
    b"{not json", b"\xff\xfe\x00garbage", b"[1, 2, 3]", b'"a string"', b"[" * 100_000 + b"]" * 100_000,
    json.dumps({REL: 5}).encode(), json.dumps({REL: {"sha256": 5, "size": "big"}}).encode(),
    json.dumps({REL: {"sha256": "0" * 64, "size": True}}).encode(),
    json.dumps({REL: {"sha256": "A" * 64, "size": 1, "verified_size": "x", "verified_mtime_ns": []}}).encode(),
])
def test_damaged_manifest_means_no_record(dirs, monkeypatch, content) -> None:
    _, berg_dir = dirs
    data = _payload(5_000, seed=29)
    (berg_dir / REL).parent.mkdir(parents=True)
    (berg_dir / REL).write_bytes(data)
    (berg_dir / MANIFEST_NAME).write_bytes(content)
    monkeypatch.setenv("BERG_BASE_URL", unused_url())
    assert read_manifest(berg_dir).get(REL) is None
    assert ensure_file(REL, berg_dir, show_progress=False).read_bytes() == data  # re-verified: recorded anew
    assert read_manifest(berg_dir)[REL]["sha256"] == hashlib.sha256(data).hexdigest()
    assert verify_file(REL, berg_dir)


def test_wrongly_typed_verification_fields_are_dropped(dirs, monkeypatch) -> None:
    _, berg_dir = dirs
    data = _payload(5_000, seed=30)
    (berg_dir / REL).parent.mkdir(parents=True)
    (berg_dir / REL).write_bytes(data)
    record = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "verified_size": [len(data)]}
    (berg_dir / MANIFEST_NAME).write_text(json.dumps({REL: record, "other": "junk"}))
    assert read_manifest(berg_dir) == {REL: {"sha256": record["sha256"], "size": len(data)}}
    monkeypatch.setenv("BERG_OFFLINE", "1")
    assert ensure_file(REL, berg_dir, show_progress=False).read_bytes() == data


# ------------------------------------------------------------------------------------ verify_recorded


def test_verify_recorded_catches_a_bit_flip_with_mtime_kept(dirs, monkeypatch) -> None:
    bucket, berg_dir = dirs
    data = _payload(50_000, seed=31)
    _put(bucket, REL, data)
    with serve_directory(bucket) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        path = ensure_file(REL, berg_dir, show_progress=False)
        fetch.verify_recorded(path, berg_dir, hashlib.sha256(data).hexdigest(), "fmri-x")  # matches: silent
        st = path.stat()
        flipped = bytearray(data)
        flipped[777] ^= 0x01
        path.write_bytes(bytes(flipped))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert ensure_file(REL, berg_dir, show_progress=False) == path  # size+mtime cached: not re-hashed
        with pytest.raises(ModelLoadError) as info:
            fetch.verify_recorded(path, berg_dir, fetch.sha256_file(path), "fmri-x")
        msg = str(info.value)
        assert "is not the file berg downloaded" in msg and msg.endswith("delete it and run `berg fetch fmri-x`")
        ensure_file(REL, berg_dir, show_progress=False)  # the cached verification was dropped: re-hashed, fetched again
        assert url.gets(REL) == 2
    assert path.read_bytes() == data


def test_verify_recorded_ignores_unrecorded_and_outside_files(dirs, tmp_path) -> None:
    _, berg_dir = dirs
    outside = tmp_path / "elsewhere.bin"
    outside.write_bytes(b"x")
    fetch.verify_recorded(outside, berg_dir, "0" * 64)
    fetch.verify_recorded(berg_dir / "never-fetched.bin", berg_dir, "0" * 64)


# ------------------------------------------------------------------------------ model ids in the hints


def test_hints_name_the_model_id(dirs, monkeypatch) -> None:
    _, berg_dir = dirs
    spec = EncoderSpec(model_id="fmri-test-model", family="test", factory="x:y", remote_files=(RemoteFile("a/b.bin"),))
    monkeypatch.setenv("BERG_OFFLINE", "1")
    with pytest.raises(ResourceError, match=r"run `berg fetch fmri-test-model`"):
        fetch_model_files(spec, None, berg_dir, show_progress=False)
    monkeypatch.delenv("BERG_OFFLINE")
    monkeypatch.setenv("BERG_BASE_URL", unused_url())
    with pytest.raises(DownloadError, match=r"run `berg fetch fmri-test-model` again"):
        fetch_model_files(spec, None, berg_dir, show_progress=False)


# ------------------------------------------------------------------------------------ network guard


def test_tests_cannot_reach_remote_hosts(dirs, monkeypatch) -> None:
    import socket
    import urllib.request

    _, berg_dir = dirs
    with pytest.raises(NetworkGuardError, match="a test tried to reach example.com"):
        socket.create_connection(("example.com", 80), timeout=1)
    with pytest.raises(NetworkGuardError, match="192.0.2.1"):
        urllib.request.urlopen("http://192.0.2.1/", timeout=1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with sock, pytest.raises(NetworkGuardError, match="198.51.100.7"):
        sock.connect(("198.51.100.7", 443))
    monkeypatch.delenv("BERG_BASE_URL", raising=False)  # BERG's real bucket
    with pytest.raises(NetworkGuardError, match="amazonaws.com"):
        ensure_file(REL, berg_dir, show_progress=False)


def test_loopback_is_allowed_by_the_guard() -> None:
    assert is_loopback_host("127.0.0.1") and is_loopback_host("localhost") and is_loopback_host("::1")
    assert is_loopback_host(None) and not is_loopback_host("10.0.0.1") and not is_loopback_host("example.com")
