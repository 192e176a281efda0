"""berg: in-silico fMRI responses to language, as a plugin framework (BERG-compatible API).

Importing this package is light: no torch, transformers, sklearn or brainscore, and no plugin is
loaded until the registry is first used.
"""

from __future__ import annotations

__version__ = "0.1.0"

from berg_core.encoder import Encoder
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
from berg_core.facade import BERG
from berg_core.hookspecs import hookimpl
from berg_core.spec import EncoderSpec, RemoteFile

__all__ = [
    "BERG",
    "BergError",
    "DownloadError",
    "Encoder",
    "EncoderSpec",
    "InvalidParameterError",
    "ModelLoadError",
    "ModelNotFoundError",
    "PluginError",
    "RemoteFile",
    "ResourceError",
    "StimulusError",
    "__version__",
    "hookimpl",
]
