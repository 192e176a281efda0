"""Shared fixtures for the berg-lebel tests: a tiny random OPT, BERG-format fixture files, a story."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from berg_core.testing import isolated_berg

# before huggingface_hub is imported (it reads these once): tests never touch the network
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytest.importorskip("torch")
pytest.importorskip("transformers")

from lebel_helpers import HIDDEN, N_VOXELS  # noqa: E402

from berg_core.testing.hf import tiny_opt  # noqa: E402
from berg_lebel.testing import make_berg_tree  # noqa: E402


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """Own berg_dir / cache per test, offline hub, fresh registry and feature memory cache."""
    with isolated_berg(monkeypatch, tmp_path):
        yield


@pytest.fixture(scope="session")
def opt_dir(tmp_path_factory) -> Path:
    """A random 4-block OPT (hidden 32) with 4096 positions (512 words x several tokens fit a window)."""
    return tiny_opt(tmp_path_factory.mktemp("opt") / "tiny-opt", n_layer=4, hidden=HIDDEN, n_head=4, max_positions=4096)


@pytest.fixture
def berg_tree(tmp_path) -> dict:
    """BERG's weights + metadata files for UTS01/UTS02 under $BERG_DIR: {subject: (W float64, metadata)}."""
    return make_berg_tree(tmp_path / "berg", list(N_VOXELS), hidden=HIDDEN, n_voxels=N_VOXELS, seed=3)


@pytest.fixture(scope="session")
def pycortex_bucket(tmp_path_factory) -> tuple[Path, dict[str, tuple[int, str]]]:
    """Synthetic pycortex-db files (mask_thick + reference, 6x5x4 grid, 20 voxels) for every subject under the
    OpenNeuro layout, and their (size, MD5) per file name."""
    import hashlib

    import nibabel as nib
    import numpy as np

    from berg_lebel import plugin

    bucket = tmp_path_factory.mktemp("openneuro")
    mask = np.zeros((6, 5, 4), dtype=np.uint8)
    mask.flat[::6] = 1
    known = {}
    for subject in plugin.SUBJECTS:
        folder = bucket / plugin.PYCORTEX_DIR.format(subject=subject)
        folder.mkdir(parents=True)
        nib.save(nib.Nifti1Image(mask, np.diag([2.6, 2.6, 2.6, 1.0])), str(folder / "mask_thick.nii.gz"))
        nib.save(nib.Nifti1Image(np.ones((6, 5, 4), np.float32), np.diag([2.6, 2.6, 2.6, 1.0])), str(folder / "reference.nii.gz"))
    for name in ("mask_thick.nii.gz", "reference.nii.gz"):
        data = (bucket / plugin.PYCORTEX_DIR.format(subject=plugin.SUBJECTS[0]) / name).read_bytes()
        known[name] = (len(data), hashlib.md5(data).hexdigest())
    return bucket, known


@pytest.fixture(autouse=True)
def openneuro_mirror(pycortex_bucket, monkeypatch):
    """``berg fetch`` also gets each subject's pycortex mask and reference: served here on loopback
    (``$BERG_OPENNEURO_URL``), with the plugin's size/MD5 tables set to these files (tests may override both)."""
    pytest.importorskip("nibabel")
    from berg_core.testing import serve_directory
    from berg_lebel import plugin

    bucket, known = pycortex_bucket
    for subject in plugin.SUBJECTS:
        monkeypatch.setitem(plugin.MASK_FILES, subject, known["mask_thick.nii.gz"])
        monkeypatch.setitem(plugin.REFERENCE_FILES, subject, known["reference.nii.gz"])
    with serve_directory(bucket) as url:
        monkeypatch.setenv("BERG_OPENNEURO_URL", url)
        yield url
