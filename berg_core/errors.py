"""The berg error hierarchy: every user mistake is a one-line ``BergError`` saying what to do."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from contextlib import contextmanager


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


#: what deep code writes where it does not know the model id; ``fill_fetch_hint`` fills it in
FETCH_PLACEHOLDER = "berg fetch MODEL"
_PLACEHOLDER_RE = re.compile(r"berg fetch MODEL\b")


def fetch_command(model_id: str, subject: str | None = None) -> str:
    """The ``berg fetch`` command line for ``model_id`` (and ``subject``), quoted for a shell."""
    command = f"berg fetch {shlex.quote(str(model_id))}"
    return command + (f" --subject {shlex.quote(str(subject))}" if subject is not None else "")


def fill_fetch_hint(exc: BergError, model_id: str, subject: str | None = None) -> BergError:
    """Replace the literal ``berg fetch MODEL`` in ``exc``'s message by the real command, in place.

    The exception keeps its type, attributes and traceback; only a str first argument is rewritten.
    """
    if exc.args and isinstance(exc.args[0], str) and _PLACEHOLDER_RE.search(exc.args[0]):
        exc.args = (_PLACEHOLDER_RE.sub(lambda _: fetch_command(model_id, subject), exc.args[0]), *exc.args[1:])
    return exc


@contextmanager
def plugin_errors(model_id: str, plugin: str, action: str, subject: str | None = None,
                  wrap: type[BergError] = ModelLoadError) -> Iterator[None]:
    """Run plugin code: a ``BergError`` gets its fetch hint filled in (a ``PluginError``, e.g. a factory that does
    not import, also gets the plugin named); any other exception (a plugin bug) becomes one ``wrap`` line naming
    the plugin, chained to the original (``BERG_DEBUG=1`` shows its traceback).

    ``plugin``: ``"<distribution> <version>"`` (``EncoderSpec.plugin``); ``action``: what was being done, e.g.
    ``"loading the model"`` or ``"encoding"``.
    """
    try:
        yield
    except BergError as exc:
        fill_fetch_hint(exc, model_id, subject)
        if isinstance(exc, PluginError) and plugin and exc.args and isinstance(exc.args[0], str) and plugin not in exc.args[0]:
            exc.args = (f"{model_id}: plugin {plugin}: {exc.args[0]}", *exc.args[1:])
        raise
    except (Exception, SystemExit) as exc:  # a plugin calling sys.exit() must not end the user's program
        if isinstance(exc, MemoryError) or "OutOfMemory" in type(exc).__name__:  # torch.OutOfMemoryError too
            raise ResourceError(f"ran out of memory while {action} ({model_id}); use a smaller input or batch size, "
                                "or a device with more memory") from exc
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise wrap(f"{model_id}: plugin {plugin or 'unknown'} failed while {action} ({type(exc).__name__}"
                   f"{': ' + first if first else ''}); a plugin bug: report it (BERG_DEBUG=1 shows the traceback)") from exc


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
    "fetch_command",
    "fill_fetch_hint",
    "plugin_errors",
]
