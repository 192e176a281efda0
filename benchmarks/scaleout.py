"""Scale-out of `berg search` on this machine's single-node Slurm: wall time for 1, 2 and 4 shards and the overhead per task.

Starts a throwaway single-node Slurm (tests/slurm/cluster.py: munged + slurmctld + slurmd, as root, Debian's slurm-wlm
and munge installed), trains a tiny sentence encoder on a random GPT-2 (tests/slurm/tiny_encoder.py), writes a corpus
of ``--lines`` sentences, then, side by side in one run:

1. the single-process search (``berg_core.search.search``, in this process, model load included);
2. ``--shards 1, 2, 4`` as Slurm job arrays through submitit (``run_sharded``, every shard run afresh), each
   with its wall time (submission to merged result), and per task: overhead = task start - submission (sbatch,
   scheduling, the Python start and imports up to the task body), the task's own time (model load + scoring);
3. the merged result is checked against the single-process one (same rows).

    sudo python benchmarks/scaleout.py                  # ~2 minutes on 2 cores
    sudo python benchmarks/scaleout.py --lines 500      # smoke run

On a real cluster the per-task overhead is the queue wait plus the interpreter start; each task loads the model once,
so shards pay off when a shard's scoring time is large against both (see the README's scale-out recipe).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "slurm"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=4000, help="corpus size in sentences (default 4000)")
    ap.add_argument("--shards", default="1,2,4")
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument("--chunk-size", type=int, default=256, help="sentences per chunk, single pass and shards alike")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from cluster import LocalSlurm, missing
    from tiny_encoder import tiny_sentence_encoder, write_corpus

    why = missing()
    if why:
        sys.exit(f"scaleout: no local Slurm: {why}")
    from berg_core.console import notices_off
    from berg_core.facade import BERG
    from berg_core.scale.corpus import ModelRequest, merge_search, plan, run_sharded
    from berg_core.scale.executor import ExecutorConfig
    from berg_core.search import search

    with tempfile.TemporaryDirectory(prefix="berg-scaleout-") as tmp_name:
        tmp = Path(tmp_name)
        os.environ.setdefault("BERG_CACHE_DIR", str(tmp / "cache"))
        enc = tiny_sentence_encoder(tmp / "model")
        corpus = write_corpus(tmp / "corpus.txt", args.lines)
        options = {"batch_size": 32}
        print(f"corpus: {args.lines} sentences; model: tiny random GPT-2 (layer 2) + ridge, {os.cpu_count()} CPU cores, torch threads "
              f"default; Slurm: one node, {os.cpu_count()} CPUs")

        t0 = time.perf_counter()
        with BERG().get_encoding_model(str(enc), device="cpu", **options) as model:
            single = search(model, corpus, top_k=args.top_k, chunk_size=args.chunk_size)
        t_single = time.perf_counter() - t0
        print(f"single process (load + search): {t_single:7.2f} s")

        with LocalSlurm(tmp / "slurm") as slurm:
            os.environ["SLURM_CONF"] = str(slurm.folder / "slurm.conf")
            print(f"{'shards':>6} {'wall s':>8} {'speed-up':>8} {'overhead s/task (mean, max)':>28} {'task s (mean)':>14}")
            for n in (int(x) for x in args.shards.split(",")):
                work = tmp / f"run{n}"
                tasks = plan("search", corpus, n, ModelRequest(str(enc), None, None, None, "cpu", options), work,
                             top_k=args.top_k, chunk_size=args.chunk_size, bin_width=0.01)
                config = ExecutorConfig(mode="slurm", folder=work / "logs", partition=slurm.partition, poll_s=0.2,
                                        name="berg-scaleout", cpus_per_task=1)
                submitted = time.time()
                t0 = time.perf_counter()
                with notices_off():
                    results = run_sharded(tasks, config)
                    merged, _ = merge_search(tasks, single.model_id)
                wall = time.perf_counter() - t0
                overhead = [r["started"] - submitted for r in results if r]
                own = [r["finished"] - r["started"] for r in results if r]
                same = [(h.column, h.direction, h.rank, h.sentence, h.line, h.responses.tolist()) for h in merged.hits] == \
                    [(h.column, h.direction, h.rank, h.sentence, h.line, h.responses.tolist()) for h in single.hits]
                print(f"{n:>6} {wall:8.2f} {t_single / wall:8.2f} {sum(overhead) / len(overhead):18.2f} {max(overhead):9.2f} "
                      f"{sum(own) / len(own):14.2f}   merged == single process: {same}")


if __name__ == "__main__":
    main()
