"""Corpus work in shards: ``berg search --shards N`` and ``berg encode --input big.txt --shards N``.

The corpus is cut into N byte ranges (``berg_core.search.shard.plan_ranges``; no copy), one task per range loads the
model once and writes its summary to ``WORK/shards/<kind>-<key>.json`` (search: the shard's top-k/bottom-k + a
fixed-bin histogram) or ``.npy`` (encode: its rows), atomically. The key hashes what decides the output (the corpus's
absolute path, size and mtime, the model, subject, selection, options, top-k, bin width, the shard count and range),
so a rerun skips every finished shard and a changed corpus or option starts afresh. The merge reads every shard's
file and refuses to run when one is missing, naming it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from berg_core.console import notice
from berg_core.errors import BergError, StimulusError
from berg_core.scale.executor import ExecutorConfig, run_tasks
from berg_core.search.shard import ByteRange, plan_ranges

if TYPE_CHECKING:
    from berg_core.encoder import Encoder
    from berg_core.search import SearchResult
    from berg_core.search.shard import Histogram

#: version of the shard files' layout (part of the key)
FORMAT = 1


@dataclass(frozen=True)
class ModelRequest:
    """What a task needs to load the model itself: ``BERG(berg_dir).get_encoding_model(model, ...)``."""

    model: str
    berg_dir: str | None = None
    subject: str | None = None
    selection: dict[str, Any] | None = None
    device: str = "auto"
    options: dict[str, Any] = field(default_factory=dict)

    def identity(self) -> dict[str, Any]:
        """The parts that decide the responses (not the device)."""
        return {"model": self.model, "berg_dir": str(Path(self.berg_dir).resolve()) if self.berg_dir else None, "subject": self.subject,
                "selection": self.selection, "options": {k: str(v) for k, v in sorted(self.options.items())}}

    def load(self) -> Encoder:
        from berg_core.facade import BERG

        return BERG(self.berg_dir).get_encoding_model(self.model, subject=self.subject, selection=self.selection,
                                                      device=self.device, **self.options)


@dataclass(frozen=True)
class ShardTask:
    """One shard's work: ``kind`` "search" or "encode"; its byte range of ``corpus``; where its output goes."""

    kind: str
    index: int
    count: int
    corpus: str
    range: ByteRange
    model: ModelRequest
    output: str
    key: str
    top_k: int = 0
    chunk_size: int = 1024
    bin_width: float = 0.0

    @property
    def label(self) -> str:
        return f"shard {self.index + 1}/{self.count} (bytes {self.range.start}-{self.range.end}, from line {self.range.first_line})"


def corpus_identity(corpus: Path) -> dict[str, Any]:
    st = corpus.stat()
    return {"corpus": str(corpus.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def plan(kind: str, corpus: str | os.PathLike[str], shards: int, model: ModelRequest, work: Path, **params: Any) -> list[ShardTask]:
    """The tasks of a sharded run, each with its content key and output file under ``work/shards``."""
    corpus = Path(corpus)
    # search: shards start on a chunk boundary of the single pass (same batches, same numbers); encode: any line
    ranges = plan_ranges(corpus, shards, align=params.get("chunk_size", 1) if kind == "search" else 1)
    base = {"format": FORMAT, "kind": kind, **corpus_identity(corpus), **model.identity(), "shards": shards,
            **{k: v for k, v in params.items() if k != "chunk_size"}}
    tasks = []
    suffix = ".json" if kind == "search" else ".npy"
    for i, rng in enumerate(ranges):
        ident = json.dumps({**base, "index": i, "range": [rng.start, rng.end, rng.first_line]}, sort_keys=True, default=str)
        key = hashlib.sha256(ident.encode()).hexdigest()
        out = work / "shards" / f"{kind}-{i:05d}-of-{shards:05d}-{key[:16]}{suffix}"
        tasks.append(ShardTask(kind, i, shards, str(corpus), rng, model, str(out), key, **params))
    return tasks


def finished(task: ShardTask) -> bool:
    """Whether the task's output exists and carries its key (a damaged or foreign file counts as not finished)."""
    path = Path(task.output)
    if not path.is_file():
        return False
    meta = Path(task.output + ".json") if task.kind == "encode" else path
    try:
        return bool(json.loads(meta.read_text(encoding="utf-8")).get("key") == task.key)
    except (OSError, ValueError, AttributeError):
        return False


def run_shard(task: ShardTask) -> dict[str, Any]:
    """The body of one array task: load the model once, read the byte range, write the shard file atomically.

    Returns ``{"index", "sentences", "started", "finished"}`` (wall-clock seconds since the epoch).
    """
    from berg_core.search import scan
    from berg_core.search.shard import Histogram, iter_range
    from berg_core.store.cache import atomic_path

    started = time.time()
    out = Path(task.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    with task.model.load() as model:
        if task.kind == "search":
            from berg_core.encoder import output_names_of

            hist = Histogram(output_names_of(model), task.bin_width)
            tracker = scan(model, iter_range(task.corpus, task.range), top_k=task.top_k, chunk_size=task.chunk_size,
                           first_line=task.range.first_line, on_chunk=hist.add)
            payload = {"key": task.key, "index": task.index, "tracker": tracker.state(), "histogram": hist.state()}
            with atomic_path(out) as tmp:
                tmp.write_text(json.dumps(payload), encoding="utf-8")
            n = tracker.n_seen
        else:
            from berg_core.encoder import output_names_of

            texts = [text for _, text in iter_range(task.corpus, task.range)]
            columns = output_names_of(model)
            rows = (model.encode(texts, show_progress=False) if texts else np.zeros((0, len(columns)), dtype=np.float32))
            with atomic_path(out) as tmp, open(tmp, "wb") as fh:
                np.save(fh, np.asarray(rows, dtype=np.float32), allow_pickle=False)
            with atomic_path(Path(task.output + ".json")) as tmp:  # written last: the shard is finished
                tmp.write_text(json.dumps({"key": task.key, "columns": columns}), encoding="utf-8")
            n = len(texts)
    return {"index": task.index, "sentences": n, "started": started, "finished": time.time()}


def run_sharded(tasks: list[ShardTask], config: ExecutorConfig) -> list[dict[str, Any] | None]:
    """Run the unfinished tasks; ``None`` for a shard skipped as finished."""
    todo = [t for t in tasks if not finished(t)]
    if len(todo) < len(tasks):
        notice(f"{len(tasks) - len(todo)} of {len(tasks)} shards already finished (same corpus, model and options): skipped")
    results = run_tasks(run_shard, todo, [t.label for t in todo], config) if todo else []
    by_index = {t.index: r for t, r in zip(todo, results)}
    return [by_index.get(t.index) for t in tasks]


def _missing(tasks: list[ShardTask]) -> None:
    missing = [t for t in tasks if not finished(t)]
    if missing:
        names = ", ".join(f"{t.index + 1}" for t in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise BergError(f"cannot merge: {len(missing)} of {len(tasks)} shards are not finished (shard {names}); "
                        "run the same command again to run only those")


def merge_search(tasks: list[ShardTask], model_id: str) -> tuple[SearchResult, Histogram]:
    """The merged ``SearchResult`` and ``Histogram`` of finished search shards (refused when one is missing)."""
    from berg_core.search import ExtremesTracker
    from berg_core.search.shard import Histogram

    _missing(tasks)
    states, hists = [], []
    for t in tasks:
        try:
            data = json.loads(Path(t.output).read_text(encoding="utf-8"))
            states.append(data["tracker"])
            hists.append(data["histogram"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BergError(f"shard file {t.output} is damaged ({type(exc).__name__}); delete it and run again") from exc
    try:
        tracker = ExtremesTracker.merged(states)
        hist = Histogram.merged(hists)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise BergError(f"a shard file under {Path(tasks[0].output).parent} is damaged ({type(exc).__name__}); "
                        "delete the folder and run again") from exc
    if tracker.n_seen == 0:
        raise StimulusError("the corpus has no sentences (only blank lines or nothing); give one sentence per line")
    return tracker.result(model_id), hist


def merge_encode(tasks: list[ShardTask]) -> tuple[np.ndarray, list[str]]:
    """The shards' rows in corpus order, (n_sentences, n_columns) float32, and the column names (refused when one is missing)."""
    _missing(tasks)
    try:
        parts = [np.load(t.output, allow_pickle=False) for t in tasks]
        columns = [str(c) for c in json.loads(Path(tasks[0].output + ".json").read_text(encoding="utf-8"))["columns"]]
        return np.concatenate(parts, axis=0), columns
    except (OSError, ValueError, KeyError, TypeError, EOFError) as exc:
        raise BergError(f"a shard file under {Path(tasks[0].output).parent} is damaged ({type(exc).__name__}); "
                        "delete the folder and run again") from exc


__all__ = ["ModelRequest", "ShardTask", "finished", "merge_encode", "merge_search", "plan", "run_shard", "run_sharded"]
