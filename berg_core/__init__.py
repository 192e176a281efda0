"""berg: in-silico fMRI responses to language, as a plugin framework (BERG-compatible API).

Importing this package is light: no numpy, torch, transformers, sklearn or brainscore, and no plugin is
loaded until the registry is first used.

This top level is also the declared API for plugin authors (docs/plugins.md lists every name with its
signature): a family package imports from ``berg_core`` only, never from its submodules (an
import-linter contract in the ``lint`` nox session checks it). Each name is listed once for type checkers (the
``TYPE_CHECKING`` block) and once in ``_LAZY_BY_MODULE``, imported on first attribute access, so ``import berg_core``
stays light; ``__all__`` is computed from it.

Layout: the framework is this folder's modules (hookspecs, spec, options, registry, encoder, facade,
errors, stimulus, device, selection, readout, config, console); ``store/`` holds files (cache, fetch,
HDF5 matrices, BERG's pickled formats, user files), ``features/`` the backbones and feature science,
``fit/`` the estimators and training, ``trained/`` the built-in trained family, ``cli/`` the ``berg``
command and ``testing/`` the test helpers. Lower layers never import higher ones (import-linter).
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names of _LAZY_BY_MODULE, for type checkers (`X as X`: re-exported)
    from berg_core.console import progress as progress, progress_bar as progress_bar
    from berg_core.device import default_dtype as default_dtype, resolve_device as resolve_device
    from berg_core.encoder import Encoder as Encoder
    from berg_core.errors import (
        BergError as BergError,
        DownloadError as DownloadError,
        InvalidParameterError as InvalidParameterError,
        ModelLoadError as ModelLoadError,
        ModelNotFoundError as ModelNotFoundError,
        PluginError as PluginError,
        ResourceError as ResourceError,
        StimulusError as StimulusError,
        UnsafePickleError as UnsafePickleError,
    )
    from berg_core.facade import BERG as BERG
    from berg_core.features.backbones import (
        Backbone as Backbone,
        backbone_config as backbone_config,
        fetch_backbone as fetch_backbone,
        hf_guard as hf_guard,
        load_backbone as load_backbone,
        offline_vars as offline_vars,
        pad_batch as pad_batch,
        sentence_features as sentence_features,
    )
    from berg_core.features.cache import backbone_revision as backbone_revision, cached_features as cached_features
    from berg_core.features.timeseries import (
        delay as delay,
        lanczos_resample as lanczos_resample,
        tr_grid as tr_grid,
        zscore as zscore,
    )
    from berg_core.features.words import (
        KEEP_WORDS as KEEP_WORDS,
        MAX_WORDS as MAX_WORDS,
        word_features as word_features,
        word_features_key as word_features_key,
    )
    from berg_core.hookspecs import hookimpl as hookimpl
    from berg_core.options import Option as Option, Options as Options
    from berg_core.readout import LinearReadout as LinearReadout
    from berg_core.selection import select_indices as select_indices, select_outputs as select_outputs
    from berg_core.spec import EncoderSpec as EncoderSpec, RemoteFile as RemoteFile
    from berg_core.stimulus import (
        TimedWords as TimedWords,
        as_timed_words as as_timed_words,
        as_tr_texts as as_tr_texts,
        as_words as as_words,
    )
    from berg_core.store.cache import (
        atomic_folder as atomic_folder,
        build_once as build_once,
        cache_key as cache_key,
        cache_path as cache_path,
    )
    from berg_core.store.fetch import (
        ensure_file as ensure_file,
        read_manifest as read_manifest,
        sha256_file as sha256_file,
        verify_recorded as verify_recorded,
    )
    from berg_core.store.h5matrix import (
        ArrayColumns as ArrayColumns,
        ColumnSource as ColumnSource,
        build_matrix as build_matrix,
        is_complete as is_complete,
        matrix_info as matrix_info,
        read_columns as read_columns,
        write_matrix as write_matrix,
    )
    from berg_core.store.pickled_arrays import (
        LazyLoadUnsupported as LazyLoadUnsupported,
        RawArray as RawArray,
        load_npy_lazily as load_npy_lazily,
    )
    from berg_core.store.safe_pickle import load_npy_object as load_npy_object, load_pickle as load_pickle
    from berg_core.store.safe_store import is_valid_tree as is_valid_tree, load_tree as load_tree, save_tree as save_tree
    from berg_core.store.volumes import (
        ExternalFile as ExternalFile,
        VoxelSpace as VoxelSpace,
        ensure_external_file as ensure_external_file,
    )
    from berg_core.trained.cards import register_package_encoders as register_package_encoders

# module -> the names it exports here, each imported on first use (most of these modules need numpy or more).
_LAZY_BY_MODULE = {
    "berg_core.errors": "BergError DownloadError InvalidParameterError ModelLoadError ModelNotFoundError PluginError "
                        "ResourceError StimulusError UnsafePickleError",
    "berg_core.hookspecs": "hookimpl",
    "berg_core.options": "Option Options",
    "berg_core.spec": "EncoderSpec RemoteFile",
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


#: the declared API
__all__ = sorted({"__version__", *_LAZY})
