"""berg: in-silico fMRI responses to language, as a plugin framework (BERG-compatible API).

Importing this package is light: no torch, transformers, sklearn or brainscore, and no plugin is
loaded until the registry is first used.
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

from berg_core.errors import (
    BergError,
    DownloadError,
    InvalidParameterError,
    ModelLoadError,
    ModelNotFoundError,
    PluginError,
    ResourceError,
    StimulusError,
)
from berg_core.hookspecs import hookimpl
from berg_core.spec import EncoderSpec, RemoteFile

if TYPE_CHECKING:
    from berg_core.encoder import Encoder
    from berg_core.facade import BERG
    from berg_core.readout import LinearReadout
    from berg_core.selection import select_outputs

_LAZY = {
    "BERG": "berg_core.facade",
    "Encoder": "berg_core.encoder",
    "LinearReadout": "berg_core.readout",
    "select_outputs": "berg_core.selection",
}


def __getattr__(name: str) -> Any:
    """The names in ``_LAZY`` (they need numpy) are imported on first use, so ``berg list`` never imports numpy."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'berg_core' has no attribute {name!r}")


__all__ = [
    "BERG",
    "BergError",
    "DownloadError",
    "Encoder",
    "EncoderSpec",
    "InvalidParameterError",
    "LinearReadout",
    "ModelLoadError",
    "ModelNotFoundError",
    "PluginError",
    "RemoteFile",
    "ResourceError",
    "StimulusError",
    "__version__",
    "hookimpl",
    "select_outputs",
]
