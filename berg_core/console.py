"""Progress bars and notices: tqdm bars off unless asked for, one-line notices on stderr unless quiet.

The ``berg`` CLI gives every command that shows progress (encode, search, fetch, train) the same two
options (``berg_core.cli.common.add_progress_options``): ``--progress/--no-progress`` (default: bars when
stderr is a terminal, ``show_bars``) and ``--quiet`` (no notices, ``notices_off``; no bars either unless
``--progress`` is given). Library code prints its notices with ``notice`` so ``--quiet`` silences them.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

#: set by ``notices_off`` (the CLI's ``--quiet``) for the duration of one command
_quiet = False


def show_bars(progress: bool | None, quiet: bool = False) -> bool:
    """Whether to draw progress bars: ``progress`` when given, else off when ``quiet``, else when stderr is a terminal."""
    if progress is not None:
        return progress
    if quiet:
        return False
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


@contextlib.contextmanager
def notices_off(quiet: bool = True) -> Iterator[None]:
    """Within the block, ``notice`` prints nothing when ``quiet`` (restored afterwards)."""
    global _quiet
    before, _quiet = _quiet, bool(quiet) or _quiet
    try:
        yield
    finally:
        _quiet = before


def notice(message: str) -> None:
    """Print a one-line notice (what was written, where, what happens next) to stderr, unless quiet."""
    if not _quiet:
        print(message, file=sys.stderr)


def progress(iterable: Iterable[T], *, show: bool = False, total: int | None = None, desc: str | None = None, unit: str = "it") -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm bar when ``show`` is true."""
    if not show:
        yield from iterable
        return
    from tqdm.auto import tqdm

    yield from tqdm(iterable, total=total, desc=desc, unit=unit, dynamic_ncols=True)


def progress_bar(*, show: bool = False, total: int | None = None, desc: str | None = None, unit: str = "it",
                 unit_scale: bool = False) -> Any:
    """A manual tqdm bar (``update(n)``/``close()``), disabled when ``show`` is false."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=unit_scale, disable=not show, dynamic_ncols=True)
