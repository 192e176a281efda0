"""`berg search --shards 4 --executor slurm` on a real single-node Slurm (tests/slurm/cluster.py) with a tiny GPT-2 backbone.

Run by the `slurm` nox session (`.ci/run` installs slurm-wlm and munge as root). Without Slurm or root the tests skip,
saying why, unless BERG_REQUIRE_SLURM=1 (set by the nox session when it runs as root): then they fail.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cluster import LocalSlurm, missing  # noqa: E402


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
    """A trained sentence encoder on a tiny random GPT-2 (layer 2, mean pooling), as `berg train` writes it."""
    from berg_core.cli import main
    from berg_core.features.backbones import load_backbone, sentence_features
    from berg_core.testing.hf import CORPUS, tiny_gpt2

    tmp = tmp_path_factory.mktemp("enc")
    gpt2 = tiny_gpt2(tmp / "gpt2")
    words = sorted({w.strip(".,!?'") for s in CORPUS for w in s.split() if w.strip(".,!?'")})
    rng = np.random.default_rng(0)
    sents = [" ".join(rng.choice(words, size=rng.integers(3, 9))) + "." for _ in range(80)]
    F = sentence_features(load_backbone(str(gpt2), layer=2), sents, pooling="mean").astype(np.float64)
    np.save(tmp / "F.npy", F)
    np.save(tmp / "Y.npy", F @ rng.standard_normal((F.shape[1], 3)) + rng.standard_normal((80, 3)))
    out = tmp / "enc"
    assert main(["train", "--features", str(tmp / "F.npy"), "--responses", str(tmp / "Y.npy"), "--test", "60:80", "--folds", "3",
                 "--alphas", "1,100", "--permutations", "0", "--backbone", str(gpt2), "--layer", "2", "--pooling", "mean",
                 "--model-id", "lab-tiny_gpt2", "--out", str(out), "--quiet"]) == 0
    return out, words


def corpus(path: Path, words: list[str], n: int = 240) -> Path:
    rng = np.random.default_rng(1)
    lines = [" ".join(rng.choice(words, size=rng.integers(2, 8))) for _ in range(n)]
    lines[10] = lines[50] = lines[n - 40] = "the same sentence again"  # repeats, kept once
    lines[7] = ""
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def berg(args: list[str], env: dict[str, str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "berg_core.cli", *args], env=env, capture_output=True, text=True, timeout=600, **kw)


def read(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def test_slurm_array_equals_single_process_and_a_cancelled_task_resumes(slurm, encoder, tmp_path):
    enc, words = encoder
    text = corpus(tmp_path / "corpus.txt", words)
    env = slurm.env()
    common = ["search", str(enc), "--input", str(text), "--top-k", "5", "--batch-size", "1", "--device", "cpu"]
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
    enc, words = encoder
    text = corpus(tmp_path / "corpus.txt", words, n=60)
    with open(text, "ab") as fh:
        fh.write(b"\xff broken\n")
    env = slurm.env()
    r = berg(["search", str(enc), "--input", str(text), "--output", str(tmp_path / "r.csv"), "--shards", "2", "--executor", "slurm",
              "--retries", "1", "--batch-size", "1"], env)
    assert r.returncode == 1
    assert "retrying 1 failed task(s)" in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if "shard 2/2" in ln and "failed:" in ln]
    assert len(lines) >= 2 and "not valid UTF-8" in lines[0], r.stderr
    log = Path(lines[0].split("log: ")[1].strip())
    assert log.is_file() and "StimulusError" in log.read_text()
    shards = json.loads(json.dumps([p.name for p in (tmp_path / "r.csv.shards" / "shards").glob("*.json")]))
    assert len(shards) == 1  # the good shard is kept for the next run
