"""tqdm progress bars, off unless asked for."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress(iterable: Iterable[T], *, show: bool = False, total: int | None = None, desc: str | None = None, unit: str = "it") -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm bar when ``show`` is true."""
    if not show:
        yield from iterable
        return
    from tqdm.auto import tqdm

    yield from tqdm(iterable, total=total, desc=desc, unit=unit, dynamic_ncols=True)


def progress_bar(*, show: bool = False, total: int | None = None, desc: str | None = None, unit: str = "it", unit_scale: bool = False):
    """A manual tqdm bar (``update(n)``/``close()``), disabled when ``show`` is false."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=unit_scale, disable=not show, dynamic_ncols=True)
