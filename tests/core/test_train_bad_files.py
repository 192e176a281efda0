"""`berg train` given a bad index or ceiling file: a one-line error, never a traceback (found while typing fit/train.py)."""

import numpy as np
import pytest

from berg_core.cli import main
from berg_core.errors import InvalidParameterError
from berg_core.fit.train import load_matrix, parse_test


def _npz_named_npy(path):
    np.savez(path.with_suffix(".npz"), a=np.arange(3))
    path.write_bytes(path.with_suffix(".npz").read_bytes())
    return path


@pytest.mark.parametrize("kind", ["empty", "npz", "strings", "text words"])
def test_bad_test_file_is_an_invalid_parameter(tmp_path, kind):
    if kind == "empty":
        (path := tmp_path / "t.npy").write_bytes(b"")
    elif kind == "npz":
        path = _npz_named_npy(tmp_path / "t.npy")
    elif kind == "strings":
        np.save(path := tmp_path / "t.npy", np.array(["a", "b"]))
    else:
        (path := tmp_path / "t.txt").write_text("1 2 three\n")
    with pytest.raises(InvalidParameterError, match="--test t"):
        parse_test(str(path), 40)


def test_test_file_mask_and_indices_still_read(tmp_path):
    mask = np.zeros(40, dtype=bool)
    mask[30:] = True
    np.save(tmp_path / "m.npy", mask)
    np.save(tmp_path / "i.npy", np.arange(30, 40))
    (tmp_path / "i.txt").write_text("30, 31 32\n")
    assert parse_test(str(tmp_path / "m.npy"), 40).tolist() == list(range(30, 40))
    assert parse_test(str(tmp_path / "i.npy"), 40).tolist() == list(range(30, 40))
    assert parse_test(str(tmp_path / "i.txt"), 40).tolist() == [30, 31, 32]


def test_npz_named_npy_as_features_is_named(tmp_path):
    with pytest.raises(InvalidParameterError, match=r"a \.npz archive"):
        load_matrix(_npz_named_npy(tmp_path / "f.npy"), what="features")


def test_npz_named_npy_as_noise_ceiling_is_one_line(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "f.npy", rng.standard_normal((40, 3)))
    np.save(tmp_path / "r.npy", rng.standard_normal((40, 2)))
    code = main(["train", "--features", str(tmp_path / "f.npy"), "--responses", str(tmp_path / "r.npy"), "--test", "30:",
                 "--permutations", "0", "--noise-ceiling", str(_npz_named_npy(tmp_path / "c.npy")), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "--noise-ceiling c.npy" in err and ".npz archive" in err
    assert not (tmp_path / "out").exists()
