"""Scale-out: byte-range shards, exact merge, content-keyed resume, failure reports, the executor flags (local/debug)."""

from __future__ import annotations

import csv
import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from berg_core import BERG, InvalidParameterError
from berg_core.cli import main
from berg_core.errors import BergError
from berg_core.scale.executor import ExecutorConfig, TasksFailedError, parse_time_min, run_tasks
from berg_core.search import DRIVE, ExtremesTracker, iter_corpus
from berg_core.search.shard import Histogram, iter_range, plan_ranges

MODEL = "test-sentence_length"  # tests/plugins/berg_testplugin: response = len(sentence) * (1, 2, 3)


def corpus_lines(seed: int, n: int = 120) -> list[str]:
    """Many repeated sentences and equal lengths (ties), blank lines, a BOM on line 1."""
    rng = random.Random(seed)
    words = ["a", "bb", "ccc", "dd", "e", "ffff", "gg"]
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 4))) if rng.random() > 0.1 else "" for _ in range(n)]
    lines[0] = "\ufeff" + (lines[0] or "zz")
    return lines


def write(path: Path, lines: list[str]) -> Path:
    path.write_bytes("\n".join(lines).encode("utf-8") + b"\n")
    return path


def brute_force(numbered: list[tuple[int, str]], columns: list[str], k: int) -> list[tuple]:
    """Independent ranking: len(text) * (1, 2, 3); first occurrence of a text; ties by line."""
    first: dict[str, int] = {}
    for line, text in numbered:
        first.setdefault(text, line)
    out = []
    for j, column in enumerate(columns):
        items = [(len(text) * (j + 1), line, text) for text, line in first.items()]
        for direction, ranked in ((DRIVE, sorted(items, key=lambda t: (-t[0], t[1]))[:k]),
                                  ("suppress", sorted(items, key=lambda t: (t[0], t[1]))[:k])):
            out += [(column, direction, rank, text, line) for rank, (_, line, text) in enumerate(ranked, start=1)]
    return out


# ---------------------------------------------------------------------------------------- shards


@pytest.mark.parametrize("seed", range(40))
def test_byte_ranges_cover_the_corpus_once_with_its_line_numbers(tmp_path, seed):
    rng = random.Random(seed)
    lines = ["x" * rng.randint(0, 6) for _ in range(rng.randint(0, 25))]
    data = "\n".join(lines) + ("\n" if rng.random() < 0.5 else "")
    path = tmp_path / "c.txt"
    path.write_bytes(data.encode())
    want = list(iter_corpus(path))
    for n in range(1, 9):
        ranges = plan_ranges(path, n)
        assert len(ranges) == n and ranges[0].start == 0 and ranges[-1].end == len(data.encode())
        assert all(a.end == b.start for a, b in zip(ranges, ranges[1:]))
        assert [x for r in ranges for x in iter_range(path, r)] == want


@pytest.mark.parametrize("align", [1, 3, 8])
def test_shards_start_on_chunk_boundaries_of_the_single_pass(tmp_path, align):
    """Each shard's first sentence is sentence ``m * align`` of the corpus: its chunks are the single pass's chunks."""
    lines = corpus_lines(align, n=200)
    lines[5] = "\u00a0\u2003"  # Unicode blanks: a blank line for iter_corpus too
    path = write(tmp_path / "c.txt", lines)
    numbers = [line for line, _ in iter_corpus(path)]
    for n in (2, 5, 9):
        ranges = plan_ranges(path, n, align=align)
        assert [x for r in ranges for x in iter_range(path, r)] == list(iter_corpus(path))
        for r in ranges[1:]:
            first = [line for line, _ in iter_range(path, r)][:1]
            if first:
                assert numbers.index(first[0]) % align == 0, (n, r)


@pytest.mark.parametrize("k", [1, 4, 30])
@pytest.mark.parametrize("parts", [1, 2, 5, 13])
def test_merged_trackers_equal_one_pass(k, parts):
    rng = np.random.default_rng(k * 7 + parts)
    texts = [f"s{rng.integers(0, 30)}" for _ in range(300)]
    values = {t: rng.integers(-3, 4, size=2).astype(np.float32) for t in set(texts)}  # many ties, many repeats
    rows = np.stack([values[t] for t in texts])
    lines = list(range(5, 305))
    whole = ExtremesTracker(["a", "b"], k)
    whole.add(texts, lines, rows)
    cuts = sorted(rng.choice(np.arange(1, 300), size=parts - 1, replace=False).tolist()) if parts > 1 else []
    states = []
    for lo, hi in zip([0, *cuts], [*cuts, 300]):
        part = ExtremesTracker(["a", "b"], k)
        part.add(texts[lo:hi], lines[lo:hi], rows[lo:hi])
        states.append(json.loads(json.dumps(part.state())))  # through JSON, as the shard files
    random.Random(parts).shuffle(states)
    merged = ExtremesTracker.merged(states)
    key = [(h.column, h.direction, h.rank, h.sentence, h.line, h.responses.tolist()) for h in merged.hits()]
    assert key == [(h.column, h.direction, h.rank, h.sentence, h.line, h.responses.tolist()) for h in whole.hits()]
    assert merged.n_seen == 300


def test_histogram_counts_add_up_to_numpy_reference():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(500, 2)).astype(np.float32)
    parts = [Histogram(["a", "b"], 0.25) for _ in range(3)]
    for part, rows in zip(parts, np.array_split(data, 3)):
        part.add(rows)
    merged = Histogram.merged([json.loads(json.dumps(p.state())) for p in parts])
    for j in range(2):
        edges = np.arange(-40, 41) * 0.25
        want, _ = np.histogram(data[:, j].astype(np.float64), bins=edges)
        got = np.array([merged.counts[j].get(b, 0) for b in range(-40, 40)])
        assert got.tolist() == want.tolist()


# ---------------------------------------------------------------------------------------- berg search --shards


def run_search(tmp_path: Path, corpus: Path, out: Path, *extra: str, capsys=None) -> list[list[str]]:
    code = main(["search", MODEL, "--input", str(corpus), "--top-k", "3", "--output", str(out), "--chunk-size", "4", *extra])
    err = capsys.readouterr().err if capsys else ""
    assert code == 0, err
    with open(out, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


@pytest.mark.parametrize("executor,shards", [("debug", 4), ("debug", 1), ("local", 3), ("debug", 200)])
def test_sharded_search_equals_single_process(tmp_path, capsys, executor, shards):
    lines = corpus_lines(shards)
    corpus = write(tmp_path / "corpus.txt", lines)
    one = run_search(tmp_path, corpus, tmp_path / "one.csv", "--quiet", capsys=capsys)
    many = run_search(tmp_path, corpus, tmp_path / "many.csv", "--shards", str(shards), "--executor", executor, "--quiet", capsys=capsys)
    assert many == one
    assert (tmp_path / "one.csv").read_bytes() == (tmp_path / "many.csv").read_bytes()
    numbered = [(i, t.removeprefix("\ufeff")) for i, t in enumerate(lines, start=1) if t.strip()]
    assert [(r[0], r[1], int(r[2]), r[3], int(r[7])) for r in many[1:]] == brute_force(numbered, ["roi_a", "roi_b", "roi_c"], 3)
    hist = list(csv.reader(open(tmp_path / "many.csv.shards" / "histogram.csv", encoding="utf-8")))
    assert sum(int(r[3]) for r in hist[1:] if r[0] == "roi_a") == len(numbered)


def test_rerun_runs_only_unfinished_shards_and_a_changed_corpus_starts_afresh(tmp_path, capsys):
    corpus = write(tmp_path / "corpus.txt", corpus_lines(1))
    out = tmp_path / "r.csv"
    first = run_search(tmp_path, corpus, out, "--shards", "4", "--executor", "debug", capsys=capsys)
    shards = sorted((tmp_path / "r.csv.shards" / "shards").glob("search-*.json"))
    assert len(shards) == 4
    shards[2].unlink()  # as if task 3 had been killed
    stamps = {p: p.stat().st_mtime_ns for p in shards if p.exists()}
    again = run_search(tmp_path, corpus, out, "--shards", "4", "--executor", "debug", capsys=None)
    err = capsys.readouterr().err
    assert again == first
    assert "3 of 4 shards already finished" in err and "tasks: 1 done, 0 running, 0 pending" in err
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # the finished shards were not redone
    with open(corpus, "ab") as fh:
        fh.write(b"an entirely new and much longer last sentence\n")
    run_search(tmp_path, corpus, out, "--shards", "4", "--executor", "debug", capsys=None)
    assert "already finished" not in capsys.readouterr().err
    assert len(list((tmp_path / "r.csv.shards" / "shards").glob("search-*.json"))) == 8  # 4 new keys beside the old 4


def test_failed_shard_is_reported_with_its_log_and_the_merge_names_it(tmp_path, capsys):
    lines = corpus_lines(3, n=80)
    corpus = tmp_path / "corpus.txt"
    data = "\n".join(lines).encode() + b"\n"
    cut = len(data) * 7 // 8
    corpus.write_bytes(data[:cut] + b"\xff\xfe bad bytes\n" + data[cut:])  # not UTF-8: the last shard fails
    code = main(["search", MODEL, "--input", str(corpus), "--output", str(tmp_path / "r.csv"), "--shards", "4", "--executor", "debug",
                 "--chunk-size", "4", "--top-k", "3"])
    err = capsys.readouterr().err
    assert code == 1
    assert "shard 4/4" in err and "not valid UTF-8" in err and "log: " in err
    assert "1 of 4 tasks failed" in err.splitlines()[-1]
    assert not (tmp_path / "r.csv").exists()
    log = err.split("log: ")[1].split()[0].rstrip(";)")
    assert "StimulusError" in Path(log).read_text()
    from berg_core.scale.corpus import ModelRequest, merge_search, plan

    tasks = plan("search", corpus, 4, ModelRequest(MODEL), tmp_path / "r.csv.shards", top_k=3, chunk_size=4, bin_width=0.01)
    with pytest.raises(BergError, match=r"1 of 4 shards are not finished \(shard 4\)"):
        merge_search(tasks, MODEL)


def flaky(marker: str) -> str:
    """Fails the first time it runs for ``marker`` (a file records the attempt)."""
    path = Path(marker)
    if not path.exists():
        path.write_text("tried")
        raise RuntimeError("preempted")
    return path.name


@pytest.mark.parametrize("mode", ["local", "debug"])
def test_retries_resubmit_only_failed_tasks(tmp_path, capsys, mode):
    items = [str(tmp_path / f"m{i}") for i in range(3)]
    (tmp_path / "m0").write_text("done before")
    config = ExecutorConfig(mode=mode, folder=tmp_path / "logs")
    with pytest.raises(TasksFailedError) as info:
        run_tasks(flaky, items, ["cell 1", "cell 2", "cell 3"], config)
    assert [f.label for f in info.value.failures] == ["cell 2", "cell 3"]
    assert all(f.error == "RuntimeError: preempted" for f in info.value.failures)
    for p in items[1:]:
        Path(p).unlink()
    config.retries = 1
    assert run_tasks(flaky, items, ["cell 1", "cell 2", "cell 3"], config) == ["m0", "m1", "m2"]
    assert "retrying 2 failed task(s)" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------- flags


def test_slurm_flags_need_the_slurm_executor_and_bad_values_are_one_line(tmp_path, capsys):
    corpus = write(tmp_path / "c.txt", ["a", "b"])
    base = ["search", MODEL, "--input", str(corpus), "--output", str(tmp_path / "r.csv")]
    for extra, msg in ((["--partition", "gpu"], "--partition is a Slurm option; add --executor slurm"),
                       (["--shards", "0"], "--shards must be an int >= 1"),
                       (["--shards", "2", "--retries", "-1"], "--retries must be 0 or more"),
                       (["--shards", "2", "--bin-width", "0"], "--bin-width must be a number > 0")):
        assert main(base + extra) == 1
        err = capsys.readouterr().err
        assert msg in err and len(err.strip().splitlines()) == 1, err
    assert main(["search", MODEL, "--input", str(corpus), "--shards", "2"]) == 1
    assert "needs --output (or --work-dir)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(base + ["--executor", "slurm", "--time", "1:2:3:4"])
    assert [parse_time_min(t) for t in ("90", "30:00", "1:30:00", "2-00", "1-01:00:30")] == [90, 30, 90, 2880, 1501]


def test_slurm_parameters_pass_through(tmp_path):
    from berg_core.scale.executor import _slurm_option

    config = ExecutorConfig(mode="slurm", folder=tmp_path, partition="gpu", time_min=120, gpus_per_task=1, cpus_per_task=8, mem="32G",
                            array_parallelism=16, slurm_options=dict([_slurm_option("account=lab"), _slurm_option("--qos=high")]))
    assert config.submitit_parameters() == {
        "name": "berg", "timeout_min": 120, "cpus_per_task": 8, "slurm_partition": "gpu", "slurm_gpus_per_task": 1, "slurm_mem": "32G",
        "slurm_array_parallelism": 16, "slurm_additional_parameters": {"account": "lab", "qos": "high"}}
    with pytest.raises(InvalidParameterError):
        ExecutorConfig(mode="cloud")


def test_submitit_is_not_imported_by_the_cli_or_a_local_search(tmp_path):
    corpus = write(tmp_path / "c.txt", ["a b", "c"])
    code = ("import sys; from berg_core.cli import main, build_parser; build_parser(); "
            f"main(['search', {MODEL!r}, '--input', {str(corpus)!r}, '--output', {str(tmp_path / 'r.csv')!r}, '--shards', '2', '-q']); "
            "print('submitit' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


def test_model_is_checked_before_any_task(tmp_path, capsys):
    corpus = write(tmp_path / "c.txt", ["a b", "c"])
    assert main(["search", "test-timed_words", "--input", str(corpus), "--output", str(tmp_path / "r.csv"), "--shards", "2",
                 "--executor", "debug"]) == 1
    assert "stimulus is sentences" in capsys.readouterr().err
    assert not (tmp_path / "r.csv.shards" / "logs").exists()
    with BERG().get_encoding_model(MODEL) as model:  # the fixture model is the one the brute force assumes
        assert model.encode(["abc"]).tolist() == [[3.0, 6.0, 9.0]]


# ---------------------------------------------------------------------------------------- berg encode --shards


@pytest.mark.parametrize("executor,shards,ext", [("debug", 3, ".npy"), ("local", 5, ".csv")])
def test_sharded_encode_writes_the_rows_in_line_order(tmp_path, capsys, executor, shards, ext):
    lines = [f"sentence number {i} " + "x" * (i % 7) for i in range(40)]
    lines[0] = "\ufeff" + lines[0]
    text = tmp_path / "big.txt"
    text.write_bytes(("\n".join(lines) + "\n\n").encode())  # blank lines at the very end are ignored
    assert main(["encode", MODEL, "--input", str(text), "--output", str(tmp_path / f"one{ext}"), "-q"]) == 0
    assert main(["encode", MODEL, "--input", str(text), "--output", str(tmp_path / f"many{ext}"), "--shards", str(shards),
                 "--executor", executor, "-q"]) == 0, capsys.readouterr().err
    assert (tmp_path / f"many{ext}").read_bytes() == (tmp_path / f"one{ext}").read_bytes()
    if ext == ".npy":
        want = np.array([[len(t.removeprefix("\ufeff")) * m for m in (1, 2, 3)] for t in lines], dtype=np.float32)
        assert np.array_equal(np.load(tmp_path / "many.npy"), want)


def test_sharded_encode_refuses_what_the_one_pass_refuses(tmp_path, capsys):
    text = tmp_path / "big.txt"
    text.write_text("a\n\nb\n")
    out = str(tmp_path / "o.npy")
    assert main(["encode", MODEL, "--input", str(text), "--output", out, "--shards", "2"]) == 1
    assert "line 2 is blank" in capsys.readouterr().err
    text.write_text("a\nb\n")
    assert main(["encode", MODEL, "--input", str(text), "--shards", "2"]) == 1
    assert "give --output" in capsys.readouterr().err
    assert main(["encode", MODEL, "a b", "--output", out, "--shards", "2"]) == 1
    assert "encode a .txt file given with --input" in capsys.readouterr().err
