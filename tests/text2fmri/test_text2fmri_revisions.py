"""Text2fMRI's hub revisions: trust on first use. The table's unpinned "main" is locked to the commit it resolves to on
the first `berg fetch` (or load) in <berg cache>/text2fmri/revisions.json and exactly that commit is read afterwards,
whatever the hub's main later becomes; a 40-hex pin in the table is used verbatim; a locked commit missing offline
is one line naming `berg fetch`. Also: `berg fetch -O model_variant=...` fetches that variant (prepare gets the
options) and the older BERG ids resolve to the model."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from text2fmri_helpers import TRS, reference_encode

from berg_core import BERG, ResourceError
from berg_core.cli import main
from berg_core.testing.hf import fake_hub_cache
from berg_text2fmri import weights
from berg_text2fmri.plugin import ALIASES, DEFAULT_VARIANT, MODEL_ID, VARIANTS, Variant
from berg_text2fmri.revisions import lock_path, read_locks, record_lock
from berg_text2fmri.testing import head_config, write_head, write_metadata

pytest.importorskip("x_transformers", reason="the reference head needs x-transformers==2.3.0 (plugins/berg_text2fmri[test])")

C, D, E = "c" * 40, "d" * 40, "e" * 40
OTHER_VARIANT = "ShreyDixit/Text2fMRI-Qwen-2.5-1.5B"


def hub_env(tmp_path, **extra: str) -> dict[str, str]:
    """This process's environment (isolated berg cache and dir) for a fresh `berg` process, hub variables replaced."""
    env = {k: v for k, v in os.environ.items() if k not in {"HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"}}
    env.update(HF_HOME=str(tmp_path / "hf"), **extra)
    return env


def test_fetch_with_a_variant_option_gets_that_variant_and_locks_its_commit(tmp_path, tiny_qwen2_dir, capsys):
    """`berg fetch MODEL -O model_variant=<the 1.5B head>` against a loopback hub serving only that repo: prepare gets the
    option (today it fetches the default head, which this hub does not have), and the commit main served is locked."""
    from berg_core.testing import serve_directory
    from berg_core.testing.hf import serve_hub

    bucket, berg_dir, hub = tmp_path / "bucket", tmp_path / "berg-fetched", tmp_path / "hub"
    write_metadata(bucket)
    src = write_head(tmp_path / "src", head_config(str(tiny_qwen2_dir)), seed=4)
    with serve_directory(bucket) as url, serve_hub(OTHER_VARIANT, src, commit=C) as (hub_url, log):
        env = hub_env(tmp_path, BERG_BASE_URL=str(url), HF_ENDPOINT=hub_url, HF_HUB_CACHE=str(hub))
        run = subprocess.run([sys.executable, "-m", "berg_core.cli", "--berg-dir", str(berg_dir), "fetch", MODEL_ID, "--quiet",
                              "-O", f"model_variant={OTHER_VARIANT}"], capture_output=True, text=True, env=env,
                             stdin=subprocess.DEVNULL, timeout=300)
    assert run.returncode == 0, run.stderr
    assert {p.rsplit("/", 1)[-1] for m, p in log if m == "GET" and "/resolve/" in p} == {"config.json", "model.pt", "README.md"}
    assert all(OTHER_VARIANT in p for _, p in log if "/models/" in p or "/resolve/" in p)
    assert read_locks() == {OTHER_VARIANT: C}
    assert main(["info", MODEL_ID]) == 0
    revisions = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("revisions: "))
    assert "UNVERIFIED" in revisions and "'main'" in revisions and f"{OTHER_VARIANT}@{C} (trust on first use" in revisions


def test_after_the_first_load_the_locked_commit_is_read_even_when_main_moves(berg_dir, tiny_qwen2_dir, tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    first = write_head(tmp_path / "first", head_config(str(tiny_qwen2_dir)), seed=1)
    fake_hub_cache(hub, DEFAULT_VARIANT, first, commit=C)
    with BERG(berg_dir).get_encoding_model(MODEL_ID, subject="1", device="cpu") as model:
        assert model.head_revision == C
    assert read_locks() == {DEFAULT_VARIANT: C}
    moved = write_head(tmp_path / "moved", head_config(str(tiny_qwen2_dir)), seed=2)
    fake_hub_cache(hub, DEFAULT_VARIANT, moved, commit=D)  # the hub's main is now D, and D is in the cache
    with BERG(berg_dir).get_encoding_model(MODEL_ID, subject="1", device="cpu") as model:
        assert model.head_revision == C
        out = model.encode(TRS[:3])
    np.testing.assert_allclose(out, reference_encode(tiny_qwen2_dir, first, TRS[:3], 0), rtol=0, atol=1e-5)
    assert np.abs(out - reference_encode(tiny_qwen2_dir, moved, TRS[:3], 0)).max() > 1e-3  # D's weights differ
    assert read_locks() == {DEFAULT_VARIANT: C}


def test_a_locked_commit_missing_offline_is_one_line_naming_berg_fetch(berg_dir, tiny_qwen2_dir, tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    fake_hub_cache(hub, DEFAULT_VARIANT, write_head(tmp_path / "src", head_config(str(tiny_qwen2_dir))), commit=D)
    record_lock(DEFAULT_VARIANT, C)
    with pytest.raises(ResourceError, match=rf"{DEFAULT_VARIANT}@{C} \(locked in .*revisions.json.*\) is not in the Hugging "
                                            rf"Face cache; run `berg fetch {MODEL_ID}`") as info:
        BERG(berg_dir).get_encoding_model(MODEL_ID, subject="1", device="cpu")
    assert "\n" not in str(info.value)


def test_a_commit_pinned_in_the_table_is_used_verbatim(berg_dir, tiny_qwen2_dir, tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    pinned = write_head(tmp_path / "pinned", head_config(str(tiny_qwen2_dir)), seed=5)
    fake_hub_cache(hub, DEFAULT_VARIANT, pinned, commit=E)
    fake_hub_cache(hub, DEFAULT_VARIANT, write_head(tmp_path / "main", head_config(str(tiny_qwen2_dir)), seed=6), commit=C)
    record_lock(DEFAULT_VARIANT, C)  # a lock never overrides a pin
    monkeypatch.setitem(VARIANTS, DEFAULT_VARIANT, Variant(DEFAULT_VARIANT, E, "main"))
    with BERG(berg_dir).get_encoding_model(MODEL_ID, subject="2", device="cpu") as model:
        assert model.head_revision == E
        out = model.encode(TRS[:2])
    np.testing.assert_allclose(out, reference_encode(tiny_qwen2_dir, pinned, TRS[:2], 1), rtol=0, atol=1e-5)
    assert read_locks() == {DEFAULT_VARIANT: C}


def test_a_damaged_lock_file_is_one_line(berg_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    lock_path().write_text(json.dumps({DEFAULT_VARIANT: "main"}))
    from berg_core import ModelLoadError

    with pytest.raises(ModelLoadError, match="is not a JSON object of repo -> 40-hex commit; delete it") as info:
        weights.variant_folder(DEFAULT_VARIANT)
    assert "\n" not in str(info.value)


BACKBONE_SCRIPT = """
import json, sys
from pathlib import Path
from berg_core import BERG
from berg_core.testing.hf import fake_hub_cache, tiny_qwen2
hub, berg_dir, moved = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
attrs = []
for step in range(2):
    with BERG(berg_dir).get_encoding_model("fmri-cneuromod_algo2025-text2fmri", subject="1", device="cpu") as model:
        out, labels = BERG(berg_dir).encode(model, ["So the", "", "fox jumps"], return_labels=True)
        attrs.append([labels.attrs["backbone_revision"], out.tolist()])
    if step == 0:  # the hub's main of the language model moves to other weights, also in the cache
        fake_hub_cache(hub, "Qwen/Qwen2.5-0.5B", tiny_qwen2(moved, seed=11), commit="f" * 40)
print(json.dumps(attrs))
"""


def test_the_language_model_is_locked_too_and_its_commit_is_the_output_attribute(tmp_path, tiny_qwen2_dir, berg_dir):
    """A fresh process (transformers reads HF_HUB_CACHE at import): the language model named by the head's config is read
    from the hub cache at "main" -> commit B, locked, reported as backbone_revision, and still read after main moves."""
    hub, b = tmp_path / "hub", "b" * 40
    fake_hub_cache(hub, "Qwen/Qwen2.5-0.5B", tiny_qwen2_dir, commit=b)
    fake_hub_cache(hub, DEFAULT_VARIANT, write_head(tmp_path / "src", head_config("Qwen/Qwen2.5-0.5B"), seed=3), commit=C)
    env = hub_env(tmp_path, HF_HUB_CACHE=str(hub), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    run = subprocess.run([sys.executable, "-c", BACKBONE_SCRIPT, str(hub), str(berg_dir), str(tmp_path / "moved")],
                         capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=300)
    assert run.returncode == 0, run.stderr
    (rev1, out1), (rev2, out2) = json.loads(run.stdout)
    assert rev1 == rev2 == b and out1 == out2
    assert read_locks() == {DEFAULT_VARIANT: C, "Qwen/Qwen2.5-0.5B": b}


def test_bergs_older_ids_resolve_to_the_model(capsys):
    from berg_core.registry import get_spec

    assert set(ALIASES) == {"fmri-cneuromods-text2fmri", "fmri-cneuromod-text2fmri"}
    for alias in ALIASES:
        assert get_spec(alias).model_id == MODEL_ID
    assert "is an older id of 'fmri-cneuromod_algo2025-text2fmri'" in capsys.readouterr().err


def test_listing_the_models_creates_no_cache_folder(tmp_path, capsys):
    """Registration reads the lock for `berg info`'s line; it must not create folders (`berg list` on a read-only home)."""
    assert main(["list"]) == 0
    assert MODEL_ID in capsys.readouterr().out
    assert not (tmp_path / "cache").exists()
    assert main(["info", MODEL_ID]) == 0 and "locked" in capsys.readouterr().out.lower()
    assert not (tmp_path / "cache").exists()
