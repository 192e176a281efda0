"""BERG's files: safe reading (no sklearn, no plain unpickling), one conversion, metadata without a backbone."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from berg_core import BERG, ModelLoadError
from berg_core.errors import UnsafePickleError
from berg_tuckute import weights
from berg_tuckute.plugin import METADATA_PATH, MODEL_ID, ROIS, WEIGHTS_PATH
from berg_tuckute.testing import write_berg_files


def assert_same(a, b, path="metadata"):
    """Deep equality of BERG metadata values, types included (arrays: dtype kind, shape, values)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), path
        for key in a:
            assert_same(a[key], b[key], f"{path}[{key!r}]")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.shape == b.shape and a.dtype.kind == b.dtype.kind, path
        assert a.tolist() == b.tolist(), path
    else:
        assert type(a) is type(b) and a == b, path


def test_readout_matches_the_sklearn_estimator(berg_files, berg_dir):
    readout = weights.load_readout(berg_dir)
    assert readout.rois == ROIS
    np.testing.assert_array_equal(readout.coef, berg_files.clf.coef_)
    np.testing.assert_array_equal(readout.intercept, berg_files.clf.intercept_)
    np.testing.assert_array_equal(readout.alpha, berg_files.clf.alpha_)
    x = np.random.default_rng(0).standard_normal((7, readout.n_features))
    np.testing.assert_allclose(readout.predict(x), berg_files.clf.predict(x), rtol=1e-12, atol=1e-12)
    sub = readout.select(["lang_LH_netw", "lang_LH_IFG"])
    np.testing.assert_allclose(sub.predict(x), berg_files.clf.predict(x)[:, [5, 1]], rtol=1e-12, atol=1e-12)


def test_converted_once_then_never_unpickled(berg_files, berg_dir, monkeypatch):
    first = weights.load_readout(berg_dir)
    meta = BERG(berg_dir).get_model_metadata(MODEL_ID)
    cached = sorted(p.name for p in (Path(os.environ["BERG_CACHE_DIR"]) / "tuckute").glob("*.npz"))
    assert len(cached) == 2 and cached[0].startswith("metadata-") and cached[1].startswith("readout-")

    import berg_core.store.safe_pickle as safe_pickle

    def refuse(*args, **kwargs):
        raise AssertionError("unpickled again")

    monkeypatch.setattr(safe_pickle, "load_pickle", refuse)
    monkeypatch.setattr(safe_pickle, "load_npy_object", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    again = weights.load_readout(berg_dir)
    np.testing.assert_array_equal(again.coef, first.coef)
    assert_same(meta, BERG(berg_dir).get_model_metadata(MODEL_ID))


def test_a_refetched_new_version_is_converted_again(berg_dir, tmp_path, monkeypatch):
    from berg_core.testing import serve_directory

    bucket = tmp_path / "bucket"
    old_files = write_berg_files(bucket, n_features=32, seed=1)
    with serve_directory(bucket) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        old = weights.load_readout(berg_dir)
        new_files = write_berg_files(bucket, n_features=32, seed=7)  # the bucket now holds another version
        (berg_dir / WEIGHTS_PATH).unlink()
        new = weights.load_readout(berg_dir)
    np.testing.assert_array_equal(old.coef, old_files.clf.coef_)
    np.testing.assert_array_equal(new.coef, new_files.clf.coef_)
    assert not np.allclose(old.coef, new.coef)
    assert len(list((Path(os.environ["BERG_CACHE_DIR"]) / "tuckute").glob("readout-*.npz"))) == 2


def test_loading_needs_no_sklearn(berg_files, berg_dir):
    code = (
        "import sys; sys.modules['sklearn'] = None\n"  # any `import sklearn` now raises ImportError
        "from berg_tuckute.weights import load_readout\n"
        f"r = load_readout({str(berg_dir)!r})\n"
        "print(r.coef.shape, ','.join(r.rois))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy(), timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["(6,", "32)", ",".join(ROIS)]


def test_metadata_without_loading_the_backbone(berg_files, berg_dir):
    code = (
        "import sys, json\n"
        "from berg_core import BERG\n"
        f"m = BERG({str(berg_dir)!r}).get_model_metadata({MODEL_ID!r})\n"
        "heavy = sorted(n for n in ('torch', 'transformers', 'sklearn') if n in sys.modules)\n"
        "print(json.dumps({'heavy': heavy, 'layer': m['optimal_layer'], 'nc': list(m['noise_ceiling'])}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy(), timeout=120)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"heavy": [], "layer": 22, "nc": [0.4577, 0.4525, 0.4522, 0.5154, 0.5789, 0.5592]}


def test_metadata_round_trip_is_exact(berg_files, berg_dir):
    meta = BERG(berg_dir).get_model_metadata(MODEL_ID)
    assert_same(berg_files.metadata, meta)
    assert meta["train_sentences"].dtype == object  # BERG hands out object arrays of str; so do we


def test_truncated_pickle_is_detected(berg_files, berg_dir):
    path = berg_dir / WEIGHTS_PATH
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ModelLoadError, match="truncated or corrupt"):
        weights.load_readout(berg_dir)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_malicious_pickle_is_refused(berg_files, berg_dir):
    (berg_dir / WEIGHTS_PATH).write_bytes(pickle.dumps({"clf": Evil(), "neuroid_order": list(ROIS)}))
    with pytest.raises(UnsafePickleError):
        weights.load_readout(berg_dir)


def test_malicious_metadata_is_refused(berg_files, berg_dir):
    np.save(berg_dir / METADATA_PATH, {"rois": Evil()}, allow_pickle=True)
    with pytest.raises(UnsafePickleError):
        BERG(berg_dir).get_model_metadata(MODEL_ID)


@pytest.mark.parametrize("content, match", [
    ({"neuroid_order": list(ROIS)}, "'clf'"),
    ([1, 2, 3], "expected a dict"),
    ({"clf": {"coef_": 1}, "neuroid_order": list(ROIS), "X_scaler": None, "y_scaler": None}, "coef_"),
])
def test_wrong_pickle_content(berg_files, berg_dir, content, match):
    (berg_dir / WEIGHTS_PATH).write_bytes(pickle.dumps(content))
    with pytest.raises(ModelLoadError, match=match):
        weights.load_readout(berg_dir)


def test_file_without_a_needed_roi(berg_dir):
    write_berg_files(berg_dir, n_features=32, neuroid_order=ROIS[:5])  # no lang_LH_netw row
    with pytest.raises(ModelLoadError, match="lang_LH_netw"):
        weights.load_readout(berg_dir).select(list(ROIS))


def test_rows_and_names_disagree(berg_files, berg_dir):
    bad = {"clf": berg_files.clf, "neuroid_order": list(ROIS[:5]), "X_scaler": None, "y_scaler": None}
    (berg_dir / WEIGHTS_PATH).write_bytes(pickle.dumps(bad, protocol=4))
    with pytest.raises(ModelLoadError, match="do not match"):
        weights.load_readout(berg_dir)


# ------------------------------------------------------------------ issue 9: a lying dtype is refused, not a crash

from hostile_pickles import lying_array, object_npy, object_pointer_pickle, run_guarded  # noqa: E402


@pytest.mark.parametrize("dtype_name", ["object-without-object-flags", "void-object-field"])
def test_a_lying_dtype_in_the_readout_is_refused_not_a_crash(berg_files, berg_dir, dtype_name):
    """neuroid_order as an array whose dtype says "no objects" while numpy reads its bytes as object pointers (SIGSEGV)."""
    bad = {"clf": berg_files.clf, "neuroid_order": lying_array(dtype_name, (len(ROIS),)), "X_scaler": None, "y_scaler": None}
    (berg_dir / WEIGHTS_PATH).write_bytes(pickle.dumps(bad, protocol=4))
    line = run_guarded("from pathlib import Path\nfrom berg_tuckute.weights import load_readout\n"
                       "print(load_readout(Path(sys.argv[1]), show_progress=False).rois)", str(berg_dir))
    assert line.startswith("BergError UnsafePickleError:") and "dtype" in line and "berg fetch" in line, line


def test_a_lying_dtype_in_the_metadata_is_refused_not_a_crash(berg_files, berg_dir):
    object_npy(berg_dir / METADATA_PATH, object_pointer_pickle("object-without-object-flags", "array"))
    line = run_guarded(f"from berg_core import BERG\nprint(BERG(sys.argv[1]).get_model_metadata({MODEL_ID!r}))", str(berg_dir))
    assert line.startswith("BergError UnsafePickleError:") and "dtype" in line, line


@pytest.mark.parametrize("coef, intercept", [
    ("abc", np.zeros(6)),
    ([[1.0] * 32] * 6, np.zeros(6)),  # a nested list, not an array
    (np.zeros((6, 32), dtype=object), np.zeros(6)),
    (np.zeros((6, 32)), {"a": 1}),
])
def test_estimator_arrays_of_the_wrong_kind_are_one_load_error(berg_dir, coef, intercept):
    from sklearn.linear_model import RidgeCV

    clf = RidgeCV()
    clf.coef_, clf.intercept_ = coef, intercept
    (berg_dir / WEIGHTS_PATH).parent.mkdir(parents=True, exist_ok=True)
    (berg_dir / WEIGHTS_PATH).write_bytes(pickle.dumps({"clf": clf, "neuroid_order": list(ROIS), "X_scaler": None, "y_scaler": None}))
    with pytest.raises(ModelLoadError, match="not a float array"):
        weights.read_berg_readout(berg_dir / WEIGHTS_PATH)
