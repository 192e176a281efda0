"""berg: in-silico fMRI responses to language, as a plugin framework (BERG-compatible API).

Importing this package is light: no numpy, torch, transformers, sklearn or brainscore, and no plugin is
loaded until the registry is first used.

This top level is also the declared API for plugin authors (docs/plugins.md lists every name with its
signature): a family package imports from ``berg_core`` only, never from its submodules (an
import-linter contract in the ``lint`` nox session checks it). Names needing numpy or heavier libraries
are in ``_LAZY``: they are imported on first attribute access, so ``import berg_core`` stays light.

Layout: the framework is this folder's modules (hookspecs, spec, options, registry, encoder, facade,
errors, stimulus, device, selection, readout, config, console); ``store/`` holds files (cache, fetch,
HDF5 matrices, BERG's pickled formats, user files), ``features/`` the backbones and feature science,
``fit/`` the estimators and training, ``trained/`` the built-in trained family, ``cli/`` the ``berg``
command and ``testing/`` the test helpers. Lower layers never import higher ones (import-linter).
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
    UnsafePickleError,
)
from berg_core.hookspecs import hookimpl
from berg_core.options import Option, Options
from berg_core.spec import EncoderSpec, RemoteFile

if TYPE_CHECKING:
    from berg_core.console import progress, progress_bar
    from berg_core.device import default_dtype, resolve_device
    from berg_core.encoder import Encoder
    from berg_core.facade import BERG
    from berg_core.features.backbones import (
        Backbone,
        backbone_config,
        fetch_backbone,
        hf_guard,
        load_backbone,
        offline_vars,
        pad_batch,
        sentence_features,
    )
    from berg_core.features.cache import backbone_revision, cached_features
    from berg_core.features.timeseries import delay, lanczos_resample, tr_grid, zscore
    from berg_core.features.words import KEEP_WORDS, MAX_WORDS, word_features, word_features_key
    from berg_core.readout import LinearReadout
    from berg_core.selection import select_indices, select_outputs
    from berg_core.stimulus import TimedWords, as_timed_words, as_tr_texts, as_words
    from berg_core.store.cache import atomic_folder, build_once, cache_key, cache_path
    from berg_core.store.fetch import ensure_file, read_manifest, sha256_file, verify_recorded
    from berg_core.store.h5matrix import (
        ArrayColumns,
        ColumnSource,
        build_matrix,
        is_complete,
        matrix_info,
        read_columns,
        write_matrix,
    )
    from berg_core.store.pickled_arrays import LazyLoadUnsupported, RawArray, load_npy_lazily
    from berg_core.store.safe_pickle import load_npy_object, load_pickle
    from berg_core.store.safe_store import is_valid_tree, load_tree, save_tree
    from berg_core.store.volumes import ExternalFile, VoxelSpace, ensure_external_file
    from berg_core.trained.cards import register_package_encoders

# module -> the names it exports here; imported on first use (these modules need numpy or more).
_LAZY_BY_MODULE = {
    "berg_core.console": "progress progress_bar",
    "berg_core.device": "default_dtype resolve_device",
    "berg_core.encoder": "Encoder",
    "berg_core.facade": "BERG",
    "berg_core.features.backbones": "Backbone backbone_config fetch_backbone hf_guard load_backbone offline_vars pad_batch sentence_features",
    "berg_core.features.cache": "backbone_revision cached_features",
    "berg_core.features.timeseries": "delay lanczos_resample tr_grid zscore",
    "berg_core.features.words": "KEEP_WORDS MAX_WORDS word_features word_features_key",
    "berg_core.readout": "LinearReadout",
    "berg_core.selection": "select_indices select_outputs",
    "berg_core.stimulus": "TimedWords as_timed_words as_tr_texts as_words",
    "berg_core.store.cache": "atomic_folder build_once cache_key cache_path",
    "berg_core.store.fetch": "ensure_file read_manifest sha256_file verify_recorded",
    "berg_core.store.h5matrix": "ArrayColumns ColumnSource build_matrix is_complete matrix_info read_columns write_matrix",
    "berg_core.store.pickled_arrays": "LazyLoadUnsupported RawArray load_npy_lazily",
    "berg_core.store.safe_pickle": "load_npy_object load_pickle",
    "berg_core.store.safe_store": "is_valid_tree load_tree save_tree",
    "berg_core.store.volumes": "ExternalFile VoxelSpace ensure_external_file",
    "berg_core.trained.cards": "register_package_encoders",
}
#: exported name -> the module defining it
_LAZY = {name: module for module, names in _LAZY_BY_MODULE.items() for name in names.split()}



def __getattr__(name: str) -> Any:
    """The names in ``_LAZY`` (they need numpy) are imported on first use, so ``berg list`` never imports numpy.

    Not cached here: each access reads the defining module's current attribute, so a test that patches
    ``berg_core.features.backbones.load_backbone`` also patches ``from berg_core import load_backbone`` run after it.
    """
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'berg_core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "ArrayColumns",
    "BERG",
    "Backbone",
    "BergError",
    "ColumnSource",
    "DownloadError",
    "Encoder",
    "EncoderSpec",
    "ExternalFile",
    "InvalidParameterError",
    "KEEP_WORDS",
    "LazyLoadUnsupported",
    "LinearReadout",
    "MAX_WORDS",
    "ModelLoadError",
    "ModelNotFoundError",
    "Option",
    "Options",
    "PluginError",
    "RawArray",
    "RemoteFile",
    "ResourceError",
    "StimulusError",
    "TimedWords",
    "UnsafePickleError",
    "VoxelSpace",
    "__version__",
    "as_timed_words",
    "as_tr_texts",
    "as_words",
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
    "ensure_external_file",
    "ensure_file",
    "fetch_backbone",
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
    "select_indices",
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
