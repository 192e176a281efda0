"""berg_core.pickled_arrays: big arrays inside pickled .npy dicts located, not read (reference: np.load)."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest

from berg_core.errors import ModelLoadError, UnsafePickleError
from berg_core.pickled_arrays import RawArray, load_npy_lazily


def _save(path, obj, protocol=None):
    if protocol is None:
        np.save(path, obj)
        return path
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|O", "fortran_order": False, "shape": ()})
    holder = np.empty((), dtype=object)
    holder[()] = obj
    with open(path, "wb") as fh:
        fh.write(header.getvalue())
        pickle.dump(holder, fh, protocol=protocol)
    return path


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return {
        "ridge_weights": rng.standard_normal((64, 3000)),
        "ridge_alphas": rng.random(3000),
        "fortran": np.asfortranarray(rng.standard_normal((40, 2000))).astype(">f4"),
        "tiny": np.arange(5),
        "model_name": "facebook/opt-1.3b",
        "layer": 18,
        "stories": ["a", "b"],
    }


@pytest.mark.parametrize("protocol", [None, 3, 4])
def test_big_arrays_are_located_and_equal_np_load(tmp_path, data, protocol):
    path = _save(tmp_path / "w.npy", data, protocol)
    lazy = load_npy_lazily(path, min_bytes=100_000)
    ref = np.load(path, allow_pickle=True).item()
    assert isinstance(lazy["ridge_weights"], RawArray) and isinstance(lazy["fortran"], RawArray)
    assert isinstance(lazy["tiny"], np.ndarray) and isinstance(lazy["ridge_alphas"], np.ndarray)  # 24 kB < min_bytes
    for key in ("ridge_weights", "fortran"):
        raw = lazy[key]
        assert raw.shape == ref[key].shape and raw.dtype.newbyteorder("=") == ref[key].dtype.newbyteorder("=")
        np.testing.assert_array_equal(raw.load(), ref[key])
        np.testing.assert_array_equal(raw.columns().read_columns(100, 250), ref[key][:, 100:250])
    assert lazy["fortran"].fortran and lazy["fortran"].dtype.byteorder == ">"
    np.testing.assert_array_equal(lazy["ridge_alphas"], ref["ridge_alphas"])
    assert (lazy["model_name"], lazy["layer"], lazy["stories"]) == ("facebook/opt-1.3b", 18, ["a", "b"])


def test_shared_array_and_plain_npy(tmp_path, data):
    w = data["ridge_weights"]
    lazy = load_npy_lazily(_save(tmp_path / "s.npy", {"a": w, "b": w}), min_bytes=1000)
    assert lazy["a"] is lazy["b"] and isinstance(lazy["a"], RawArray)
    np.save(tmp_path / "plain.npy", w)
    raw = load_npy_lazily(tmp_path / "plain.npy")
    np.testing.assert_array_equal(raw.load(), w)


def test_unsafe_global_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned",))

    path = _save(tmp_path / "evil.npy", {"ridge_weights": Evil()}, protocol=4)
    with pytest.raises(UnsafePickleError, match="posix.system|os.system|allow-list"):
        load_npy_lazily(path)


def test_truncated_files_are_detected(tmp_path, data):
    path = _save(tmp_path / "w.npy", data)
    blob = path.read_bytes()
    for cut in (len(blob) - 10, len(blob) // 2, 60):
        bad = tmp_path / f"cut{cut}.npy"
        bad.write_bytes(blob[:cut])
        with pytest.raises(ModelLoadError, match="truncated|corrupt"):
            load_npy_lazily(bad, min_bytes=100_000)
    np.save(tmp_path / "plain.npy", data["ridge_weights"])
    short = tmp_path / "plain_cut.npy"
    short.write_bytes((tmp_path / "plain.npy").read_bytes()[:-1])
    with pytest.raises(ModelLoadError, match="truncated"):
        load_npy_lazily(short)
