"""Registration through the `berg` entry point: id, ROIs, files, card, options; a light import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points

from berg_core import BERG
from berg_core.cli import main
from berg_core.registry import get_registry
from berg_tuckute.plugin import METADATA_PATH, MODEL_ID, ROIS, WEIGHTS_PATH

CARD_ROIS = ["lang_LH_AntTemp", "lang_LH_IFG", "lang_LH_IFGorb", "lang_LH_MFG", "lang_LH_PostTemp", "lang_LH_netw"]


def test_entry_point_and_spec():
    eps = [ep for ep in entry_points(group="berg") if ep.name == "tuckute"]
    assert len(eps) == 1 and eps[0].value == "berg_tuckute.plugin" and eps[0].dist.name == "berg-tuckute"
    spec = get_registry().get(MODEL_ID)
    assert spec.family == "tuckute" and spec.plugin.startswith("berg-tuckute ")
    assert list(spec.rois) == CARD_ROIS == list(ROIS)
    assert spec.stimulus == "sentences" and spec.subjects is None and list(spec.selection) == ["roi"]
    assert [f.path for f in spec.remote_files] == [WEIGHTS_PATH, METADATA_PATH]
    assert WEIGHTS_PATH == ("encoding_models/modality-fmri/train_dataset-tuckute_2024/model-GPT2_XL/encoding_models_weights/"
                            "mapping-full_SOURCE-22_TARGET-20221214a-None_d-swr-5-0.05-bySessVoxZ_MAPPING-None-False-False.pkl")
    assert METADATA_PATH == "encoding_models/modality-fmri/train_dataset-tuckute_2024/model-GPT2_XL/metadata/metadata.npy"
    assert spec.options == {"backbone": "gpt2-xl", "layer": 22, "batch_size": 32, "dtype": None, "revision": None}
    assert spec.card.startswith("fmri-tuckute_2024-GPT2_XL\nModel Summary") and "Optimal Layer: 22" in spec.card
    assert MODEL_ID in BERG().list_models("tuckute")


def test_berg_info_shows_card_and_facts(capsys):
    assert main(["info", MODEL_ID]) == 0
    text = capsys.readouterr().out
    assert "lang_LH_PostTemp" in text and "Tuckute" in text and "GPT2-XL" in text
    assert main(["info", MODEL_ID, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["model_id"] == MODEL_ID and data["rois"] == CARD_ROIS


def test_registering_imports_nothing_heavy():
    code = (
        "import sys, json\n"
        "from berg_core.registry import get_registry\n"
        f"get_registry().get({MODEL_ID!r})\n"
        "print(json.dumps(sorted(m for m in ('torch', 'transformers', 'sklearn', 'h5py', 'berg_tuckute.encoder', "
        "'berg_tuckute.weights') if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy(), timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
