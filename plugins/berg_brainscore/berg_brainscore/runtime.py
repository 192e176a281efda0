"""The one door to brainscore-language: sets ``BS_INSTALL_DEPENDENCIES=no`` before importing it.

Without that, ``brainscore_language.load_model`` runs ``pip install -r requirements.txt`` of the model's
folder inside the user's interpreter. berg forces ``no`` (install a model's extra requirements yourself).
"""

from __future__ import annotations

import os
from types import ModuleType

from berg_core import ModelLoadError

INSTALL_VAR = "BS_INSTALL_DEPENDENCIES"


def brainscore() -> ModuleType:
    """``brainscore_language``, imported with dependency installation switched off."""
    os.environ[INSTALL_VAR] = "no"
    try:
        import brainscore_language
    except ImportError as exc:
        raise ModelLoadError(f"brainscore-language is not importable here ({exc}); pip install berg-brainscore in an env with numpy<2 and transformers<5") from exc
    module: ModuleType = brainscore_language
    return module
