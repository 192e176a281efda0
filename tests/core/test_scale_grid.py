"""`berg train --grid`: one `berg train` per cell through the executor, finished cells skipped, a summary table."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest

from berg_core.cli import main


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    for subject in ("A", "B"):
        for layer in (1, 2):
            np.save(tmp_path / f"F_{subject}_{layer}.npy", rng.standard_normal((60, 4)))
        np.save(tmp_path / f"Y_{subject}.npy", rng.standard_normal((60, 5)))
    return tmp_path


GRID = """
[train]
features = "F_{subject}_{layer}.npy"
responses = "Y_{subject}.npy"
test = "48:60"
folds = 3
alphas = "1,10"
permutations = 0
out = "runs/{subject}-l{layer}"

[grid]
subject = ["A", "B"]
layer = [1, 2]
"""


def test_grid_trains_every_cell_as_berg_train_would_and_skips_finished_ones(data, capsys):
    (data / "g.toml").write_text(GRID)
    assert main(["train", "--grid", "g.toml", "--executor", "debug"]) == 0, capsys.readouterr().err
    with open(data / "g-summary.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["subject"], r["layer"], r["out"]) for r in rows] == [
        ("A", "1", "runs/A-l1"), ("A", "2", "runs/A-l2"), ("B", "1", "runs/B-l1"), ("B", "2", "runs/B-l2")]
    # the cell B, layer 2 is exactly `berg train` with those flags
    assert main(["train", "--features", "F_B_2.npy", "--responses", "Y_B.npy", "--test", "48:60", "--folds", "3", "--alphas", "1,10",
                 "--permutations", "0", "--out", "direct", "-q"]) == 0
    for name in ("coef_raw.npy", "cc_raw.npy"):
        assert np.array_equal(np.load(data / "runs/B-l2" / name), np.load(data / "direct" / name))
    assert float(rows[3]["mean_cc"]) == pytest.approx(float(np.mean(np.load(data / "direct" / "cc_raw.npy"))))
    capsys.readouterr()
    stamp = os.stat(data / "runs/A-l1/summary.json").st_mtime_ns
    assert main(["train", "--grid", "g.toml"]) == 0
    assert "4 of 4 cells already trained" in capsys.readouterr().err
    assert os.stat(data / "runs/A-l1/summary.json").st_mtime_ns == stamp


def test_a_failed_cell_is_reported_and_the_others_are_trained(data, capsys):
    (data / "Y_B.npy").write_bytes(b"not a npy file")
    (data / "g.toml").write_text(GRID.replace('layer = [1, 2]', 'layer = [1]'))
    assert main(["train", "--grid", "g.toml", "--executor", "debug"]) == 1
    err = capsys.readouterr().err
    assert "cell subject=B, layer=1 failed: berg train failed:" in err and "Y_B.npy" in err and "log: " in err
    assert "1 of 2 tasks failed" in err.strip().splitlines()[-1]
    assert (data / "runs/A-l1/summary.json").is_file() and not (data / "runs/B-l1").exists()
    assert len(list(csv.DictReader(open(data / "g-summary.csv")))) == 1


@pytest.mark.parametrize("grid,message", [
    (GRID.replace('out = "runs/{subject}-l{layer}"', 'out = "runs/{subject}"'), "two cells write the same folder"),
    (GRID.replace("permutations = 0", "permutations = 0\nno_such_flag = 3"), "cell subject=A, layer=1: unrecognized arguments: --no-such-flag"),
    (GRID.replace('"F_{subject}_{layer}.npy"', '"F_{subj}.npy"'), "uses {subj}, which is not a [grid] key"),
    (GRID.replace("[grid]", "[grids]"), "needs a [train] table"),
    ("[train\n", "is not valid TOML"),
])
def test_bad_grid_files_are_one_line_before_anything_runs(data, capsys, grid, message):
    (data / "g.toml").write_text(grid)
    assert main(["train", "--grid", "g.toml", "--executor", "debug"]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (data / "runs").exists()


def test_train_without_grid_is_unchanged_and_the_executor_needs_a_grid(data, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--responses", "Y_A.npy", "--out", "x"])  # --features is still required without --grid
    assert "required: --features" in capsys.readouterr().err
    assert main(["train", "--features", "F_A_1.npy", "--responses", "Y_A.npy", "--out", "x", "--executor", "debug"]) == 1
    assert "add --grid FILE" in capsys.readouterr().err


def test_an_unreadable_grid_file_is_one_line(data, capsys, monkeypatch):
    """Permission denied (simulated: CI runs as root, which reads any file) is one line, not a traceback."""
    from pathlib import Path

    (data / "g.toml").write_text(GRID)
    real = Path.read_text

    def denied(self, *args, **kwargs):
        if self.name == "g.toml":
            raise PermissionError(13, "Permission denied")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", denied)
    assert main(["train", "--grid", "g.toml", "--executor", "debug"]) == 1
    err = capsys.readouterr().err.strip()
    assert "cannot be read (Permission denied)" in err and len(err.splitlines()) == 1, err
