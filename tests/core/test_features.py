"""berg_core.features.cache: a damaged feature cache entry is never used (issue 9 item 6).

Every single-byte change of an entry must either leave the values intact (bytes zip does not use) or be
detected, discarded and recomputed: the value returned always equals a fresh ``compute()``.
"""

from __future__ import annotations

import io
import warnings
import zipfile

import numpy as np
import pytest

from berg_core.features import cache as features

KEY = {"kind": "test", "backbone": "x", "revision": "r", "layer": 1, "words": features.stimulus_hash(["a", "b"])}


def fresh() -> np.ndarray:
    """What ``compute()`` returns: (12, 8) float32 with distinct values (any changed byte changes a value)."""
    return (np.arange(96, dtype=np.float32).reshape(12, 8) - 40.5) / 7


class Counting:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> np.ndarray:
        self.calls += 1
        return fresh()


def load(compute, **kwargs) -> tuple[np.ndarray, list[warnings.WarningMessage]]:
    """``cached_features`` from disk (memory emptied first), with the warnings it gave."""
    features.clear_memory()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = features.cached_features(KEY, compute, **kwargs)
    return value, [w for w in caught if issubclass(w.category, features.FeatureCacheWarning)]


def clean_entry() -> bytes:
    compute = Counting()
    value, _ = load(compute)
    assert compute.calls == 1 and features.feature_path(KEY).is_file()
    return features.feature_path(KEY).read_bytes()


@pytest.mark.parametrize("mask", [0xFF, 0x01])
def test_every_single_byte_flip_is_harmless_or_detected_and_rebuilt(mask):
    clean = clean_entry()
    path = features.feature_path(KEY)
    detected = 0
    for i in range(len(clean)):
        damaged = bytearray(clean)
        damaged[i] ^= mask
        path.write_bytes(bytes(damaged))
        compute = Counting()
        value, warned = load(compute)
        np.testing.assert_array_equal(value, fresh(), err_msg=f"byte {i} ^ {mask:#x} changed the features")
        assert value.dtype == np.float32 and value.shape == (12, 8)
        assert compute.calls == len(warned) <= 1  # recomputed exactly when it said so
        if warned:
            detected += 1
            assert "recomputing" in str(warned[0].message) and "\n" not in str(warned[0].message)
            assert path.read_bytes() != bytes(damaged)  # the bad entry was replaced
    data_start = clean.index(fresh().tobytes())
    assert detected >= 384  # at least every byte of the 384 data bytes (and most header bytes)
    assert data_start > 0


@pytest.mark.parametrize("cut", [0, 1, 30, 100, 300, -200, -22, -1])
def test_truncated_entries_are_rebuilt(cut):
    clean = clean_entry()
    features.feature_path(KEY).write_bytes(clean[:cut])
    value, warned = load(Counting())
    np.testing.assert_array_equal(value, fresh())
    assert len(warned) == 1


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def entry(value, digest=None) -> dict:
    return {"features": value, "sha256": np.array(features.content_sha256(value) if digest is None else digest)}


@pytest.mark.parametrize("name, content, reason", [
    ("not a zip", b"garbage", "unreadable"),
    ("old .npy format", b"\x93NUMPY" + b"\x00" * 50, "unreadable"),
    ("no checksum", npz_bytes(features=fresh()), "entries"),
    ("extra entry", npz_bytes(**entry(fresh()), other=np.zeros(2)), "entries"),
    ("wrong checksum", npz_bytes(**entry(fresh() * 2, features.content_sha256(fresh()))), "checksum mismatch"),
    ("checksum not a str", npz_bytes(features=fresh(), sha256=np.zeros(3)), "checksum mismatch"),
    ("object array", npz_bytes(features=np.array([{"a": 1}], dtype=object), sha256=np.array("x")), "unreadable"),
    ("structured dtype", npz_bytes(features=np.zeros(3, dtype=[("a", "<f4")]), sha256=np.array("x")), "unreadable"),
], ids=lambda v: v if isinstance(v, str) and len(v) < 20 else "")
def test_unusable_entries_are_discarded_with_a_warning(name, content, reason):
    clean_entry()
    features.feature_path(KEY).write_bytes(content)
    compute = Counting()
    value, warned = load(compute)
    np.testing.assert_array_equal(value, fresh())
    assert compute.calls == 1 and len(warned) == 1 and reason in str(warned[0].message), name
    value, warned = load(compute)  # the rebuilt entry is good
    assert compute.calls == 1 and not warned


def test_huge_header_shape_is_refused_before_allocating():
    clean = clean_entry()
    # rebuild the zip so its CRCs and sizes are consistent: only the header's shape lies
    with zipfile.ZipFile(io.BytesIO(clean)) as zf:
        member = zf.read("features.npy").replace(b"(12, 8)", b"(999999999999, 8)")
        digest = zf.read("sha256.npy")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("features.npy", member)
        zf.writestr("sha256.npy", digest)
    features.feature_path(KEY).write_bytes(buf.getvalue())
    value, warned = load(Counting())
    np.testing.assert_array_equal(value, fresh())
    assert "does not fit" in str(warned[0].message)


def test_expected_dtype_and_shape_are_checked():
    clean_entry()
    other = np.zeros((3, 8), dtype=np.float64)  # a consistent entry of another dtype and shape
    features.feature_path(KEY).write_bytes(npz_bytes(**entry(other)))
    value, warned = load(Counting(), dtype=np.float32)
    np.testing.assert_array_equal(value, fresh())
    assert "dtype float64, expected float32" in str(warned[0].message)
    features.feature_path(KEY).write_bytes(npz_bytes(**entry(other.astype(np.float32))))
    value, warned = load(Counting(), dtype="float32", shape=(12, 8))
    np.testing.assert_array_equal(value, fresh())
    assert "shape (3, 8), expected (12, 8)" in str(warned[0].message)
    value, warned = load(Counting(), dtype="float32", shape=(12, 8))
    assert not warned


def test_checksum_covers_dtype_shape_and_bytes():
    a = fresh()
    assert features.content_sha256(a) == features.content_sha256(a.copy())
    assert features.content_sha256(a) != features.content_sha256(a.reshape(8, 12))
    assert features.content_sha256(a) != features.content_sha256(a.view(np.int32))
    b = a.copy()
    b[3, 4] = np.nextafter(b[3, 4], np.float32(np.inf))
    assert features.content_sha256(a) != features.content_sha256(b)
    assert features.content_sha256(np.asfortranarray(a)) == features.content_sha256(a)  # values, not layout
