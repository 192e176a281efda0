"""The berg error hierarchy: every user mistake is a one-line ``BergError`` saying what to do."""

from __future__ import annotations


class BergError(Exception):
    """Root of every error berg raises on purpose; the CLI prints it as one line and exits 1."""


class ModelNotFoundError(BergError, KeyError):
    """No registered model has this id."""

    def __str__(self) -> str:  # KeyError would add quotes around the message
        return str(self.args[0]) if self.args else ""


class InvalidParameterError(BergError, ValueError):
    """A parameter (subject, selection, device, option) is not valid for this model."""


class StimulusError(BergError, ValueError):
    """The stimulus is empty, of the wrong kind, or malformed."""


class ModelLoadError(BergError, RuntimeError):
    """A model's weights or backbone could not be loaded (missing, corrupt, offline)."""


class ResourceError(BergError, OSError):
    """A file or other resource berg needs is missing or unusable."""


class DownloadError(ResourceError):
    """A remote file could not be fetched or failed its integrity check."""


class PluginError(BergError, RuntimeError):
    """A plugin failed to import or register its models."""


class UnsafePickleError(ModelLoadError):
    """A pickle asked for a class outside berg's allow-list and was refused."""


__all__ = [
    "BergError",
    "DownloadError",
    "InvalidParameterError",
    "ModelLoadError",
    "ModelNotFoundError",
    "PluginError",
    "ResourceError",
    "StimulusError",
    "UnsafePickleError",
]
