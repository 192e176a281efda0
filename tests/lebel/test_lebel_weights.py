"""berg_lebel.weights: BERG's pickled weights/metadata -> cached HDF5/npz; subset reads equal slicing."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from lebel_helpers import N_VOXELS

from berg_core.errors import ModelLoadError, UnsafePickleError
from berg_core.features import cache as features
from berg_core.store.fetch import read_manifest
from berg_core.store.h5matrix import matrix_info
from berg_core.testing import copy_into_bucket, serve_directory
from berg_lebel import weights as wio
from berg_lebel.plugin import METADATA_FILE, WEIGHTS_FILE
from berg_lebel.testing import write_streamed_weights_npy

pytestmark = pytest.mark.usefixtures("berg_tree")


def berg_dir() -> Path:
    return Path(os.environ["BERG_DIR"])


def test_subset_load_equals_slicing_the_full_matrix(berg_tree):
    w, _ = berg_tree["UTS01"]
    cols = np.array([0, 5, 6, 7, 30, 60])
    got = wio.load_weight_columns("UTS01", berg_dir(), cols, show_progress=False)
    assert got.dtype == np.float32 and got.shape == (128, 6)
    np.testing.assert_array_equal(got, w[:, cols].astype(np.float32))
    np.testing.assert_array_equal(wio.load_weight_columns("UTS01", berg_dir(), None, show_progress=False), w.astype(np.float32))
    h5 = wio.converted_weights("UTS01", berg_dir(), show_progress=False)
    info = matrix_info(h5)
    assert info.shape == (128, N_VOXELS["UTS01"]) and info.attrs["source_id"].startswith("sha256:")
    assert h5.parent == Path(os.environ["BERG_CACHE_DIR"]) / "lebel"


def test_streamed_conversion_equals_the_materialising_fallback(berg_tree, monkeypatch):
    """The streaming path (array located in the pickle) and the allow-list unpickler path agree."""
    import berg_core.store.pickled_arrays as pa

    w, _ = berg_tree["UTS02"]
    calls = []
    real = pa.load_npy_lazily

    def spy(path, min_bytes=pa.MIN_BYTES):
        out = real(path, min_bytes=1000)
        calls.append(type(out["ridge_weights"]).__name__)
        return out

    monkeypatch.setattr(pa, "load_npy_lazily", spy)
    streamed = wio.load_weight_columns("UTS02", berg_dir(), None, show_progress=False)
    assert calls == ["RawArray"]

    def unsupported(path, min_bytes=0):
        raise pa.LazyLoadUnsupported("forced")

    monkeypatch.setattr(pa, "load_npy_lazily", unsupported)
    os.unlink(wio.converted_weights("UTS02", berg_dir(), show_progress=False))
    fallback = wio.load_weight_columns("UTS02", berg_dir(), None, show_progress=False)
    np.testing.assert_array_equal(streamed, w.astype(np.float32))
    np.testing.assert_array_equal(fallback, streamed)


def test_benchmark_writer_file_converts_like_np_save(tmp_path):
    """The streamed writer (used for the 6 GB benchmark file) gives BERG's format: same bytes as np.save."""
    from berg_lebel.testing import write_weights_npy

    w = np.random.default_rng(4).standard_normal((16, 5000))
    a = write_weights_npy(tmp_path / "a.npy", w, alphas=np.ones(5000))
    b = write_streamed_weights_npy(tmp_path / "b.npy", w.shape, lambda r0, r1: w[r0:r1], rows_per_block=3)
    assert a.read_bytes() == b.read_bytes()


def test_metadata_roundtrip_equals_np_load(berg_tree):
    ref = np.load(berg_dir() / METADATA_FILE.format(subject="UTS01"), allow_pickle=True).item()
    for _ in range(2):  # converted, then read from the cache
        meta = wio.load_metadata_dict("UTS01", berg_dir(), show_progress=False)
        assert meta.keys() == ref.keys() and meta["fmri"] == ref["fmri"]
        assert meta["roi"].keys() == ref["roi"].keys()
        for name, mask in ref["roi"].items():
            assert meta["roi"][name].dtype == bool
            np.testing.assert_array_equal(meta["roi"][name], mask)
        for key, value in ref["encoding_model"].items():
            np.testing.assert_array_equal(meta["encoding_model"][key], value)
            assert type(meta["encoding_model"][key]) is type(value)
    assert list((Path(os.environ["BERG_CACHE_DIR"]) / "lebel").glob("metadata_UTS01.*.npz"))


def test_truncated_source_is_detected(berg_tree):
    src = berg_dir() / WEIGHTS_FILE.format(subject="UTS01")
    src.write_bytes(src.read_bytes()[: src.stat().st_size - 100])
    with pytest.raises(ModelLoadError, match="truncated.*re-fetch"):
        wio.load_weight_columns("UTS01", berg_dir(), np.array([0]), show_progress=False)


def test_unsafe_weights_pickle_is_refused(berg_tree):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    np.save(berg_dir() / WEIGHTS_FILE.format(subject="UTS02"), {"ridge_weights": Evil()}, allow_pickle=True)
    with pytest.raises(UnsafePickleError):
        wio.load_weight_columns("UTS02", berg_dir(), np.array([0]), show_progress=False)


def test_corrupt_converted_file_is_rebuilt(berg_tree):
    import h5py

    w, _ = berg_tree["UTS01"]
    h5 = wio.converted_weights("UTS01", berg_dir(), show_progress=False)
    with h5py.File(h5, "r") as fh:
        offset = fh["matrix"].id.get_chunk_info(0).byte_offset
    data = bytearray(h5.read_bytes())
    data[offset + 64] ^= 0xFF
    h5.write_bytes(bytes(data))
    got = wio.load_weight_columns("UTS01", berg_dir(), np.array([1, 2]), show_progress=False)
    np.testing.assert_array_equal(got, w[:, [1, 2]].astype(np.float32))


def test_source_deleted_after_conversion_is_not_fetched_again(berg_tree, monkeypatch):
    w, _ = berg_tree["UTS01"]
    wio.converted_weights("UTS01", berg_dir(), show_progress=False)
    wio.load_metadata_dict("UTS01", berg_dir(), show_progress=False)
    assert WEIGHTS_FILE.format(subject="UTS01") in read_manifest(berg_dir())
    os.unlink(berg_dir() / WEIGHTS_FILE.format(subject="UTS01"))
    os.unlink(berg_dir() / METADATA_FILE.format(subject="UTS01"))
    monkeypatch.setenv("BERG_OFFLINE", "1")  # any fetch attempt would raise
    np.testing.assert_array_equal(wio.load_weight_columns("UTS01", berg_dir(), np.array([3]), show_progress=False),
                                  w[:, [3]].astype(np.float32))
    assert wio.load_metadata_dict("UTS01", berg_dir(), show_progress=False)["fmri"]["subject_id"] == "UTS01"


def test_missing_files_are_fetched_from_the_mirror(tmp_path, monkeypatch, berg_tree):
    bucket = tmp_path / "bucket"
    for s in ("UTS01",):
        for rel in (WEIGHTS_FILE.format(subject=s), METADATA_FILE.format(subject=s)):
            copy_into_bucket(berg_dir() / rel, bucket, rel)
    empty = tmp_path / "fresh_berg"
    with serve_directory(bucket) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        got = wio.load_weight_columns("UTS01", empty, np.array([4]), show_progress=False)
        assert url.gets(WEIGHTS_FILE.format(subject="UTS01")) == 1
    np.testing.assert_array_equal(got, berg_tree["UTS01"][0][:, [4]].astype(np.float32))
    features.clear_memory()


def test_berg_fetch_downloads_and_converts(tmp_path, monkeypatch, berg_tree, capsys):
    from berg_core.cli import main

    bucket = tmp_path / "bucket"
    for rel in (WEIGHTS_FILE.format(subject="UTS02"), METADATA_FILE.format(subject="UTS02")):
        copy_into_bucket(berg_dir() / rel, bucket, rel)
    fresh = tmp_path / "fresh_berg"
    monkeypatch.setenv("BERG_DIR", str(fresh))
    with serve_directory(bucket) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        assert main(["fetch", "fmri-lebel2023-opt_1_3b", "--subject", "UTS02", "--quiet", "--no-backbone"]) == 0
    assert (fresh / WEIGHTS_FILE.format(subject="UTS02")).is_file()
    cache = Path(os.environ["BERG_CACHE_DIR"]) / "lebel"
    h5 = list(cache.glob("weights_UTS02.*.h5"))
    assert len(h5) == 1 and matrix_info(h5[0]).shape == (128, N_VOXELS["UTS02"])
    assert list(cache.glob("metadata_UTS02.*.npz"))
    assert "weights_UTS02.npy" in capsys.readouterr().out


# ------------------------------------------------------------------ issue 9: hostile files are one BergError line

from hostile_pickles import (  # noqa: E402
    deep_lists_pickle,
    holder_pickle,
    object_npy,
    object_pointer_pickle,
    run_guarded,
    self_holding_list,
    shared_lists,
)

_WEIGHTS = ("from pathlib import Path\nfrom berg_lebel import weights as wio\n"
            "wio.load_weight_columns('UTS01', Path(sys.argv[1]), None, show_progress=False)")
_WEIGHTS_WHOLE_FILE = ("import berg_core.store.pickled_arrays as pa\n"
                       "def unsupported(*args, **kwargs):\n    raise pa.LazyLoadUnsupported('forced')\n"
                       "pa.load_npy_lazily = unsupported\n" + _WEIGHTS)
_METADATA = ("from pathlib import Path\nfrom berg_lebel import weights as wio\n"
             "wio.load_metadata_dict('UTS01', Path(sys.argv[1]), show_progress=False)")


@pytest.mark.parametrize("statement", [_WEIGHTS, _WEIGHTS_WHOLE_FILE, _METADATA], ids=["streamed", "whole-file", "metadata"])
@pytest.mark.parametrize("dtype_name, via", [
    ("void-object-field", "array"), ("void-object-field", "scalar"), ("object-without-object-flags", "array"),
])
def test_a_lying_dtype_is_refused_in_every_conversion_not_a_crash(statement, dtype_name, via):
    """A ~300-byte file of allow-listed globals made numpy read file bytes as an object pointer (SIGSEGV)."""
    rel = METADATA_FILE if statement is _METADATA else WEIGHTS_FILE
    object_npy(berg_dir() / rel.format(subject="UTS01"), object_pointer_pickle(dtype_name, via))
    line = run_guarded(statement, str(berg_dir()))
    assert line.startswith("BergError UnsafePickleError:") and "dtype" in line and "berg fetch" in line, line


@pytest.mark.parametrize("statement", [_WEIGHTS, _METADATA], ids=["weights", "metadata"])
def test_lists_that_share_each_other_are_refused_not_walked_for_ever(statement):
    """~500 bytes expanding to 4**30 leaves: the payload scan hung, the metadata encoder grew to gigabytes."""
    rel = METADATA_FILE if statement is _METADATA else WEIGHTS_FILE
    path = object_npy(berg_dir() / rel.format(subject="UTS01"),
                      holder_pickle({"ridge_weights": np.ones((4, 3)), "fmri": {"n_voxels": 3}, "roi": shared_lists(30, 4)}))
    assert path.stat().st_size < 1000
    line = run_guarded(statement, str(berg_dir()), timeout=60)
    assert line.startswith("BergError ModelLoadError:") and "expands to more than" in line, line


@pytest.mark.parametrize("payload, match", [
    (lambda: holder_pickle({"fmri": {"n_voxels": 3}, "roi": self_holding_list()}), "contains itself"),
    (lambda: deep_lists_pickle(50_000), "nested more than"),
])
def test_self_holding_or_deep_metadata_is_a_load_error(payload, match):
    object_npy(berg_dir() / METADATA_FILE.format(subject="UTS01"), payload())
    with pytest.raises(ModelLoadError, match=match):
        wio.load_metadata_dict("UTS01", berg_dir(), show_progress=False)


def test_ridge_weights_that_are_not_a_matrix_are_refused():
    object_npy(berg_dir() / WEIGHTS_FILE.format(subject="UTS01"), holder_pickle({"ridge_weights": [[1.0, 2.0]] * 3}))
    with pytest.raises(ModelLoadError, match="ridge_weights is a list"):
        wio.load_weight_columns("UTS01", berg_dir(), None, show_progress=False)
