"""`berg fetch fmri-lebel2023-opt_1_3b` without --subject: every subject's files, the backbone, every conversion."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from berg_core.store.h5matrix import matrix_info
from berg_core.testing import serve_directory
from berg_core.testing.hf import fake_hub_cache
from berg_lebel.plugin import BACKBONE, METADATA_FILE, MODEL_ID, PYCORTEX_DIR, SUBJECTS, WEIGHTS_FILE
from berg_lebel.testing import make_berg_tree


def test_fetch_without_subject_gets_every_subject_and_the_backbone(tmp_path, opt_dir, openneuro_mirror, pycortex_bucket):
    """The command as the help and README give it: all eight subjects, and facebook/opt-1.3b (here a tiny OPT in a
    private HF cache, offline) checked in the cache; today it stops at once with "needs a subject"."""
    bucket = tmp_path / "bucket"
    n_voxels = {s: 7 + i for i, s in enumerate(SUBJECTS)}
    make_berg_tree(bucket, list(SUBJECTS), hidden=32, n_voxels=n_voxels, seed=1)
    hub = tmp_path / "hf" / "hub"
    snapshot = fake_hub_cache(hub, BACKBONE, opt_dir)
    fresh, cache = tmp_path / "fresh_berg", tmp_path / "cache"
    with serve_directory(bucket) as url:
        env = {**os.environ, "BERG_DIR": str(fresh), "BERG_CACHE_DIR": str(cache), "BERG_BASE_URL": url, "HF_HOME": str(tmp_path / "hf"),
               "HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1"}
        # `berg fetch` as a user runs it, with the plugin's OpenNeuro size/MD5 table set to the loopback mirror's files
        known = pycortex_bucket[1]
        patch = ("import sys, berg_lebel.plugin as p\n"
                 f"p.MASK_FILES.update(dict.fromkeys(p.SUBJECTS, {known['mask_thick.nii.gz']!r}))\n"
                 f"p.REFERENCE_FILES.update(dict.fromkeys(p.SUBJECTS, {known['reference.nii.gz']!r}))\n"
                 "from berg_core.cli import main\nsys.exit(main(sys.argv[1:]))")
        run = subprocess.run([sys.executable, "-c", patch, "fetch", MODEL_ID, "--quiet"], capture_output=True, text=True,
                             env=env, stdin=subprocess.DEVNULL, timeout=600)
        assert run.returncode == 0, run.stderr
        for s in SUBJECTS:
            assert url.gets(WEIGHTS_FILE.format(subject=s)) == 1 and url.gets(METADATA_FILE.format(subject=s)) == 1
            assert openneuro_mirror.gets(PYCORTEX_DIR.format(subject=s) + "mask_thick.nii.gz") == 1
    printed = run.stdout.split()
    expected = [str(fresh / f.format(subject=s)) for s in SUBJECTS for f in (METADATA_FILE, WEIGHTS_FILE)]
    assert sorted(printed[:-1]) == sorted(expected) and printed[-1] == str(snapshot)
    for s in SUBJECTS:  # `prepare` converted every subject
        h5 = list((cache / "lebel").glob(f"weights_{s}.*.h5"))
        assert len(h5) == 1 and matrix_info(h5[0]).shape == (128, n_voxels[s])
        assert list((cache / "lebel").glob(f"metadata_{s}.*.npz"))


def test_fetch_one_subject_with_a_local_backbone(tmp_path, opt_dir, monkeypatch, capsys):
    from berg_core.cli import main

    bucket = tmp_path / "bucket"
    make_berg_tree(bucket, ["UTS03"], hidden=32, n_voxels=9)
    fresh = tmp_path / "fresh_berg"
    with serve_directory(bucket) as url:
        monkeypatch.setenv("BERG_BASE_URL", url)
        assert main(["--berg-dir", str(fresh), "fetch", MODEL_ID, "--subject", "UTS03", "-O", f"backbone={opt_dir}", "--quiet"]) == 0
        assert url.gets() == 2
    assert capsys.readouterr().out.split()[-1] == str(opt_dir)
    assert main(["--berg-dir", str(fresh), "fetch", MODEL_ID, "--subject", "UTS03", "-O", "layers=3"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown option(s) 'layers'" in err[0] and "backbone" in err[0]
    assert main(["--berg-dir", str(fresh), "fetch", MODEL_ID, "--subject", "UTS03", "-O", f"backbone={Path(tmp_path) / 'nowhere'}"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]
