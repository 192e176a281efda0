"""Where BERG's files live: ``berg_dir`` mirrors BERG's bucket (``encoding_models/modality-fmri/...``)."""

from __future__ import annotations

import os
from pathlib import Path


def resolve_berg_dir(berg_dir: str | os.PathLike[str] | None = None) -> Path:
    """``berg_dir`` if given, else ``$BERG_DIR``, else the platformdirs user data dir for ``berg``."""
    if berg_dir is not None:
        return Path(berg_dir).expanduser()
    env = os.environ.get("BERG_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("berg"))
