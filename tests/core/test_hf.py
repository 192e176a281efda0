"""Truncated backbones equal the full model's hidden_states[layer] (independent reference: HF itself)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from berg_core import InvalidParameterError, ModelLoadError  # noqa: E402
from berg_core.features.backbones import load_backbone, sentence_features  # noqa: E402
from berg_core.testing.hf import custom_code_backbone, tiny_gpt2, tiny_opt  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    return {"gpt2": tiny_gpt2(root / "gpt2", n_layer=5), "opt": tiny_opt(root / "opt", n_layer=5)}


def full_hidden(folder, layer, ids):
    model = transformers.AutoModel.from_pretrained(folder).eval()
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[layer][0].numpy()


@pytest.mark.parametrize("arch", ["gpt2", "opt"])
@pytest.mark.parametrize("layer", [0, 2, 5])
def test_truncated_forward_equals_full_hidden_states(models, arch, layer):
    backbone = load_backbone(str(models[arch]), layer=layer)
    ids = backbone.tokenize("The audience erupted into laughter.")
    if arch == "opt":
        ids = [backbone.tokenizer.bos_token_id, *ids]
    out = backbone.forward(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long))[0].numpy()
    ref = full_hidden(models[arch], layer, ids)
    np.testing.assert_allclose(out, ref, atol=1e-5, rtol=0)
    if 0 < layer < 5:  # a cut model must not apply the final LayerNorm to block `layer`'s output
        norm = backbone.model.ln_f if arch == "gpt2" else None
        assert norm is None or isinstance(norm, torch.nn.Identity)


def test_only_needed_blocks_are_built(models):
    backbone = load_backbone(str(models["gpt2"]), layer=2)
    assert len(backbone.model.h) == 2
    assert isinstance(backbone.model.ln_f, torch.nn.Identity)


def test_sentence_features_batched_equal_one_at_a_time(models):
    sentences = ["Hi.", "The quick brown fox jumps over the lazy dog.", "Hi.", "What's the weather like in Boston today?"]
    backbone = load_backbone(str(models["gpt2"]), layer=3)
    feats = sentence_features(backbone, sentences, batch_size=3)
    for i, s in enumerate(sentences):
        ref = full_hidden(models["gpt2"], 3, backbone.tokenize(s))[-1]
        np.testing.assert_allclose(feats[i], ref, atol=1e-5, rtol=0)
    mean = sentence_features(backbone, sentences[:2], pooling="mean")
    ref = full_hidden(models["gpt2"], 3, backbone.tokenize(sentences[1])).mean(axis=0)
    np.testing.assert_allclose(mean[1], ref, atol=1e-5, rtol=0)


def test_bad_layer_and_missing_backbone(models, monkeypatch):
    with pytest.raises(InvalidParameterError, match="layer must be an int in 0..5"):
        load_backbone(str(models["gpt2"]), layer=9)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="'berg-no-such/model'.*not in the Hugging Face cache"):
        load_backbone("berg-no-such/model", layer=1)


# --------------------------------------------------------------------------- no custom code (issue 9, item 3)


@pytest.mark.parametrize("answer", [None, "y\n"])
def test_custom_code_backbone_is_refused_without_a_prompt(models, tmp_path, answer):
    """A backbone folder whose config.json maps to its own modeling file: one BergError line, the code never runs,
    and stdin is never read (today transformers asks "run the custom code? [y/N]" and "y" runs the folder's code)."""
    import os
    import subprocess
    import sys

    folder, marker = custom_code_backbone(tmp_path, models["gpt2"])
    script = ("import sys\nfrom berg_core.errors import BergError\nfrom berg_core.features.backbones import load_backbone\n"
              f"try:\n    load_backbone({str(folder)!r}, layer=1)\nexcept BergError as exc:\n    print('BergError:', exc)\n    sys.exit(3)\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    stdin = {"stdin": subprocess.DEVNULL} if answer is None else {"input": answer}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120, **stdin)
    out = (run.stdout + run.stderr).strip().splitlines()
    assert not marker.exists()
    assert run.returncode == 3 and len(out) == 1, run.stdout + run.stderr
    assert "needs custom code" in out[0] and "auto_map" in out[0] and "berg will not run" in out[0]
    assert "[y/N]" not in run.stdout + run.stderr


@pytest.mark.parametrize("model_type,in_tokenizer", [("gpt2", False), ("gpt2", True), ("evil_gpt", False)])
def test_custom_code_is_refused_even_for_a_known_architecture(models, tmp_path, monkeypatch, model_type, in_tokenizer):
    """auto_map beside a model_type transformers knows would silently load the built-in class instead of the folder's
    (different numbers): refused too, as is a custom tokenizer; nothing of the folder runs."""
    import sys

    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "modules"))
    monkeypatch.setattr(sys, "stdin", None)  # a prompt would fail loudly
    folder, marker = custom_code_backbone(tmp_path, models["gpt2"], model_type=model_type, in_tokenizer=in_tokenizer)
    with pytest.raises(ModelLoadError, match="needs custom code .*berg will not run") as info:
        load_backbone(str(folder), layer=1)
    assert "\n" not in str(info.value) and not marker.exists()


def test_hf_guard_blocks_remote_code_even_when_a_caller_trusts_it(models, tmp_path, monkeypatch):
    """Inside ``hf_guard`` (around brainscore's loads too) a library call with trust_remote_code=True still runs no code."""
    from berg_core.features.backbones import hf_guard

    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "modules"))
    folder, marker = custom_code_backbone(tmp_path, models["gpt2"])
    with hf_guard(), pytest.raises(ModelLoadError, match="custom code"):
        transformers.AutoConfig.from_pretrained(str(folder), trust_remote_code=True)
    assert not marker.exists()
    from transformers import dynamic_module_utils

    assert dynamic_module_utils.TIME_OUT_REMOTE_CODE > 0 and dynamic_module_utils.get_class_in_module.__name__ == "get_class_in_module"


# --------------------------------------------------------------------------- fetch_backbone and hub noise (issue 9, item 9)


def test_fetch_backbone_checks_a_local_folder(models, tmp_path, monkeypatch):
    from berg_core.features.backbones import fetch_backbone

    assert fetch_backbone(str(models["opt"])) == models["opt"]
    folder, marker = custom_code_backbone(tmp_path, models["gpt2"])
    with pytest.raises(ModelLoadError, match="needs custom code"):
        fetch_backbone(str(folder))
    no_tokenizer = tmp_path / "no-tokenizer"
    no_tokenizer.mkdir()
    (no_tokenizer / "config.json").write_text((models["gpt2"] / "config.json").read_text())
    with pytest.raises(ModelLoadError, match="tokenizer could not be loaded"):
        fetch_backbone(str(no_tokenizer))
    with pytest.raises(ModelLoadError, match="backbone folder .* does not exist"):
        fetch_backbone(str(tmp_path / "nowhere"))
    for text in ("{not json", "[" * 100_000 + "]" * 100_000):
        (no_tokenizer / "config.json").write_text(text)
        with pytest.raises(ModelLoadError, match="has no readable config.json") as info:
            load_backbone(str(no_tokenizer), layer=1)
        assert "\n" not in str(info.value)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    with pytest.raises(ModelLoadError, match=r"'berg-no-such/model' is not in the Hugging Face cache .*HF_HUB_OFFLINE set.*berg fetch"):
        fetch_backbone("berg-no-such/model")


def test_weight_files_follow_transformers_preference():
    from berg_core.features.backbones import _weight_files

    assert _weight_files("m", ["model.safetensors", "pytorch_model.bin", "tf_model.h5", "onnx/model.safetensors"]) == ["model.safetensors"]
    shards = ["model.safetensors.index.json", "model-00002-of-00002.safetensors", "model-00001-of-00002.safetensors", "pytorch_model.bin"]
    assert _weight_files("m", shards) == ["model.safetensors.index.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    assert _weight_files("m", ["pytorch_model.bin", "flax_model.msgpack"]) == ["pytorch_model.bin"]
    with pytest.raises(ModelLoadError, match="no PyTorch weights"):
        _weight_files("m", ["tf_model.h5", "onnx/model.safetensors"])


def test_unreachable_hub_gives_only_berg_line(tmp_path):
    """Hub unreachable (a closed loopback port): berg's one line, none of huggingface_hub's retry lines before it."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: connections are refused
    script = ("import sys, time\ntime.sleep = lambda s: None  # hub retries back off up to 23 s; the lines are what matter\n"
              "from berg_core.errors import BergError\nfrom berg_core.features.backbones import load_backbone\n"
              "try:\n    load_backbone('gpt2', layer=1)\nexcept BergError as exc:\n    print('berg:', exc, file=sys.stderr)\n")
    env = {k: v for k, v in os.environ.items() if k not in {"HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"}}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{port}", HF_HOME=str(tmp_path / "hf"), HF_HUB_CACHE=str(tmp_path / "hf" / "hub"))
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=120)
    lines = (run.stdout + run.stderr).strip().splitlines()
    assert len(lines) == 1, run.stdout + run.stderr
    assert lines[0].startswith("berg: backbone 'gpt2' could not be downloaded") and "network" in lines[0]


FETCH = ("import sys\nfrom berg_core.errors import BergError\nfrom berg_core.features.backbones import fetch_backbone\n"
         "try:\n    print(fetch_backbone(sys.argv[1], revision=sys.argv[2] or None))\n"
         "except BergError as exc:\n    print('berg:', exc, file=sys.stderr)\n    sys.exit(3)\n")
COMPARE = ("import sys\nimport numpy as np\nfrom berg_core.features.backbones import load_backbone, sentence_features\n"
           "s = ['The audience erupted into laughter.', 'Hi.']\n"
           "a = sentence_features(load_backbone(sys.argv[1], layer=2, revision=sys.argv[3] or None), s)\n"
           "b = sentence_features(load_backbone(sys.argv[2], layer=2), s)\n"
           "print('max-diff', float(np.abs(a - b).max()))\n")


def test_fetch_backbone_downloads_only_what_berg_reads_and_then_runs_offline(models, tmp_path):
    """Against a loopback hub: the config, tokenizer and safetensors weights at the asked revision land in the HF
    cache (no TF/Flax/ONNX/.bin copies), and a process with HF_HUB_OFFLINE=1 then loads the hub id with the same
    features as the original folder."""
    import os
    import subprocess
    import sys

    from berg_core.testing.hf import serve_hub

    repo, commit = "berg-test/tiny-gpt2", "c" * 40
    junk = {"tf_model.h5": b"tf", "flax_model.msgpack": b"flax", "pytorch_model.bin": b"not a pickle", "onnx/model.safetensors": b"onnx"}
    base = {k: v for k, v in os.environ.items() if k not in {"HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"}}
    base.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_CACHE=str(tmp_path / "hf" / "hub"))

    def python(script, *argv, **env):
        return subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, env={**base, **env},
                              stdin=subprocess.DEVNULL, timeout=300)

    with serve_hub(repo, models["gpt2"], commit=commit, extra=junk) as (url, log):
        bad = python(FETCH, repo, "no-such-tag", HF_ENDPOINT=url)
        assert bad.returncode == 3 and bad.stdout == "", bad.stderr
        lines = bad.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("berg: backbone"), bad.stderr
        assert f"'{repo}@no-such-tag' could not be downloaded or found" in bad.stderr
        log.clear()
        run = python(FETCH, repo, "", HF_ENDPOINT=url)  # the default revision: main
        assert run.returncode == 0, run.stderr
        again = python(FETCH, repo, commit, HF_ENDPOINT=url)  # pinned to the commit: the same snapshot
        assert again.returncode == 0 and again.stdout == run.stdout, again.stderr
    entry = tmp_path / "hf" / "hub" / "models--berg-test--tiny-gpt2"
    snapshot = entry / "snapshots" / commit
    assert run.stdout.strip() == str(snapshot) and (entry / "refs" / "main").read_text() == commit
    downloaded = {path.rsplit("/", 1)[-1] for method, path in log if method == "GET" and "/resolve/" in path}
    assert downloaded == {p.name for p in models["gpt2"].iterdir()} and {"config.json", "model.safetensors"} <= downloaded
    assert sorted(p.name for p in snapshot.iterdir()) == sorted(downloaded)
    assert not any(name in path for _, path in log for name in junk)
    for revision in ("", commit):
        offline = python(COMPARE, repo, str(models["gpt2"]), revision, HF_HUB_OFFLINE="1", HF_ENDPOINT="http://127.0.0.1:9")
        assert offline.returncode == 0, offline.stderr
        assert float(offline.stdout.split()[-1]) == 0.0


def test_every_hugging_face_load_in_berg_passes_trust_remote_code_false():
    """Source scan: each ``*.from_pretrained(...)`` call in berg_core and the plugins says trust_remote_code=False."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    calls = []
    for path in [*(root / "berg_core").rglob("*.py"), *(root / "plugins").glob("*/*/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "from_pretrained":
                trust = [k.value for k in node.keywords if k.arg == "trust_remote_code"]
                calls.append((f"{path.relative_to(root)}:{node.lineno}", len(trust) == 1 and isinstance(trust[0], ast.Constant)
                              and trust[0].value is False))
    assert len(calls) >= 3 and [where for where, ok in calls if not ok] == []


def test_a_trained_encoder_card_naming_a_custom_code_folder_runs_no_code(models, tmp_path):
    """The attack as found: `berg train --backbone FOLDER` writes a card naming a folder with custom code; a user
    runs `berg encode DIR` and types "y" at transformers' prompt. Now: no prompt, one line, the code never runs."""
    import os
    import subprocess
    import sys

    folder, marker = custom_code_backbone(tmp_path, models["gpt2"])
    rng = np.random.default_rng(0)
    np.save(tmp_path / "F.npy", rng.normal(size=(60, 32)))
    np.save(tmp_path / "R.npy", rng.normal(size=(60, 3)))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    berg = [sys.executable, "-m", "berg_core.cli"]
    train = subprocess.run([*berg, "train", "--features", str(tmp_path / "F.npy"), "--responses", str(tmp_path / "R.npy"), "--test", "40:60",
                            "--backbone", str(folder), "--layer", "1", "--out", str(tmp_path / "enc"), "--quiet", "--permutations", "0"],
                           capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=300)
    assert train.returncode == 0, train.stderr
    run = subprocess.run([*berg, "encode", str(tmp_path / "enc"), "A sentence here."], input="y\n", capture_output=True, text=True,
                         env=env, timeout=300)
    assert not marker.exists()
    assert run.returncode == 1 and run.stdout == "" and "[y/N]" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"berg: error: backbone '{folder}' needs custom code"), run.stderr


def test_corrupt_weights_or_config_values_are_one_line(models, tmp_path):
    import json
    import shutil

    folder = tmp_path / "corrupt"
    shutil.copytree(models["gpt2"], folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(b"\xff" * 64 + weights.read_bytes()[64:])
    with pytest.raises(ModelLoadError, match="could not be loaded") as info:
        load_backbone(str(folder), layer=1)
    assert "\n" not in str(info.value)
    shutil.copyfile(models["gpt2"] / "model.safetensors", weights)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["n_embd"] = "wide"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError) as info:
        load_backbone(str(folder), layer=1)
    assert "\n" not in str(info.value) and str(folder) in str(info.value)
