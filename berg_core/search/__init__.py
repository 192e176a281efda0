"""Search a corpus for the sentences a model predicts to drive or suppress each output most.

This is the drive/suppress selection of Tuckute et al. (2024) as one streaming pass, for any model whose
stimulus is sentences: read candidates (one per line) in chunks, encode each chunk, and keep, per
output column (ROI), the ``k`` highest ("drive") and ``k`` lowest ("suppress") predicted responses.
Memory is constant in the corpus size: one chunk of sentences plus ``2 * k`` kept rows per column.

Rules:
* blank lines are skipped (each hit carries its line number, so nothing shifts); every other line is one sentence, taken as is (only the line ending is
  removed; a UTF-8 byte-order mark at the start of the file is dropped);
* a sentence is kept at most once per (column, direction): a repeated line is skipped when the same
  text is already in that list (the first occurrence is the one kept);
* ties: among equal predicted responses the sentence that comes first in the corpus ranks higher, in
  both directions, so the result does not depend on the chunk size;
* rank 1 is the most extreme: the highest response for "drive", the lowest for "suppress".
"""

from __future__ import annotations

import csv
import heapq
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from berg_core.console import progress_bar
from berg_core.encoder import Encoder, output_names_of
from berg_core.errors import BergError, InvalidParameterError, ResourceError, StimulusError
from berg_core.store.cache import atomic_path

DRIVE = "drive"
SUPPRESS = "suppress"
#: memory allowed for the kept rows (2 * k entries per column, each holding a full output row), bytes
MAX_KEPT_BYTES = 1 << 30


@dataclass(frozen=True)
class Hit:
    """One kept sentence: its place in a (column, direction) list and its predicted responses.

    ``line``: 1-based line number in the corpus; ``responses``: (n_columns,) float32, every output column.
    """

    column: str
    direction: str
    rank: int
    sentence: str
    line: int
    responses: np.ndarray


@dataclass
class _Extremes:
    """The ``k`` best entries of one (column, direction) as a min-heap of ``(key, -line, line, text, row)``.

    ``key`` is the response for drive and minus the response for suppress, so the heap root is the entry
    the next better candidate evicts; ``-line`` makes the later line the weaker one on a tie.
    """

    k: int
    heap: list[tuple[float, int, int, str, np.ndarray]] = field(default_factory=list)
    texts: set[str] = field(default_factory=set)

    def threshold(self) -> float:
        return self.heap[0][0] if len(self.heap) >= self.k else -np.inf

    def offer(self, key: float, line: int, text: str, row: np.ndarray) -> bool:
        """Keep the candidate if it beats the weakest kept one; False only when it was too weak."""
        if text in self.texts:
            return True  # already kept (an earlier line with the same text): skip, keep looking
        entry = (key, -line, line, text, row)
        if len(self.heap) < self.k:
            heapq.heappush(self.heap, entry)
        elif entry[:2] > self.heap[0][:2]:
            self.texts.discard(heapq.heapreplace(self.heap, entry)[3])
        else:
            return False
        self.texts.add(text)
        return True

    def ranked(self) -> list[tuple[float, int, int, str, np.ndarray]]:
        return sorted(self.heap, key=lambda e: (-e[0], e[2]))


class ExtremesTracker:
    """Top-k and bottom-k sentences per output column over a stream of encoded chunks."""

    def __init__(self, columns: list[str], k: int) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InvalidParameterError(f"top-k must be an int >= 1, got {k!r}")
        kept = 2 * k * len(columns) * len(columns) * 4
        if kept > MAX_KEPT_BYTES:
            raise InvalidParameterError(f"keeping {k} sentences per direction for {len(columns)} outputs needs "
                                        f"{kept / 2**30:.1f} GiB; select fewer outputs (--roi) or a smaller --top-k")
        self.columns = list(columns)
        self.k = k
        self.n_seen = 0
        self._lists = {(c, d): _Extremes(k) for c in self.columns for d in (DRIVE, SUPPRESS)}

    def add(self, sentences: list[str], lines: list[int], responses: np.ndarray) -> None:
        """Offer a chunk: ``responses`` (len(sentences), n_columns); ``lines`` increasing across calls."""
        responses = np.asarray(responses, dtype=np.float32)
        if responses.shape != (len(sentences), len(self.columns)):
            raise BergError(f"the model returned shape {responses.shape} for {len(sentences)} sentences and "
                            f"{len(self.columns)} outputs (a plugin bug)")
        bad = ~np.isfinite(responses)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise BergError(f"the model predicted {responses[i, j]} for line {lines[i]} ({self.columns[j]}); "
                            "check the model and that line")
        line_arr = np.asarray(lines)
        for j, column in enumerate(self.columns):
            scores = responses[:, j]
            for direction, keys in ((DRIVE, scores), (SUPPRESS, -scores)):
                extremes = self._lists[(column, direction)]
                candidates = np.flatnonzero(keys >= extremes.threshold())
                # best first: higher key, then earlier line; stop at the first one that cannot get in
                for i in candidates[np.lexsort((line_arr[candidates], -keys[candidates]))]:
                    if not extremes.offer(float(keys[i]), int(lines[i]), sentences[i], responses[i].copy()):
                        break  # too weak: every later candidate is weaker still
        self.n_seen += len(sentences)

    def state(self) -> dict[str, Any]:
        """The kept entries as plain JSON data (floats written exactly), for ``ExtremesTracker.merged``.

        ``{"columns", "k", "n_seen", "lists": {column: {direction: [[line, sentence, [response per column]], ...]}}}``.
        """
        return {"columns": self.columns, "k": self.k, "n_seen": self.n_seen,
                "lists": {c: {d: [[line, text, [float(v) for v in row]] for _, _, line, text, row in self._lists[(c, d)].ranked()]
                              for d in (DRIVE, SUPPRESS)} for c in self.columns}}

    @classmethod
    def merged(cls, states: list[dict[str, Any]]) -> ExtremesTracker:
        """One tracker from the states of trackers that saw disjoint parts of one corpus (any order).

        Exact: the entries are offered again in line order, so the first occurrence of a text wins and ties go to
        the earlier line, as in one pass over the whole corpus. Every sentence of the single-pass top-k is in the
        top-k of the part holding its first occurrence (whatever beats it there beats it overall).
        """
        if not states:
            raise BergError("nothing to merge: no shard results")
        columns, k = list(states[0]["columns"]), int(states[0]["k"])
        for state in states[1:]:
            if list(state["columns"]) != columns or int(state["k"]) != k:
                raise BergError("the shard results disagree on outputs or top-k; delete the shard folder and run again")
        tracker = cls(columns, k)
        tracker.n_seen = sum(int(state["n_seen"]) for state in states)
        for j, column in enumerate(columns):
            for direction in (DRIVE, SUPPRESS):
                entries = sorted(((int(line), str(text), np.asarray(row, dtype=np.float32))
                                  for state in states for line, text, row in state["lists"][column][direction]), key=lambda e: e[0])
                extremes = tracker._lists[(column, direction)]
                for line, text, row in entries:
                    key = float(row[j]) if direction == DRIVE else -float(row[j])
                    extremes.offer(key, line, text, row)
        return tracker

    def result(self, model_id: str) -> SearchResult:
        return SearchResult(model_id, self.columns, self.k, self.n_seen, self.hits())

    def hits(self) -> list[Hit]:
        """All kept sentences: per column (in column order), drive ranks 1..k then suppress ranks 1..k."""
        out: list[Hit] = []
        for column in self.columns:
            for direction in (DRIVE, SUPPRESS):
                for rank, (_, _, line, text, row) in enumerate(self._lists[(column, direction)].ranked(), start=1):
                    out.append(Hit(column, direction, rank, text, line, row))
        return out


# ------------------------------------------------------------------------------------- corpus


def count_lines(path: Path) -> int:
    """Number of lines of a file (a final line without a newline counts), read in 1 MiB blocks."""
    n, last = 0, b"\n"
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            n += block.count(b"\n")
            last = block[-1:]
    return n + (last != b"\n")


def iter_corpus(source: str | os.PathLike[str] | IO[str] | Iterable[str]) -> Iterator[tuple[int, str]]:
    """``(line number, sentence)`` for each non-blank line, lazily.

    ``source``: a path (``"-"`` = stdin), an open text file, or any iterable of lines. Files are read
    as bytes and decoded line by line (UTF-8), so a bad byte is reported with its line number.
    """
    if isinstance(source, (str, os.PathLike)):
        if str(source) == "-":  # bytes when possible, so a bad byte is reported with its line number
            yield from _lines(getattr(sys.stdin, "buffer", sys.stdin), "<stdin>")
            return
        path = Path(source)
        if not path.is_file():
            raise ResourceError(f"corpus file {str(path)!r} not found")
        with open(path, "rb") as fh:
            yield from _lines(fh, str(path))
        return
    if not isinstance(source, Iterable) or isinstance(source, (bytes, dict)):
        raise InvalidParameterError(f"the corpus must be a path, an open text file or an iterable of lines, not {type(source).__name__}")
    yield from _lines(source, "the corpus")


def _lines(lines: Iterable[str | bytes], name: str, start: int = 1) -> Iterator[tuple[int, str]]:
    """``lines`` numbered from ``start`` (a shard of a file starts past line 1); the BOM is dropped from line 1 only."""
    for number, raw in enumerate(lines, start=start):
        if isinstance(raw, bytes):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # UTF-8 byte-order mark
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise StimulusError(f"{name}: line {number} is not valid UTF-8 ({exc.reason}); save the corpus as UTF-8") from exc
        elif not isinstance(raw, str):
            raise StimulusError(f"{name}: line {number} is a {type(raw).__name__}, not text; give one sentence (str) per line")
        elif number == 1:
            raw = raw.removeprefix("\ufeff")
        text = raw.rstrip("\r\n")
        if text.strip():
            yield number, text


def _chunks(items: Iterator[tuple[int, str]], size: int) -> Iterator[tuple[list[int], list[str]]]:
    lines: list[int] = []
    texts: list[str] = []
    for number, text in items:
        lines.append(number)
        texts.append(text)
        if len(texts) == size:
            yield lines, texts
            lines, texts = [], []
    if texts:
        yield lines, texts


# ------------------------------------------------------------------------------------- search


@dataclass
class SearchResult:
    """What ``search`` found: ``hits`` (see ``ExtremesTracker.hits``), the output ``columns``, counts."""

    model_id: str
    columns: list[str]
    k: int
    n_sentences: int
    hits: list[Hit]


def search(
    model: Encoder,
    corpus: str | os.PathLike[str] | IO[str] | Iterable[str],
    *,
    top_k: int,
    chunk_size: int = 1024,
    show_progress: bool = False,
    on_chunk: Callable[[np.ndarray], object] | None = None,
) -> SearchResult:
    """Stream ``corpus`` through ``model`` (a loaded sentence ``Encoder``) and keep the extremes per output.

    ``chunk_size``: sentences read and passed to ``model.encode`` at once (the model batches inside);
    ``on_chunk(responses)``: sees every chunk's (n, n_outputs) float32 responses (e.g. ``shard.Histogram.add``).
    """
    check_search_model(model, chunk_size)
    total = None
    if isinstance(corpus, (str, os.PathLike)) and str(corpus) != "-" and Path(corpus).is_file():
        total = count_lines(Path(corpus))
    tracker = scan(model, iter_corpus(corpus), top_k=top_k, chunk_size=chunk_size, show_progress=show_progress, total=total,
                   on_chunk=on_chunk)
    if tracker.n_seen == 0:
        raise StimulusError("the corpus has no sentences (only blank lines or nothing); give one sentence per line")
    return tracker.result(model.model_id)


def check_search_model(model: Encoder, chunk_size: int) -> None:
    """The model must take sentences; ``chunk_size`` an int >= 1."""
    if getattr(model.spec, "stimulus", None) != "sentences":
        raise InvalidParameterError(f"berg search needs a model whose stimulus is sentences; {model.model_id} takes "
                                    f"{model.spec.stimulus}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise InvalidParameterError(f"chunk size must be an int >= 1, got {chunk_size!r}")


def scan(model: Encoder, numbered: Iterator[tuple[int, str]], *, top_k: int, chunk_size: int = 1024, show_progress: bool = False,
         total: int | None = None, first_line: int = 1, on_chunk: Callable[[np.ndarray], object] | None = None) -> ExtremesTracker:
    """Encode ``(line, sentence)`` pairs chunk by chunk and keep the extremes; ``on_chunk(responses)`` sees every chunk.

    ``total``/``first_line``: the line count and first line of what is read, for the progress bar.
    """
    check_search_model(model, chunk_size)
    tracker = ExtremesTracker(output_names_of(model), top_k)
    bar = progress_bar(show=show_progress, total=total, desc=f"search {model.model_id}", unit="line")
    done = first_line - 1
    try:
        for lines, texts in _chunks(numbered, chunk_size):
            responses = model.encode(texts, show_progress=False)
            tracker.add(texts, lines, responses)
            if on_chunk is not None:
                on_chunk(np.asarray(responses, dtype=np.float32))
            bar.update(lines[-1] - done)
            done = lines[-1]
        if total is not None:
            bar.update(max(total - (done - first_line + 1), 0))
    finally:
        bar.close()
    return tracker


def write_hits(fh: IO[str], result: SearchResult) -> None:
    """Write the hits as CSV rows to an open text file: ``roi, direction, rank, sentence, <one column per output>, line``."""
    writer = csv.writer(fh)
    writer.writerow(["roi", "direction", "rank", "sentence", *result.columns, "line"])
    for hit in result.hits:
        writer.writerow([hit.column, hit.direction, hit.rank, hit.sentence,
                         *(repr(float(v)) for v in hit.responses), hit.line])


def write_hits_csv(path: str | os.PathLike[str], result: SearchResult) -> Path:
    """Write the hits as CSV (atomically) to ``path`` (see ``write_hits``)."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        raise InvalidParameterError(f"berg search writes CSV; give an --output ending in .csv, not {path.name!r}")
    try:
        with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
            write_hits(fh, result)
    except OSError as exc:
        if isinstance(exc, ResourceError):
            raise
        raise ResourceError(f"cannot write {str(path)!r}: {exc.strerror or exc}; nothing was written") from exc
    return path


__all__ = ["DRIVE", "SUPPRESS", "ExtremesTracker", "Hit", "SearchResult", "count_lines", "iter_corpus", "scan", "search", "write_hits",
           "write_hits_csv"]
