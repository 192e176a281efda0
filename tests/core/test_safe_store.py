"""The pickle-free metadata store round-trips BERG-style metadata exactly."""

import numpy as np

from berg_core.store.safe_store import load_tree, save_tree


def test_safe_store_round_trip(tmp_path):
    value = {
        "a": [1, 2.5, float("nan"), None, True, "x", b"\x00\xff"],
        "t": (np.int64(3), np.float32(0.25), np.bool_(False), np.str_("s")),
        "arr": np.arange(6, dtype=np.int16).reshape(2, 3),
        "u": np.array(["ab", "c"]),
        "objs": np.array(["only", "strings"], dtype=object),
        "mixed": np.array([1, "two", None, np.arange(2)], dtype=object),
        3: {"nested": np.array([])},
    }
    save_tree(tmp_path / "x.npz", value)
    back = load_tree(tmp_path / "x.npz")
    assert back["a"][:2] == [1, 2.5] and np.isnan(back["a"][2]) and back["a"][3:] == [None, True, "x", b"\x00\xff"]
    assert [type(v) for v in back["t"]] == [np.int64, np.float32, np.bool_, np.str_] and back["t"][1] == np.float32(0.25)
    assert back["arr"].dtype == np.int16 and back["arr"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert back["u"].tolist() == ["ab", "c"] and back["objs"].dtype == object
    assert back["mixed"][:3].tolist() == [1, "two", None] and back["mixed"][3].tolist() == [0, 1]
    assert back[3]["nested"].shape == (0,)


# ------------------------------------------------------------------ issue 9: small hostile trees cannot blow up the store

import zipfile  # noqa: E402

import pytest  # noqa: E402
from hostile_pickles import run_guarded, self_holding_list, shared_lists  # noqa: E402

from berg_core.errors import ModelLoadError  # noqa: E402


def test_lists_that_share_each_other_are_refused_not_expanded(tmp_path):
    """4**30 leaves from 31 lists: the encoder once grew to gigabytes; now a memoised walk refuses it at once."""
    line = run_guarded("from berg_core.store.safe_store import save_tree\nnode = [0]\nfor _ in range(30):\n    node = [node] * 4\n"
                       "save_tree(sys.argv[1], {'roi': node})", str(tmp_path / "x.npz"), timeout=60)
    assert line.startswith("BergError ModelLoadError:") and "expands to more than" in line, line
    assert not (tmp_path / "x.npz").exists()


@pytest.mark.parametrize("make, match", [
    (self_holding_list, "contains itself"),
    (lambda: {"a": shared_lists(101, 1)}, "nested more than 100 levels"),
])
def test_a_self_holding_or_deep_tree_is_a_load_error_not_a_recursion_error(tmp_path, make, match):
    with pytest.raises(ModelLoadError, match=match):
        save_tree(tmp_path / "x.npz", make())


def test_a_shared_array_is_stored_once(tmp_path):
    w = np.arange(1000.0)
    save_tree(tmp_path / "x.npz", {"a": w, "b": [w, w], "small": shared_lists(3, 2)})
    with zipfile.ZipFile(tmp_path / "x.npz") as zf:
        assert sorted(zf.namelist()) == ["__tree__.npy", "a0.npy"]
    back = load_tree(tmp_path / "x.npz")
    np.testing.assert_array_equal(back["b"][1], w)
    assert back["small"] == [[[[0]] * 2] * 2] * 2
