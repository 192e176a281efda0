"""berg's plugin hooks (pluggy project ``berg``, entry-point group ``berg``).

A plugin module exposes functions decorated with ``berg_core.hookimpl``; its distribution declares
``[project.entry-points.berg] <namespace> = "<package>.plugin"``.
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
