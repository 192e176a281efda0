"""berg: in-silico fMRI responses to language, as a plugin framework (BERG-compatible API).

Importing this package is light: no numpy, torch, transformers, sklearn or brainscore, and no plugin is
loaded until the registry is first used.

This top level is also the declared API for plugin authors (docs/plugins.md lists every name with its
signature): a family package imports from ``berg_core`` only, never from its submodules (an
import-linter contract in the ``lint`` nox session checks it). Names needing numpy or heavier libraries
are in ``_LAZY``: they are imported on first attribute access, so ``import berg_core`` stays light.
"""

from __future__ import annotations

__version__ = "0.1.0"

import sys
import types
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
    UnsafePickleError,
)
from berg_core.hookspecs import hookimpl
from berg_core.spec import EncoderSpec, Option, RemoteFile

if TYPE_CHECKING:
    from berg_core.cache import atomic_folder, build_once, cache_key, cache_path
    from berg_core.device import default_dtype, resolve_device
    from berg_core.encoder import Encoder
    from berg_core.facade import BERG
    from berg_core.features import backbone_revision, cached_features
    from berg_core.fetch import ensure_file, read_manifest, sha256_file, verify_recorded
    from berg_core.h5matrix import ArrayColumns, build_matrix, is_complete, matrix_info, read_columns, write_matrix
    from berg_core.hf import Backbone, backbone_config, hf_guard, load_backbone, offline_vars, pad_batch, sentence_features
    from berg_core.pickled_arrays import LazyLoadUnsupported, RawArray, load_npy_lazily
    from berg_core.progress import progress, progress_bar
    from berg_core.readout import LinearReadout
    from berg_core.safe_pickle import load_npy_object, load_pickle
    from berg_core.safe_store import is_valid_tree, load_tree, save_tree
    from berg_core.selection import select_outputs
    from berg_core.signal import delay, lanczos_resample, tr_grid, zscore
    from berg_core.stimulus import TimedWords, as_timed_words
    from berg_core.trained_cards import register_package_encoders
    from berg_core.word_features import KEEP_WORDS, MAX_WORDS, word_features, word_features_key

# name -> module holding it; imported on first use (these modules need numpy or more).
_LAZY = {
    "atomic_folder": "berg_core.cache",
    "build_once": "berg_core.cache",
    "cache_key": "berg_core.cache",
    "cache_path": "berg_core.cache",
    "default_dtype": "berg_core.device",
    "resolve_device": "berg_core.device",
    "Encoder": "berg_core.encoder",
    "BERG": "berg_core.facade",
    "backbone_revision": "berg_core.features",
    "cached_features": "berg_core.features",
    "ensure_file": "berg_core.fetch",
    "read_manifest": "berg_core.fetch",
    "sha256_file": "berg_core.fetch",
    "verify_recorded": "berg_core.fetch",
    "ArrayColumns": "berg_core.h5matrix",
    "build_matrix": "berg_core.h5matrix",
    "is_complete": "berg_core.h5matrix",
    "matrix_info": "berg_core.h5matrix",
    "read_columns": "berg_core.h5matrix",
    "write_matrix": "berg_core.h5matrix",
    "Backbone": "berg_core.hf",
    "backbone_config": "berg_core.hf",
    "hf_guard": "berg_core.hf",
    "load_backbone": "berg_core.hf",
    "offline_vars": "berg_core.hf",
    "pad_batch": "berg_core.hf",
    "sentence_features": "berg_core.hf",
    "LazyLoadUnsupported": "berg_core.pickled_arrays",
    "RawArray": "berg_core.pickled_arrays",
    "load_npy_lazily": "berg_core.pickled_arrays",
    "progress": "berg_core.progress",
    "progress_bar": "berg_core.progress",
    "LinearReadout": "berg_core.readout",
    "load_npy_object": "berg_core.safe_pickle",
    "load_pickle": "berg_core.safe_pickle",
    "is_valid_tree": "berg_core.safe_store",
    "load_tree": "berg_core.safe_store",
    "save_tree": "berg_core.safe_store",
    "select_outputs": "berg_core.selection",
    "delay": "berg_core.signal",
    "lanczos_resample": "berg_core.signal",
    "tr_grid": "berg_core.signal",
    "zscore": "berg_core.signal",
    "TimedWords": "berg_core.stimulus",
    "as_timed_words": "berg_core.stimulus",
    "register_package_encoders": "berg_core.trained_cards",
    "KEEP_WORDS": "berg_core.word_features",
    "MAX_WORDS": "berg_core.word_features",
    "word_features": "berg_core.word_features",
    "word_features_key": "berg_core.word_features",
}


def __getattr__(name: str) -> Any:
    """The names in ``_LAZY`` (they need numpy) are imported on first use, so ``berg list`` never imports numpy.

    Not cached here: each access reads the defining module's current attribute, so a test that patches
    ``berg_core.hf.load_backbone`` also patches ``from berg_core import load_backbone`` run after it.
    """
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'berg_core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


# ``progress`` and ``word_features`` are both a function exported here and the submodule defining it.
# Importing a submodule sets it as an attribute of its package; this keeps the function instead, so
# ``from berg_core import word_features`` is the function whatever was imported before.
_SHADOWED = frozenset(name for name, module in _LAZY.items() if module == f"berg_core.{name}")


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        if name in _SHADOWED and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


__all__ = [
    "ArrayColumns",
    "BERG",
    "Backbone",
    "BergError",
    "DownloadError",
    "Encoder",
    "EncoderSpec",
    "InvalidParameterError",
    "KEEP_WORDS",
    "LazyLoadUnsupported",
    "LinearReadout",
    "MAX_WORDS",
    "ModelLoadError",
    "ModelNotFoundError",
    "Option",
    "PluginError",
    "RawArray",
    "RemoteFile",
    "ResourceError",
    "StimulusError",
    "TimedWords",
    "UnsafePickleError",
    "__version__",
    "as_timed_words",
    "atomic_folder",
    "backbone_config",
    "backbone_revision",
    "build_matrix",
    "build_once",
    "cache_key",
    "cache_path",
    "cached_features",
    "default_dtype",
    "delay",
    "ensure_file",
    "hf_guard",
    "hookimpl",
    "is_complete",
    "is_valid_tree",
    "lanczos_resample",
    "load_backbone",
    "load_npy_lazily",
    "load_npy_object",
    "load_pickle",
    "load_tree",
    "matrix_info",
    "offline_vars",
    "pad_batch",
    "progress",
    "progress_bar",
    "read_columns",
    "read_manifest",
    "register_package_encoders",
    "resolve_device",
    "save_tree",
    "select_outputs",
    "sentence_features",
    "sha256_file",
    "tr_grid",
    "verify_recorded",
    "word_features",
    "word_features_key",
    "write_matrix",
    "zscore",
]
