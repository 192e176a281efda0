"""berg's plugin hooks (pluggy project ``berg``, entry-point group ``berg``).

A plugin module exposes functions decorated with ``berg_core.hookimpl``; its distribution declares
``[project.entry-points.berg] <namespace> = "<package>.plugin"``.

The boundary is strict: a plugin module with a decorated function named after no hook below (say a misspelled
``berg_register_encoder``), or with no decorated hook at all, is not loaded and ``berg plugins`` shows why. A hook
meant for a newer berg is declared ``@hookimpl(optionalhook=True)`` and is then ignored by older ones.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

from berg_core.spec import EncoderSpec

PROJECT = "berg"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def berg_register_encoders(register: Callable[[EncoderSpec], None]) -> None:
    """Register encoding models by calling ``register(EncoderSpec(...))`` once per model."""
