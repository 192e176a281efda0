"""Byte-range shards of a corpus file and the mergeable per-shard summaries (extremes + a fixed-bin histogram).

A shard is ``[start, end)`` in bytes, cut just after a newline, with the number of its first line, so a task reads
its part of the corpus in place (no copy) and reports hits with the corpus's own line numbers. The cuts are found in
one pass over the file. ``ExtremesTracker.merged`` joins the shards' extremes
exactly; ``Histogram`` counts responses in fixed bins ``[i * width, (i + 1) * width)``, so shard counts add up.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from berg_core.errors import BergError, InvalidParameterError, ResourceError
from berg_core.search import _lines


@dataclass(frozen=True)
class ByteRange:
    """Bytes ``[start, end)`` of a corpus file whose first line is line ``first_line`` (1-based)."""

    start: int
    end: int
    first_line: int


def plan_ranges(path: str | os.PathLike[str], n: int, align: int = 1) -> list[ByteRange]:
    """Cut a file into ``n`` byte ranges of about equal size, each ending just after a newline (or at the end).

    ``align``: every range but the last starts after a multiple of ``align`` sentences (non-blank lines), so with
    ``align`` = the search's chunk size each shard encodes exactly the chunks a single pass encodes, and a model whose
    numbers depend on what is batched together (padding, matrix shapes) gives the same values in both. Ranges may be
    empty when the file has few lines; together they cover the file exactly once. One pass over the file.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidParameterError(f"--shards must be an int >= 1, got {n!r}")
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ResourceError(f"corpus file {str(path)!r} cannot be read: {exc.strerror or exc}") from exc
    targets = [size * i // n for i in range(1, n)]
    cuts: list[tuple[int, int]] = [(0, 1)]  # (byte offset, line number starting there)
    pos = sentences = 0
    ti = 0
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if ti == len(targets):
                break
            pos += len(raw)
            if number == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")
            sentences += bool(raw.decode("utf-8", "replace").rstrip("\r\n").strip())  # the rule of iter_corpus
            while ti < len(targets) and pos >= targets[ti] and sentences % align == 0:
                cuts.append((pos, number + 1))
                ti += 1
    last = cuts[-1][1]
    while len(cuts) < n:  # no cut point after the last targets: empty ranges at the end
        cuts.append((size, last))
    bounds = [c[0] for c in cuts] + [size]
    return [ByteRange(bounds[i], max(bounds[i], bounds[i + 1]), cuts[i][1]) for i in range(n)]


def iter_range(path: str | os.PathLike[str], rng: ByteRange) -> Iterator[tuple[int, str]]:
    """``(line number, sentence)`` for the non-blank lines of one byte range (the rules of ``iter_corpus``)."""
    path = Path(path)
    if not path.is_file():
        raise ResourceError(f"corpus file {str(path)!r} not found")

    def raw() -> Iterator[bytes]:
        with open(path, "rb") as fh:
            fh.seek(rng.start)
            pos = rng.start
            for line in fh:
                if pos >= rng.end:
                    return
                pos += len(line)
                yield line

    yield from _lines(raw(), str(path), start=rng.first_line)


class Histogram:
    """Counts of predicted responses per output column in fixed bins of ``width``: bin ``i`` is ``[i*width, (i+1)*width)``."""

    def __init__(self, columns: list[str], width: float) -> None:
        if not (isinstance(width, (int, float)) and math.isfinite(width) and width > 0):
            raise InvalidParameterError(f"the histogram bin width must be a number > 0, got {width!r}")
        self.columns = list(columns)
        self.width = float(width)
        self.counts: list[dict[int, int]] = [{} for _ in self.columns]

    def add(self, responses: np.ndarray) -> None:
        """``responses``: (n_sentences, n_columns) float32."""
        bins = np.floor(np.asarray(responses, dtype=np.float64) / self.width).astype(np.int64)
        for j, counts in enumerate(self.counts):
            values, n = np.unique(bins[:, j], return_counts=True)
            for v, c in zip(values.tolist(), n.tolist()):
                counts[v] = counts.get(v, 0) + c

    def state(self) -> dict[str, Any]:
        return {"columns": self.columns, "width": self.width,
                "counts": [[[b, c] for b, c in sorted(counts.items())] for counts in self.counts]}

    @classmethod
    def merged(cls, states: list[dict[str, Any]]) -> Histogram:
        """The sum of shard histograms (same columns and bin width)."""
        hist = cls(states[0]["columns"], states[0]["width"])
        for state in states:
            if list(state["columns"]) != hist.columns or float(state["width"]) != hist.width:
                raise BergError("the shard histograms disagree on outputs or bin width; delete the shard folder and run again")
            for counts, pairs in zip(hist.counts, state["counts"]):
                for b, c in pairs:
                    counts[int(b)] = counts.get(int(b), 0) + int(c)
        return hist

    def write_csv(self, path: Path) -> None:
        """``roi, bin_start, bin_end, count`` rows (non-empty bins, ascending)."""
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["roi", "bin_start", "bin_end", "count"])
            for column, counts in zip(self.columns, self.counts):
                for b in sorted(counts):
                    writer.writerow([column, repr(b * self.width), repr((b + 1) * self.width), counts[b]])


__all__ = ["ByteRange", "Histogram", "iter_range", "plan_ranges"]
