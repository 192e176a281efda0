"""A Tuckute source file damaged on disk with its mtime kept is refused, not converted and used (issue 9, item 5)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from berg_core import ModelLoadError
from berg_core.store.fetch import read_manifest
from berg_core.testing import serve_directory
from berg_tuckute import weights
from berg_tuckute.plugin import MODEL_ID, WEIGHTS_PATH
from berg_tuckute.testing import write_berg_files


def test_bit_flipped_source_with_mtime_kept_is_refused(berg_dir, tmp_path, monkeypatch):
    bucket = tmp_path / "bucket"
    files = write_berg_files(bucket, n_features=32, seed=3)
    with serve_directory(bucket) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        first = weights.load_readout(berg_dir)
        np.testing.assert_array_equal(first.coef, files.clf.coef_)
        src = berg_dir / WEIGHTS_PATH
        raw = bytearray(src.read_bytes())
        first_weight = np.float64(files.clf.coef_.flat[0]).tobytes()
        at = bytes(raw).find(first_weight)
        assert at > 0 and bytes(raw).count(first_weight) == 1
        raw[at] ^= 0x01  # lowest mantissa bit of coef[0, 0]: still a valid pickle, a slightly different weight
        st = src.stat()
        src.write_bytes(bytes(raw))
        os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
        with pytest.raises(ModelLoadError) as info:
            weights.load_readout(berg_dir)
        assert str(info.value).endswith(f"delete it and run `berg fetch {MODEL_ID}`")
        assert "\n" not in str(info.value)
        again = weights.load_readout(berg_dir)  # the dropped verification makes ensure_file fetch it again
        assert url.gets(WEIGHTS_PATH) == 2
    np.testing.assert_array_equal(again.coef, files.clf.coef_)
    assert "verified_mtime_ns" in read_manifest(berg_dir)[WEIGHTS_PATH]
