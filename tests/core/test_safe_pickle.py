"""berg_core.safe_pickle: BERG's pickles load, anything else is refused before it runs."""

from __future__ import annotations

import builtins
import collections
import io
import os
import pickle
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from berg_core.errors import ModelLoadError, UnsafePickleError
from berg_core.safe_pickle import PickledEstimator, load_npy_object, load_pickle


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
    code = ("import sys; from berg_core.safe_pickle import load_pickle; c = load_pickle(sys.argv[1])['clf']; "
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
