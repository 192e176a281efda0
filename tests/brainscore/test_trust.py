"""No code from a hub repo through brainscore's loads; the offline hint names only a switch that is set."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from berg_brainscore.enumerate import REMOTE_CODE_REASON, UNSUITABLE, classify, scan
from berg_core import BERG, ModelLoadError
from berg_core.testing.hf import custom_code_backbone

LOAD_EVIL = """
import sys
from brainscore_language import ArtificialSubject, model_registry
from brainscore_language.model_helpers.huggingface import HuggingfaceSubject
from berg_brainscore.activations import load_subject
from berg_core.errors import BergError

mapping = {{ArtificialSubject.RecordingTarget.language_system: "transformer.h.0"}}
model_registry["berg-custom-code"] = lambda: HuggingfaceSubject(model_id={folder!r}, region_layer_mapping=mapping)
try:
    load_subject("berg-custom-code", "cpu")
except BergError as exc:
    print("BergError:", exc)
    sys.exit(3)
"""


def test_a_hub_repo_with_custom_code_never_runs_even_if_y_is_typed(tiny_folder, tmp_path):
    """brainscore's HuggingfaceSubject loads without trust_remote_code: transformers would ask "[y/N]" on stdin and
    run the repo's code on "y". Through berg: no prompt, one BergError, the code never runs."""
    folder, marker = custom_code_backbone(tmp_path, tiny_folder)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    run = subprocess.run([sys.executable, "-c", LOAD_EVIL.format(folder=str(folder))], input="y\n", capture_output=True, text=True,
                         env=env, timeout=300)
    assert not marker.exists()
    assert run.returncode == 3, run.stdout + run.stderr
    assert "[y/N]" not in run.stdout + run.stderr
    line = [ln for ln in run.stdout.splitlines() if ln.startswith("BergError:")]
    assert len(line) == 1 and "custom code" in line[0]


def test_a_model_that_trusts_remote_code_itself_is_stopped(tiny_folder, tmp_path, monkeypatch):
    """A brainscore model passing trust_remote_code=True (as llada-8b-base does) still runs no repo code via berg."""
    from brainscore_language import model_registry
    from transformers import AutoModelForCausalLM

    from berg_brainscore.activations import load_subject

    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "modules"))
    folder, marker = custom_code_backbone(tmp_path, tiny_folder)
    monkeypatch.setitem(model_registry, "berg-trusting", lambda: AutoModelForCausalLM.from_pretrained(str(folder), trust_remote_code=True))
    with pytest.raises(ModelLoadError, match="needs custom code from its folder or hub repo, which berg will not run"):
        load_subject("berg-trusting", "cpu")
    assert not marker.exists()


def test_models_that_trust_remote_code_are_unsuitable():
    models = {m.name: m for m in scan().models}
    assert models["llada-8b-base"].status == UNSUITABLE and models["llada-8b-base"].reason == REMOTE_CODE_REASON
    with pytest.raises(ModelLoadError, match="trust_remote_code=True"):
        BERG().get_encoding_model("brainscore_language-llada-8b-base", subject="018")


@pytest.mark.parametrize(("text", "flagged"), [("m = AutoModel.from_pretrained(x, trust_remote_code=True)", True),
                                               ('kwargs = {"trust_remote_code": True}', True),
                                               ("m = AutoModel.from_pretrained(x, trust_remote_code=False)", False),
                                               ("# no trust_remote_code here", False)])
def test_remote_code_is_read_from_the_folder_source(text, flagged):
    from berg_brainscore.enumerate import _Call

    call = _Call(name="MySubject")
    assert (classify("my-model", call, text) == (UNSUITABLE, REMOTE_CODE_REASON)) is flagged


def test_offline_hint_names_only_a_switch_that_is_set(monkeypatch, tmp_path):
    """huggingface_hub read HF_HUB_OFFLINE=1 at import (conftest), so loads stay offline whatever the variable says
    now; berg's hint reads the variable: "unset HF_HUB_OFFLINE" only when it is set."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    with pytest.raises(ModelLoadError, match="unset HF_HUB_OFFLINE") as info:
        BERG().get_encoding_model("brainscore_language-distilgpt2", subject="018")
    assert "\n" not in str(info.value)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(ModelLoadError, match="could not load model 'distilgpt2'") as info:
        BERG().get_encoding_model("brainscore_language-distilgpt2", subject="018")
    assert "HF_HUB_OFFLINE" not in str(info.value) and "check your network" in str(info.value)


def test_brainscore_prints_go_to_stderr_not_into_stdout(tiny, capsys):
    """brainscore's HuggingfaceSubject prints "Using device: cpu" at load; `berg encode ... > out` must get data only."""
    from conftest import TINY_ID

    from berg_brainscore.activations import load_subject

    load_subject(TINY_ID, "cpu")
    captured = capsys.readouterr()
    assert captured.out == "" and "Using device" in captured.err
