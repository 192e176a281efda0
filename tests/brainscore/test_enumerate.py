"""Dynamic enumeration: every id of the installed brainscore-language, found without importing it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from importlib.metadata import version
from pathlib import Path

from berg_brainscore.enumerate import LARGE_DOWNLOAD, UNSUITABLE, USABLE, package_dir, scan
from berg_core.cli import main

REGEX = re.compile(r"""model_registry\[\s*['"]([^'"]+)['"]\s*\]\s*=""")


def regex_ids(root: Path) -> list[str]:
    """An independent scan: the literal keys of `model_registry[...] =` lines in models/*/__init__.py."""
    ids = []
    for init in sorted((root / "models").glob("*/__init__.py")):
        ids += REGEX.findall(init.read_text(encoding="utf-8"))
    return ids


def test_ids_equal_an_independent_regex_scan():
    root = package_dir()
    expected = regex_ids(root)
    result = scan()
    assert result.unresolved == ()
    assert sorted(m.name for m in result.models) == sorted(expected)
    assert len(set(expected)) == len(expected)
    if version("brainscore-language") == "2.3.0":
        assert len(expected) == 94
        assert len({m.folder for m in result.models}) == 32


def test_registry_lists_every_id_without_importing_brainscore_or_torch():
    code = textwrap.dedent("""
        import json, sys
        from berg_core.registry import get_registry
        ids = [i for i in get_registry().specs if i.startswith("brainscore_language-")]
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("brainscore_language", "brainscore_core", "torch", "transformers", "sklearn", "xarray"))
        print(json.dumps({"ids": ids, "heavy": heavy}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    got = json.loads(out.strip().splitlines()[-1])
    assert got["heavy"] == []
    assert sorted(got["ids"]) == sorted(f"brainscore_language-{i}" for i in regex_ids(package_dir()))


def test_layers_and_statuses_of_known_ids():
    models = {m.name: m for m in scan().models}
    assert models["gpt2"].layer == "transformer.h.11" and models["gpt2"].status == USABLE
    assert models["distilgpt2"].layer == "transformer.h.5" and models["distilgpt2"].hub_id == "distilgpt2"
    assert models["gpt2-xl"].layer == "transformer.h.43" and models["gpt2-xl"].status == LARGE_DOWNLOAD
    assert models["gpt-neo-125m"].hub_id == "EleutherAI/gpt-neo-125m" and models["gpt-neo-125m"].status == USABLE
    assert models["randomembedding-100"].status == USABLE and "no download" in models["randomembedding-100"].reason
    assert models["glove-840b"].status == LARGE_DOWNLOAD and "nlp.stanford.edu" in models["glove-840b"].reason
    assert models["oasm-sigma1.0"].status == UNSUITABLE and "ignore the text" in models["oasm-sigma1.0"].reason
    assert models["rnn-lm-ptb"].status == UNSUITABLE and "container" in models["rnn-lm-ptb"].reason.lower()
    assert models["rnn-tdg-ptb"].layer == "rnng-mean"  # read through the folder's helper function
    assert models["lm1b"].status == UNSUITABLE and "TensorFlow" in models["lm1b"].reason
    assert models["earley-parser-minivocab"].status == UNSUITABLE and "no neural output" in models["earley-parser-minivocab"].reason
    assert models["qwen3-0.6b-loc-10"].layer is None and "localizer" in models["qwen3-0.6b-loc-10"].reason
    assert models["llada-8b-base"].status == UNSUITABLE and "trust_remote_code=True" in models["llada-8b-base"].reason
    assert sum(m.status == UNSUITABLE for m in models.values()) == sum(1 for n in models if n.startswith(("oasm", "rnn-"))) + 3


def test_literal_loops_constants_and_unresolvable_ids(tmp_path):
    folder = tmp_path / "models" / "family"
    folder.mkdir(parents=True)
    source = textwrap.dedent("""
        from brainscore_language import model_registry, ArtificialSubject
        from brainscore_language.model_helpers.huggingface import HuggingfaceSubject
        HUB = 'org/base-350m'
        LAYER = 'model.layers.3'
        model_registry['const'] = lambda: HuggingfaceSubject(model_id=HUB, region_layer_mapping={
            ArtificialSubject.RecordingTarget.language_system: LAYER})
        for size in ['1b', '7b']:
            model_registry[f'fam-{size}'] = lambda size=size: HuggingfaceSubject(model_id=f'org/fam-{size}', region_layer_mapping={
                ArtificialSubject.RecordingTarget.language_system: f'model.layers.{size}'})
        for n in range(config.num_layers):
            model_registry[f'dyn-{n}'] = None
    """)
    (folder / "__init__.py").write_text(source)
    dyn_line = next(i for i, line in enumerate(source.splitlines(), 1) if "dyn-" in line)
    result = scan(tmp_path)
    models = {m.name: m for m in result.models}
    assert sorted(models) == ["const", "fam-1b", "fam-7b"]
    assert models["const"].hub_id == "org/base-350m" and models["const"].layer == "model.layers.3" and models["const"].status == USABLE
    assert models["fam-7b"].hub_id == "org/fam-7b" and models["fam-7b"].status == LARGE_DOWNLOAD
    assert len(result.unresolved) == 1 and result.unresolved[0].endswith(f"__init__.py:{dyn_line}")


def test_cli_list_and_info(capsys):
    assert main(["list", "brainscore"]) == 0
    lines = capsys.readouterr().out.splitlines()
    ids = {line.split()[0] for line in lines}
    assert {f"brainscore_language-{i}" for i in regex_ids(package_dir())} <= ids
    assert any(line.startswith("brainscore_language-oasm-sigma0 ") and "[unsuitable]" in line for line in lines)
    assert main(["info", "brainscore_language-gpt2"]) == 0
    out = capsys.readouterr().out
    assert "layer: transformer.h.11" in out and "status: usable" in out
    assert "subjects: 018, 199, 288, 289, 296, 343, 366, 407, 426" in out
    assert main(["info", "brainscore_language-oasm-sigma0", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)["info"]
    assert info["status"] == UNSUITABLE and "ignore the text" in info["reason"]
