"""berg_core.store.safe_pickle: BERG's pickles load, anything else is refused before it runs."""

from __future__ import annotations

import builtins
import collections
import io
import os
import pickle
import re
import struct
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from berg_core.errors import ModelLoadError, UnsafePickleError
from berg_core.store.safe_pickle import PickledEstimator, load_npy_object, load_pickle


def _berg_like_dict() -> dict:
    rng = np.random.default_rng(0)
    return {
        "ridge_weights": rng.standard_normal((64, 300)),  # float64, > 1000 bytes
        "ridge_alphas": rng.random(300).astype(np.float32),
        "fortran": np.asfortranarray(rng.standard_normal((5, 7))),
        "mask": rng.random(300) > 0.5,
        "names": np.array(["lang_LH_IFG", "lang_LH_MFG"]),
        "layer": np.int64(18),
        "tr": np.float64(2.0),
        "half": np.float32(0.5),
        "model_name": "opt_1_3b",
        "stories": ["a", "b"],
        "fmri": {"subject_id": "UTS01", "n_voxels": 300, "voxel_size_mm": 2.6, "roi": {"AC": np.ones(3, bool)}},
        "pair": (1, "x"),
        "none": None,
        "flag": True,
        "set": {1, 2},
        "frozen": frozenset({"a"}),
        "complex": 1 + 2j,
        "slice": slice(1, 5, 2),
        "ordered": collections.OrderedDict([("b", 1), ("a", 2)]),
        "raw": b"\x00\x01",
    }


def _assert_same(a, b) -> None:
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert type(a) is type(b) and list(a) == list(b)
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, np.generic):
        assert type(a) is type(b) and a == b
    else:
        assert type(a) is type(b) and a == b


def test_npy_dict_round_trip(tmp_path: Path) -> None:
    data = _berg_like_dict()
    np.save(tmp_path / "weights.npy", data)
    out = load_npy_object(tmp_path / "weights.npy")
    _assert_same(data, out)
    assert out["fortran"].flags.f_contiguous


def test_a_big_array_uses_the_pickled_bytes_without_a_copy(tmp_path: Path) -> None:
    """The zero-copy promise of the module docstring: the array's memory is the one bytes record read from the file."""
    w = np.random.default_rng(1).standard_normal((300, 500))
    np.save(tmp_path / "w.npy", {"ridge_weights": w})
    out = load_npy_object(tmp_path / "w.npy")["ridge_weights"]
    np.testing.assert_array_equal(out, w)
    assert isinstance(out.base, bytes) and len(out.base) == w.nbytes


def _npy_with_pickle(path: Path, payload: bytes) -> None:
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "|O", "fortran_order": False, "shape": ()})
        fh.write(payload)


@pytest.mark.parametrize("spelling", [b"numpy.core.", b"numpy._core."])
def test_numpy_1_and_2_module_spellings(tmp_path: Path, spelling: bytes) -> None:
    data = {"w": np.arange(600, dtype=np.float64).reshape(20, 30), "s": np.float32(1.5), "i": np.int16(-3)}
    # protocol 2 names globals as text lines, so the module can be respelled in place
    payload = re.sub(rb"numpy\._?core\.", spelling, pickle.dumps(np.array(data, dtype=object), protocol=2))
    assert spelling + b"multiarray" in payload
    _npy_with_pickle(tmp_path / "m.npy", payload)
    _assert_same(data, load_npy_object(tmp_path / "m.npy"))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_plain_pickle_with_arrays_and_dtype_classes(tmp_path: Path, protocol: int) -> None:
    data = {"a": np.linspace(0, 1, 500), "b": np.ones((3, 4), np.float32), "dt": np.dtype("<f4")}
    if hasattr(np, "dtypes"):
        data["cls"] = np.dtypes.Float64DType
    with open(tmp_path / "p.pkl", "wb") as fh:
        pickle.dump(data, fh, protocol=protocol)
    out = load_pickle(tmp_path / "p.pkl")
    _assert_same({k: v for k, v in data.items() if k in ("a", "b")}, {k: out[k] for k in ("a", "b")})
    assert out["dt"] == np.dtype("<f4")
    if "cls" in data:
        assert out["cls"] is np.dtypes.Float64DType
    assert load_pickle(io.BytesIO(pickle.dumps(data, protocol=protocol)))["a"][-1] == 1.0


def test_numeric_npy_is_read_without_pickle(tmp_path: Path) -> None:
    np.save(tmp_path / "plain.npy", np.arange(5.0))
    np.testing.assert_array_equal(load_npy_object(tmp_path / "plain.npy"), np.arange(5.0))


def _fake_ridge_pickle(module: str, protocol: int) -> bytes:
    """A RidgeCV-looking object pickled under ``module`` without sklearn (fake modules only while dumping)."""
    cls = type("RidgeCV", (), {})
    cls.__module__, cls.__qualname__ = module, "RidgeCV"
    clf = cls()
    clf.coef_ = np.arange(12, dtype=np.float64).reshape(2, 6)
    clf.intercept_ = np.array([0.5, -0.5])
    clf.alpha_ = np.array([1e-3, 1e3])
    clf.alphas = np.logspace(-30, 29, 60)
    clf.alpha_per_target = True
    clf.scoring = None
    clf._sklearn_version = "0.24.2"
    return _dump_as(module, cls, {"clf": clf, "neuroid_order": ["lang_LH_AntTemp", "lang_LH_IFG"], "X_scaler": None,
                                  "y_scaler": None}, protocol)


def _dump_as(module: str, cls: type, obj: object, protocol: int) -> bytes:
    """Pickle ``obj`` while fake ``sklearn`` modules (holding ``cls``) sit in sys.modules; real sklearn is never imported."""
    fakes = {name: types.ModuleType(name) for name in ("sklearn", "sklearn.linear_model", module)}
    fakes[module].RidgeCV = cls
    with pytest.MonkeyPatch.context() as mp:
        for name, mod in fakes.items():
            mp.setitem(sys.modules, name, mod)
        return pickle.dumps(obj, protocol=protocol)


@pytest.mark.parametrize("module", ["sklearn.linear_model._ridge", "sklearn.linear_model.ridge"])
@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_ridgecv_loads_as_attribute_holder(tmp_path: Path, module: str, protocol: int) -> None:
    (tmp_path / "mapping.pkl").write_bytes(_fake_ridge_pickle(module, protocol))
    out = load_pickle(tmp_path / "mapping.pkl")
    clf = out["clf"]
    assert isinstance(clf, PickledEstimator)
    assert clf.pickled_class == f"{module}.RidgeCV"
    np.testing.assert_array_equal(clf.coef_, np.arange(12, dtype=np.float64).reshape(2, 6))
    np.testing.assert_array_equal(clf.intercept_, [0.5, -0.5])
    assert clf.alpha_per_target is True and clf._sklearn_version == "0.24.2"
    assert out["neuroid_order"] == ["lang_LH_AntTemp", "lang_LH_IFG"] and out["X_scaler"] is None


def test_loading_ridgecv_imports_no_sklearn(tmp_path: Path) -> None:
    (tmp_path / "mapping.pkl").write_bytes(_fake_ridge_pickle("sklearn.linear_model._ridge", 4))
    code = ("import sys; from berg_core.store.safe_pickle import load_pickle; c = load_pickle(sys.argv[1])['clf']; "
            "assert c.coef_.shape == (2, 6); assert not [m for m in sys.modules if m.startswith('sklearn')]")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "mapping.pkl")], check=True)


def test_estimator_state_with_dunder_attribute_is_refused() -> None:
    cls = type("RidgeCV", (), {"__getstate__": lambda self: {"__class__": 1}})
    cls.__module__, cls.__qualname__ = "sklearn.linear_model._ridge", "RidgeCV"
    payload = _dump_as("sklearn.linear_model._ridge", cls, cls(), 4)
    with pytest.raises(UnsafePickleError, match="__class__"):
        load_pickle(io.BytesIO(payload))


class _Reduces:
    """Pickles as ``func(*args)``: what a malicious file would contain."""

    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _system_name() -> str:
    return f"{os.system.__module__}.system"  # posix.system on Linux/macOS, nt.system on Windows


@pytest.mark.parametrize("kind", ["system", "eval", "getattr", "popen"])
def test_malicious_pickle_is_refused_and_does_not_run(tmp_path: Path, kind: str) -> None:
    marker = tmp_path / "pwned"
    command = f"touch {marker}"
    evil, refused = {
        "system": (_Reduces(os.system, command), _system_name()),
        "eval": (_Reduces(builtins.eval, f"open({str(marker)!r}, 'w')"), "builtins.eval"),
        "getattr": (_Reduces(getattr, "text", "upper"), "builtins.getattr"),
        "popen": (_Reduces(subprocess.Popen, ["touch", str(marker)]), "subprocess.Popen"),
    }[kind]
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"clf": evil}, protocol=4))
    with pytest.raises(UnsafePickleError) as info:
        load_pickle(tmp_path / "evil.pkl")
    msg = str(info.value)
    assert refused in msg and "not a BERG file" in msg and "berg fetch" in msg
    assert not marker.exists()


def test_malicious_npy_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    np.save(tmp_path / "evil.npy", {"ridge_weights": _Reduces(os.system, f"touch {marker}")})
    with pytest.raises(UnsafePickleError, match=re.escape(_system_name())):
        load_npy_object(tmp_path / "evil.npy")
    assert not marker.exists()


def test_python2_style_global_is_still_checked() -> None:
    payload = b"c__builtin__\neval\n(S'1+1'\ntR."  # protocol 0: __builtin__.eval('1+1')
    with pytest.raises(UnsafePickleError, match="__builtin__.eval"):
        load_pickle(io.BytesIO(payload))


def test_truncated_pickle_is_a_load_error_naming_refetch(tmp_path: Path) -> None:
    np.save(tmp_path / "w.npy", {"w": np.ones(2000)})
    blob = (tmp_path / "w.npy").read_bytes()
    (tmp_path / "w.npy").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ModelLoadError, match="berg fetch") as info:
        load_npy_object(tmp_path / "w.npy")
    assert not isinstance(info.value, UnsafePickleError)
    (tmp_path / "junk.npy").write_bytes(b"not an npy file at all")
    with pytest.raises(ModelLoadError, match="not a valid .npy"):
        load_npy_object(tmp_path / "junk.npy")


# ------------------------------------------------------------------ issue 9: hostile files cannot crash or exhaust berg

from hostile_pickles import (  # noqa: E402 - shared with the tuckute and lebel suites
    AMPLIFIERS,
    BAD_DTYPES,
    HUGE_ALLOCATIONS,
    Reduce,
    deep_lists_pickle,
    deep_tuple_set_pickle,
    holder_pickle,
    object_npy,
    object_pointer_pickle,
    run_guarded,
    self_holding_list,
    shared_lists,
)

LOAD_NPY = "from berg_core.store.safe_pickle import load_npy_object\nprint(repr(load_npy_object(sys.argv[1]))[:100])"


@pytest.mark.parametrize("via", ["array", "scalar"])
@pytest.mark.parametrize("dtype_name", list(BAD_DTYPES))
def test_a_dtype_that_lies_about_itself_is_refused_not_a_crash(tmp_path: Path, dtype_name: str, via: str) -> None:
    """numpy.dtype + a BUILD state declaring an object field (flags "no objects") made numpy read file bytes as a pointer."""
    path = object_npy(tmp_path / "metadata.npy", object_pointer_pickle(dtype_name, via))
    line = run_guarded(LOAD_NPY, str(path))
    assert line.startswith("BergError UnsafePickleError:") and "dtype" in line and "berg fetch" in line, line


def test_numpy_dtype_classes_are_values_not_constructors(tmp_path: Path) -> None:
    """Float64DType() is numpy's shared float64 dtype: a BUILD on it would change float64 for the whole process."""
    state = (3, ">", None, None, None, -1, -1, 0)
    path = tmp_path / "p.pkl"
    path.write_bytes(pickle.dumps({"w": Reduce(np.dtypes.Float64DType, (), state)}, protocol=4))
    line = run_guarded("from berg_core.store.safe_pickle import load_pickle\nimport numpy as np\ntry:\n    load_pickle(sys.argv[1])\n"
                       "finally:\n    assert np.dtype('f8').byteorder == '=', 'float64 was changed'", str(path))
    assert line.startswith("BergError UnsafePickleError:") and "Float64DType" in line, line


def test_a_second_build_on_a_dtype_is_refused() -> None:
    good = pickle.dumps(Reduce(np.dtype, ("f8", False, True), (3, "<", None, None, None, -1, -1, 0)), protocol=2)
    assert good.endswith(pickle.BUILD + pickle.STOP)
    again = b"(K\x03X\x01\x00\x00\x00>NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t" + pickle.BUILD  # (3, '>', ...) BUILD
    assert load_pickle(io.BytesIO(good)) == np.dtype("<f8")
    with pytest.raises(UnsafePickleError, match="did not build"):
        load_pickle(io.BytesIO(good[:-1] + again + pickle.STOP))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_every_dtype_berg_files_use_still_loads_like_np_load(tmp_path: Path, protocol: int) -> None:
    """The dtype/array checks accept what numpy writes (reference: numpy's own unpickler on a trusted file)."""
    data = {
        "f8": np.linspace(0, 1, 400), "be_f4": np.arange(300, dtype=">f4"), "f2": np.ones(3, np.float16),
        "g": np.ones(2, np.longdouble), "c16": np.array([1 + 2j]), "c8": np.array([3j], np.complex64),
        "i1": np.arange(-3, 3, dtype=np.int8), "u2": np.arange(4, dtype=">u2"), "i8": np.arange(3),
        "bool": np.array([True, False]), "U": np.array(["abc", "de"]), "be_U": np.array(["x"], dtype=">U3"),
        "S": np.array([b"ab", b"c"]), "obj": np.array(["a", 1, None], dtype=object), "empty": np.zeros((0, 5)),
        "F": np.asfortranarray(np.arange(12.0).reshape(3, 4)), "0d": np.array(2.5),
        "scalars": [np.float64(1.5), np.int16(-2), np.bool_(True), np.str_("s"), np.bytes_(b"b"), np.complex64(1j),
                    np.float16(0.5), np.uint64(2**63)],
        "dtypes": [np.dtype("<f4"), np.dtype(">i8"), np.dtype("U7"), np.dtype("O"), np.dtype("?")],
        "nested": {"t": (1, (2, (3,))), "fs": frozenset({(1, 2)})},
    }
    path = object_npy(tmp_path / "all.npy", holder_pickle(data, protocol=protocol))
    ref = np.load(path, allow_pickle=True).item()
    out = load_npy_object(path)
    for key in ("scalars", "dtypes", "nested"):
        assert out[key] == ref[key] and [type(x) for x in out[key]] == [type(x) for x in ref[key]]
    for key in data.keys() - {"scalars", "dtypes", "nested"}:
        _assert_same(ref[key], out[key])
        assert out[key].flags.f_contiguous == ref[key].flags.f_contiguous


@pytest.mark.parametrize("name", list(HUGE_ALLOCATIONS))
def test_a_tiny_pickle_asking_for_a_huge_allocation_is_refused_before_allocating(tmp_path: Path, name: str) -> None:
    """Run under a 1 GiB address-space cap: allocating first would surface as a MemoryError."""
    path = tmp_path / "huge.pkl"
    path.write_bytes(HUGE_ALLOCATIONS[name])
    assert path.stat().st_size < 400
    line = run_guarded("from berg_core.store.safe_pickle import load_pickle\nload_pickle(sys.argv[1])", str(path))
    assert line.startswith("BergError") and "MemoryError" not in line and "berg fetch" in line, line


@pytest.mark.parametrize("name", list(AMPLIFIERS))
def test_reusing_one_part_over_and_over_cannot_multiply_a_small_pickle(tmp_path: Path, name: str) -> None:
    """Each call, BUILD and hash is charged what it copies or hashes, against a budget proportional to the file."""
    path = tmp_path / "amplify.pkl"
    path.write_bytes(AMPLIFIERS[name])
    assert path.stat().st_size < 1_000_000
    line = run_guarded("from berg_core.store.safe_pickle import load_pickle\nload_pickle(sys.argv[1])", str(path), timeout=60)
    expected = "SETITEM on a ndarray" if name == "SETITEM on an array" else "reuses its parts over and over"
    assert line.startswith("BergError") and expected in line and "MemoryError" not in line, line


@pytest.mark.parametrize("shape, match", [
    ("shared", "expands to more than"), ("self", "contains itself"), ("deep", "nested more than"),
])
def test_a_small_graph_that_expands_loops_or_nests_deep_is_one_load_error(tmp_path: Path, shape: str, match: str) -> None:
    """Loading then storing (what get_model_metadata does) ends in a BergError, never a hang, 2 GB or RecursionError."""
    if shape == "deep":
        payload = deep_lists_pickle(100_000)
    else:
        payload = holder_pickle({"fmri": {"n_voxels": 3}, "roi": shared_lists(30, 4) if shape == "shared" else self_holding_list()})
    path = object_npy(tmp_path / "metadata.npy", payload)
    assert shape == "deep" or path.stat().st_size < 1000
    line = run_guarded("from berg_core.store.safe_pickle import load_npy_object\nfrom berg_core.store.safe_store import save_tree\n"
                       "save_tree(sys.argv[2], load_npy_object(sys.argv[1]))", str(path), str(tmp_path / "out.npz"), timeout=60)
    assert line.startswith("BergError ModelLoadError:") and match in line, line


@pytest.mark.parametrize("where", ["_reconstruct", "array state", "dtype state"])
def test_a_refusal_message_never_expands_shared_lists(tmp_path: Path, where: str) -> None:
    """Describing the offending value must not repr it: a list of shared lists prints for ever."""
    recon = np.ndarray.__reduce__(np.zeros(1))[0]
    dag = shared_lists(30, 4)
    obj = {
        "_reconstruct": Reduce(recon, (np.ndarray, dag, b"b")),
        "array state": Reduce(recon, (np.ndarray, (0,), b"b"), (1, dag, np.dtype("f8"), False, b"")),
        "dtype state": Reduce(np.dtype, ("f8", False, True), (3, "<", None, None, None, -1, dag, 0)),
    }[where]
    path = tmp_path / "p.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=4))
    line = run_guarded("from berg_core.store.safe_pickle import load_pickle\nload_pickle(sys.argv[1])", str(path), timeout=60)
    assert line.startswith("BergError UnsafePickleError:") and len(line) < 1000, line


def test_deep_nesting_inside_the_unpickler_is_a_load_error_not_a_crash(tmp_path: Path) -> None:
    """Hashing a tuple nested 1e6 deep (a frozenset item) overflowed the C stack."""
    path = tmp_path / "deep.pkl"
    path.write_bytes(deep_tuple_set_pickle(1_000_000))
    line = run_guarded("from berg_core.store.safe_pickle import load_pickle\nload_pickle(sys.argv[1])", str(path))
    assert line.startswith("BergError ModelLoadError:") and "nests tuples" in line, line


# ------------------------------------------------------------------ issue 9 item 10: the unpickler's refusals


@pytest.mark.parametrize("payload, match", [
    (b"ccopy_reg\n_reconstructor\n(c__builtin__\nset\nc__builtin__\nobject\nNtR.", "copyreg._reconstructor"),
    (b"ccopy_reg\n_reconstructor\n(csklearn.linear_model._ridge\nRidgeCV\nc__builtin__\nset\nNtR.", "copyreg._reconstructor"),
    (b"ccopy_reg\n_reconstructor\n(csklearn.linear_model._ridge\nRidgeCV\nc__builtin__\nobject\n(dtR.", "copyreg._reconstructor"),
    (b"ccopyreg\n__newobj__\n(c__builtin__\nobject\ntR.", "copyreg.__newobj__"),
])
def test_copyreg_reconstructors_other_than_the_estimators_are_refused(payload: bytes, match: str) -> None:
    with pytest.raises(UnsafePickleError, match=re.escape(match)):
        load_pickle(io.BytesIO(payload))


def test_copyreg_reconstructor_of_the_estimator_loads() -> None:
    payload = b"ccopy_reg\n_reconstructor\n(csklearn.linear_model._ridge\nRidgeCV\nc__builtin__\nobject\nNtR(dS'alpha_'\nF0.5\nsb."
    est = load_pickle(io.BytesIO(payload))
    assert isinstance(est, PickledEstimator) and est.alpha_ == 0.5


@pytest.mark.parametrize("payload", [b"Pabc\n.", b"\x80\x02X\x01\x00\x00\x00aQ."])
def test_persistent_ids_are_refused(payload: bytes) -> None:
    with pytest.raises(UnsafePickleError, match="persistent ids"):
        load_pickle(io.BytesIO(payload))


@pytest.mark.parametrize("encoding", ["utf-8", "rot13", "hex", "base64", "utf-16"])
def test_codecs_encode_with_an_encoding_other_than_latin1_is_refused(encoding: str) -> None:
    payload = b"\x80\x02c_codecs\nencode\nX\x02\x00\x00\x00hiX" + struct.pack("<I", len(encoding)) + encoding.encode() + b"\x86R."
    with pytest.raises(UnsafePickleError, match=re.escape(f"_codecs.encode with encoding {encoding!r}")):
        load_pickle(io.BytesIO(payload))
    latin1 = payload.replace(b"X" + struct.pack("<I", len(encoding)) + encoding.encode(), b"X\x06\x00\x00\x00latin1")
    assert load_pickle(io.BytesIO(latin1)) == b"hi"


def _npy_v3(path: Path, arr: np.ndarray) -> Path:
    """``arr`` in .npy format 3.0 (utf-8 header with a 4-byte length), written by hand."""
    header = repr({"descr": np.lib.format.dtype_to_descr(arr.dtype), "fortran_order": False, "shape": arr.shape}).encode("utf-8")
    pad = -(len(header) + 1 + 12) % 64
    with open(path, "wb") as fh:
        fh.write(b"\x93NUMPY\x03\x00" + struct.pack("<I", len(header) + pad + 1) + header + b" " * pad + b"\n")
        if arr.dtype.hasobject:
            pickle.dump(arr, fh, protocol=4)
        else:
            fh.write(arr.tobytes())
    return path


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
@pytest.mark.parametrize("content", ["numeric", "dict"])
def test_npy_format_versions_load_like_np_load(tmp_path: Path, version: tuple[int, int], content: str) -> None:
    from berg_core.store.pickled_arrays import RawArray, load_npy_lazily

    arr = np.arange(12.0).reshape(3, 4) if content == "numeric" else np.array({"w": np.arange(5.0), "name": "x"}, dtype=object)
    path = tmp_path / "v.npy"
    if version == (3, 0):
        _npy_v3(path, arr)
    else:
        with open(path, "wb") as fh:
            np.lib.format.write_array(fh, arr, version=version, allow_pickle=True)
    assert path.read_bytes()[6:8] == bytes(version)
    ref = np.load(path, allow_pickle=True)
    ref = ref[()] if ref.shape == () else ref
    for out in (load_npy_object(path), load_npy_lazily(path)):
        out = out.load() if isinstance(out, RawArray) else out
        if content == "numeric":
            np.testing.assert_array_equal(out, ref)
        else:
            assert out.keys() == ref.keys() and out["name"] == "x"
            np.testing.assert_array_equal(out["w"], ref["w"])


def _v1(header: bytes, body: bytes = b"") -> bytes:
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + body


def _v3(header: bytes, length: int | None = None) -> bytes:
    return b"\x93NUMPY\x03\x00" + struct.pack("<I", len(header) if length is None else length) + header


MALFORMED_HEADERS = {
    "bad magic": b"\x93NUMPZ\x01\x00" + b"\x00" * 60,
    "unknown version": b"\x93NUMPY\x09\x00" + b"\x00" * 60,
    "empty": b"",
    "length past the end": b"\x93NUMPY\x01\x00\xff\x7f{}",
    "not a dict": _v1(b"[1, 2, 3]\n"),
    "missing key": _v1(b"{'descr': '<f8', 'shape': (2,)}\n"),
    "negative shape": _v1(b"{'descr': '<f8', 'fortran_order': False, 'shape': (-1,)}\n"),
    "shape of text": _v1(b"{'descr': '<f8', 'fortran_order': False, 'shape': ('a',)}\n"),
    "shape larger than the file": _v1(b"{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000,)}\n"),
    "fortran_order not a bool": _v1(b"{'descr': '<f8', 'fortran_order': 'yes', 'shape': (1,)}\n"),
    "bad descr": _v1(b"{'descr': '<q9', 'fortran_order': False, 'shape': (1,)}\n"),
    "bad structured descr": _v1(b"{'descr': [('a',)], 'fortran_order': False, 'shape': (1,)}\n"),
    "syntax error": _v1(b"{'descr': '<f8', 'fortran_order': False, 'shape': (1,\n"),
    "nested 500 deep": _v1(b"{'descr': '<f8', 'fortran_order': False, 'shape': " + b"(" * 500 + b")" * 500 + b"}\n"),
    "v3 not a dict": _v3(b"[1]\n"),
    "v3 missing key": _v3(b"{'descr': '<f8'}\n"),
    "v3 invalid utf-8": _v3(b"{'descr': '\xff'}\n"),
    "v3 huge length": _v3(b"{}", length=0xFFFFFFFF),
    "v3 shape of text": _v3(b"{'descr': '<f8', 'fortran_order': False, 'shape': 'ab'}\n"),
    "v3 bad descr": _v3(b"{'descr': 5, 'fortran_order': False, 'shape': ()}\n"),
}


@pytest.mark.parametrize("name", list(MALFORMED_HEADERS))
def test_a_malformed_npy_header_is_one_load_error(tmp_path: Path, name: str) -> None:
    from berg_core.store.pickled_arrays import load_npy_lazily

    path = tmp_path / "bad.npy"
    path.write_bytes(MALFORMED_HEADERS[name])
    for load in (load_npy_object, load_npy_lazily):
        with pytest.raises(ModelLoadError, match="berg fetch"):
            load(path)
