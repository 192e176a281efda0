"""berg_core.store.pickled_arrays: big arrays inside pickled .npy dicts located, not read (reference: np.load)."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest

from berg_core.errors import ModelLoadError, UnsafePickleError
from berg_core.store.pickled_arrays import RawArray, load_npy_lazily


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


# ------------------------------------------------------------------ issue 9: the streaming unpickler is as strict

from hostile_pickles import Reduce, holder_pickle, object_npy, object_pointer_pickle, run_guarded, shared_lists  # noqa: E402

LOAD_LAZILY = "from berg_core.store.pickled_arrays import load_npy_lazily\nprint(repr(load_npy_lazily(sys.argv[1]))[:100])"


@pytest.mark.parametrize("dtype_name, via", [
    ("void-object-field", "array"), ("void-object-field", "scalar"), ("object-without-object-flags", "array"),
    ("float-given-fields", "scalar"),
])
def test_a_dtype_that_lies_about_itself_is_refused_not_a_crash(tmp_path, dtype_name, via):
    path = object_npy(tmp_path / "weights.npy", object_pointer_pickle(dtype_name, via))
    line = run_guarded(LOAD_LAZILY, str(path))
    assert line.startswith("BergError UnsafePickleError:") and "dtype" in line, line


def test_shared_lists_in_a_weights_file_are_refused_fast(tmp_path):
    """The payload scan walked lists that share each other 4**20 times (a hang); now each is visited once."""
    path = object_npy(tmp_path / "weights.npy", holder_pickle({"ridge_weights": np.ones((2, 3)), "extra": shared_lists(30, 4)}))
    line = run_guarded(LOAD_LAZILY, str(path), timeout=60)
    assert line.startswith("BergError ModelLoadError:") and "expands to more than" in line, line


def test_a_located_array_whose_shape_overflows_int64_is_refused(tmp_path):
    """(2**17, 2**47 + 1) float64 is 2**20 bytes modulo 2**64: the located block must not be taken for it."""
    payload = np.zeros(2**17)  # 1 MiB, written outside pickle frames
    fn, args, state = payload.__reduce__()
    path = object_npy(tmp_path / "w.npy", holder_pickle({"ridge_weights": Reduce(fn, args, (1, (2**17, 2**47 + 1), *state[2:]))}))
    with pytest.raises(UnsafePickleError, match="more elements than the file has bytes"):
        load_npy_lazily(path, min_bytes=1000)
