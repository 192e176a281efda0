"""All numpy-2 families installed together: ids unique, listed, described without loading backbones."""

import json
import subprocess
import sys

from berg_core import BERG
from berg_core.registry import get_registry, reset_registry


def setup_function():
    reset_registry()


def test_family_models_listed_once():
    reg = get_registry()
    assert "fmri-tuckute_2024-GPT2_XL" in reg.specs
    assert "fmri-lebel2023-opt_1_3b" in reg.specs
    assert set(reg.duplicates) == {"test-duplicate"}
    ids = [s.model_id for s in reg.find()]
    assert len(ids) == len(set(ids))


def test_berg_list_json_subprocess():
    out = subprocess.run([sys.executable, "-m", "berg_core.cli", "list", "--json"], capture_output=True, text=True, check=True).stdout
    ids = {m["model_id"]: m for m in json.loads(out)}
    assert ids["fmri-lebel2023-opt_1_3b"]["subjects"] == [f"UTS0{i}" for i in range(1, 9)]
    assert ids["fmri-tuckute_2024-GPT2_XL"]["plugin"].startswith("berg-tuckute ")


def test_describe_every_model():
    berg = BERG()
    for model_id in berg.list_models():
        assert model_id in berg.describe(model_id)
