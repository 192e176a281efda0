"""`berg search --shards 4 --executor slurm` on a real single-node Slurm (tests/slurm/cluster.py) with a tiny GPT-2 backbone.

Run by the `slurm` nox session (`.ci/run` installs slurm-wlm and munge as root). Without Slurm or root the tests skip,
saying why, unless BERG_REQUIRE_SLURM=1 (set by the nox session when it runs as root): then they fail.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cluster import LocalSlurm, missing  # noqa: E402
from tiny_encoder import tiny_sentence_encoder, write_corpus  # noqa: E402


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    why = missing()
    if why:
        if os.environ.get("BERG_REQUIRE_SLURM") == "1":
            pytest.fail(f"the slurm session needs a local Slurm: {why}")
        pytest.skip(f"no local Slurm: {why}")
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"))
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return tiny_sentence_encoder(tmp_path_factory.mktemp("enc"))


def berg(args: list[str], env: dict[str, str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "berg_core.cli", *args], env=env, capture_output=True, text=True, timeout=600, **kw)


def read(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def test_slurm_array_equals_single_process_and_a_cancelled_task_resumes(slurm, encoder, tmp_path):
    enc = encoder
    text = write_corpus(tmp_path / "corpus.txt", 240)
    env = slurm.env()
    # the model's default batching: exactness comes from shards starting on the single pass's chunk boundaries
    common = ["search", str(enc), "--input", str(text), "--top-k", "5", "--chunk-size", "16", "--device", "cpu"]
    one = berg([*common, "--output", str(tmp_path / "one.csv")], env)
    assert one.returncode == 0, one.stderr

    # 4 array tasks, one at a time; cancel the last one while it waits
    out = tmp_path / "many.csv"
    argv = [*common, "--output", str(out), "--shards", "4", "--executor", "slurm", "--partition", slurm.partition,
            "--array-parallelism", "1", "--time", "10"]
    proc = subprocess.Popen([sys.executable, "-m", "berg_core.cli", *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    cancelled = None
    end = time.monotonic() + 120
    while cancelled is None and time.monotonic() < end and proc.poll() is None:
        q = subprocess.run(["squeue", "-h", "-r", "-o", "%i %T", "-n", "berg-search"], env=env, capture_output=True, text=True)
        tasks = dict(line.split()[:2] for line in q.stdout.splitlines() if line.strip())
        last = [t for t, state in tasks.items() if t.endswith("_3") and state == "PENDING"]
        if last:
            subprocess.run(["scancel", last[0]], env=env, check=True)
            cancelled = last[0]
        time.sleep(0.2)
    _, err = proc.communicate(timeout=600)
    assert cancelled, f"no pending task 4 to cancel\n{err}"
    assert proc.returncode == 1, err
    assert "shard 4/4" in err and "without a result (cancelled" in err and "log: " in err, err
    assert "1 of 4 tasks failed" in err.strip().splitlines()[-1]
    assert not out.exists()

    again = berg(argv, env)
    assert again.returncode == 0, again.stderr
    assert "3 of 4 shards already finished" in again.stderr and "submitted 1 task(s)" in again.stderr, again.stderr
    assert read(out) == read(tmp_path / "one.csv")
    assert out.read_bytes() == (tmp_path / "one.csv").read_bytes()
    rows = read(out)
    assert sum(r[3] == "the same sentence again" for r in rows if r[0] == rows[1][0] and r[1] == "drive") <= 1
    logs = list((tmp_path / "many.csv.shards" / "logs").rglob("*_log.err"))
    assert len(logs) >= 4


def test_failed_slurm_task_reports_its_log_and_retries(slurm, encoder, tmp_path):
    """A task that fails (a bad byte in its shard) is reported with its log; --retries 1 resubmits only it."""
    enc = encoder
    text = write_corpus(tmp_path / "corpus.txt", 60)
    with open(text, "ab") as fh:
        fh.write(b"\xff broken\n")
    env = slurm.env()
    r = berg(["search", str(enc), "--input", str(text), "--output", str(tmp_path / "r.csv"), "--shards", "2", "--executor", "slurm",
              "--retries", "1", "--chunk-size", "8"], env)
    assert r.returncode == 1
    assert "retrying 1 failed task(s)" in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if "shard 2/2" in ln and "failed:" in ln]
    assert len(lines) >= 2 and "not valid UTF-8" in lines[0], r.stderr
    log = Path(lines[0].split("log: ")[1].strip())
    assert log.is_file() and "StimulusError" in log.read_text()
    shards = [p.name for p in (tmp_path / "r.csv.shards" / "shards").glob("*.json")]
    assert len(shards) == 1  # the good shard is kept for the next run


def test_slurm_sharded_encode_writes_the_rows_in_line_order(slurm, encoder, tmp_path):
    """`berg encode --shards 3 --executor slurm`: one .npy equal to the one-pass output (batch size 1: batch-free numbers)."""
    import numpy as np

    text = tmp_path / "big.txt"
    text.write_text("\n".join(line for line in write_corpus(tmp_path / "c.txt", 90).read_text().splitlines() if line.strip()) + "\n")
    env = slurm.env()
    common = ["encode", str(encoder), "--input", str(text), "--batch-size", "1", "--device", "cpu"]
    one = berg([*common, "--output", str(tmp_path / "one.npy")], env)
    assert one.returncode == 0, one.stderr
    many = berg([*common, "--output", str(tmp_path / "many.npy"), "--shards", "3", "--executor", "slurm"], env)
    assert many.returncode == 0, many.stderr
    assert "submitted 3 task(s)" in many.stderr
    a, b = np.load(tmp_path / "one.npy"), np.load(tmp_path / "many.npy")
    assert a.shape == (89, 3) and np.array_equal(a, b)
