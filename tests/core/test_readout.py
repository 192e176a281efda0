"""``berg_core.LinearReadout``: the one linear readout every family ends with (issue 10, item 1)."""

import math
import subprocess
import sys
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

from berg_core import InvalidParameterError, LinearReadout, ModelLoadError


def reference(x, coef, intercept):
    """X @ coef.T + intercept, one exactly rounded float64 dot product per cell (math.fsum)."""
    return np.array([[math.fsum([*(float(a) * float(w) for a, w in zip(row, c)), float(b)]) for c, b in zip(coef, intercept)]
                     for row in x])


def readout(n_out=5, n_feat=7, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return LinearReadout(rng.standard_normal((n_out, n_feat)).astype(dtype), rng.standard_normal(n_out), [f"o{i}" for i in range(n_out)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch_rows", [1, 4, 1024])
def test_predict_matches_an_exact_reference(dtype, batch_rows):
    r = readout(dtype=dtype)
    x = np.random.default_rng(1).standard_normal((11, 7))
    got = r.predict(x, batch_rows=batch_rows)
    assert got.dtype == np.float32 and got.shape == (11, 5)
    assert r.intercept.dtype == dtype  # the intercept follows coef's precision
    want = reference(np.asarray(x, dtype=dtype), r.coef, r.intercept)
    np.testing.assert_allclose(got, want, rtol=2e-6 if dtype == np.float64 else 2e-5, atol=1e-5)


def test_batches_do_not_change_the_result():
    r = readout(n_out=3, n_feat=4)
    x = np.random.default_rng(2).standard_normal((50, 4))
    one = r.predict(x, batch_rows=1024)
    for rows in (1, 7, 49, 50):
        np.testing.assert_allclose(r.predict(x, batch_rows=rows), one, rtol=1e-6)
    assert r.predict(np.zeros((0, 4))).shape == (0, 3)


def test_select_by_names_or_indices_in_the_order_given():
    r = readout()
    x = np.random.default_rng(3).standard_normal((6, 7))
    full = r.predict(x)
    by_name = r.select(["o4", "o0", "o2"])
    assert by_name.output_names == ("o4", "o0", "o2") and by_name.n_outputs == 3 and by_name.n_features == 7
    np.testing.assert_array_equal(by_name.predict(x), full[:, [4, 0, 2]])
    by_index = r.select(np.array([4, 0, 2]))
    np.testing.assert_array_equal(by_index.coef, by_name.coef)
    assert r.select([]).n_outputs == 0


def test_from_columns_is_a_view_of_feature_major_weights():
    w = np.random.default_rng(4).standard_normal((7, 3)).astype(np.float32)  # (n_features, n_outputs), as HDF5 stores it
    r = LinearReadout.from_columns(w, None, ["a", "b", "c"])
    assert r.coef.shape == (3, 7) and np.shares_memory(r.coef, w)
    assert r.intercept.tolist() == [0.0, 0.0, 0.0]
    x = np.random.default_rng(5).standard_normal((4, 7)).astype(np.float32)
    np.testing.assert_allclose(r.predict(x), reference(x, w.T, np.zeros(3)), rtol=2e-5, atol=1e-5)


@dataclass(frozen=True)
class WithAlpha(LinearReadout):
    alpha: np.ndarray
    per_output: ClassVar[tuple[str, ...]] = ("coef", "intercept", "alpha")
    out_dtype: ClassVar[type] = np.float64


def test_a_subclass_keeps_its_per_output_fields_in_step():
    r = WithAlpha(np.eye(3), np.arange(3.0), ("a", "b", "c"), np.array([10.0, 20.0, 30.0]))
    sub = r.select(["c", "a"])
    assert type(sub) is WithAlpha and sub.alpha.tolist() == [30.0, 10.0] and sub.intercept.tolist() == [2.0, 0.0]
    assert sub.predict(np.ones((1, 3))).dtype == np.float64


def test_bad_uses_are_one_line_errors():
    r = readout()
    with pytest.raises(ModelLoadError, match=r"the readout has no output 'o9' \(it has o0, o1, o2, o3, o4\)"):
        r.select(["o1", "o9"])
    with pytest.raises(InvalidParameterError, match="out of range 0..4"):
        r.select([5])
    with pytest.raises(InvalidParameterError, match="out of range"):
        r.select([-1])
    with pytest.raises(InvalidParameterError, match="names or of integer indices"):
        r.select(["o1", 2])
    with pytest.raises(InvalidParameterError, match=r"features of shape \(2, 6\) do not fit a readout of 7 features"):
        r.predict(np.zeros((2, 6)))
    with pytest.raises(InvalidParameterError, match="batch_rows"):
        r.predict(np.zeros((2, 7)), batch_rows=0)
    with pytest.raises(ModelLoadError, match="do not match"):
        LinearReadout(np.zeros((2, 3)), np.zeros(3), ["a", "b"])
    with pytest.raises(ModelLoadError, match="float32/float64"):
        LinearReadout(np.zeros((2, 3), dtype=int), np.zeros(2), ["a", "b"])
    twice = LinearReadout(np.eye(2), np.zeros(2), ["a", "a"])
    with pytest.raises(InvalidParameterError, match="several outputs named 'a'"):
        twice.select(["a"])
    assert twice.select([1]).output_names == ("a",)


def test_exported_lazily_from_berg_core():
    code = ("import sys, berg_core\nassert 'numpy' not in sys.modules\n"
            "from berg_core import LinearReadout, select_outputs\nimport berg_core.readout, berg_core.selection\n"
            "assert LinearReadout is berg_core.readout.LinearReadout and select_outputs is berg_core.selection.select_outputs\n"
            "assert {'LinearReadout', 'select_outputs'} <= set(berg_core.__all__)\nprint('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
