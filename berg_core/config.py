"""Where BERG's files live: ``berg_dir`` mirrors BERG's bucket (``encoding_models/modality-fmri/...``)."""

from __future__ import annotations

import os
from pathlib import Path

from berg_core.errors import InvalidParameterError, ResourceError


def resolve_berg_dir(berg_dir: str | os.PathLike[str] | None = None) -> Path:
    """``berg_dir`` if given, else ``$BERG_DIR``, else the platformdirs user data dir for ``berg``.

    A value that is not a path, or names an existing file (not a folder), is an error; the folder itself
    is created only when something is written into it.
    """
    if berg_dir is not None:
        if isinstance(berg_dir, bytes) or not isinstance(berg_dir, (str, os.PathLike)):
            raise InvalidParameterError(f"berg_dir must be a folder path (str or Path), not {type(berg_dir).__name__}")
        path, origin = Path(berg_dir).expanduser(), "berg_dir"
    elif os.environ.get("BERG_DIR"):
        path, origin = Path(os.environ["BERG_DIR"]).expanduser(), "BERG_DIR"
    else:
        import platformdirs

        return Path(platformdirs.user_data_dir("berg"))
    if "\x00" in str(path):
        raise InvalidParameterError(f"{origin} {str(path)!r} contains a NUL character; give a folder path")
    try:
        is_file = path.exists() and not path.is_dir()
    except OSError as exc:  # e.g. a name too long for the file system
        raise ResourceError(f"{origin} {str(path)!r} is not a usable folder: {exc.strerror or exc}") from exc
    if is_file:
        raise ResourceError(f"{origin} {str(path)!r} is a file, not a folder; point {origin} (or --berg-dir) at a folder")
    return path
