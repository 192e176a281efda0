"""``berg fetch 'PATTERN' --subject all --executor slurm``: fetch (and prepare) many models as executor tasks.

One task per model: ``BERG.fetch`` (BERG's files, the backbone, then the plugin's ``prepare`` hook, e.g. the
Brain-Score PLS caches, whose file locks make concurrent builds safe). A model that fails is reported with its log
and one-line error; the others finish.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

from berg_core.errors import InvalidParameterError


@dataclass(frozen=True)
class FetchTask:
    """``BERG(berg_dir).fetch(model, subject=subject, ...)`` for one model."""

    model: str
    berg_dir: str | None = None
    subject: str | None = None
    include_backbone: bool = True
    options: dict[str, Any] = field(default_factory=dict)


def is_pattern(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def matching_models(pattern: str) -> list[str]:
    """The installed model ids matching a shell-style pattern (``brainscore_language-*``), sorted."""
    from berg_core.registry import get_registry

    ids = sorted(fnmatch.filter(get_registry().specs, pattern))
    if not ids:
        raise InvalidParameterError(f"no installed model matches {pattern!r}; run `berg list` to see the model ids")
    return ids


def run_fetch(task: FetchTask) -> list[str]:
    """One task: the paths ``BERG.fetch`` wrote or verified."""
    from berg_core.facade import BERG

    paths = BERG(task.berg_dir).fetch(task.model, subject=task.subject, show_progress=False, include_backbone=task.include_backbone,
                                      options=dict(task.options))
    return [str(p) for p in paths]


__all__ = ["FetchTask", "is_pattern", "matching_models", "run_fetch"]
