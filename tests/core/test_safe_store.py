"""The pickle-free metadata store round-trips BERG-style metadata exactly."""

import numpy as np

from berg_core.safe_store import load_tree, save_tree


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
