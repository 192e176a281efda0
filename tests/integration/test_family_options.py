"""Typed load options of every installed family (issue 10 item 2): needs tuckute, lebel and the test plugin installed."""

import sys
from pathlib import Path

import pytest

from berg_core.options import Option
from berg_core.registry import get_registry
from berg_core.spec import EncoderSpec

SENTENCE = "test-sentence_length"
ROOT = Path(__file__).resolve().parents[2]


def _family_specs() -> dict[str, EncoderSpec]:
    """One spec of each family: tuckute, lebel, brainscore (its plugin.py is light), trained, the test plugin."""
    from berg_core.trained.cards import TRAINED_OPTIONS
    from berg_lebel.plugin import lebel_spec
    from berg_tuckute.plugin import MODEL_ID

    sys.path.insert(0, str(ROOT / "plugins" / "berg_brainscore"))  # the plugin module only (no brainscore import)
    try:
        from berg_brainscore.enumerate import BrainscoreModel
        from berg_brainscore.plugin import make_spec
    finally:
        sys.path.remove(str(ROOT / "plugins" / "berg_brainscore"))
    model = BrainscoreModel(name="gpt2", folder="gpt2", subject_class="HuggingfaceSubject", hub_id="gpt2", layer="x",
                            status="ok", reason="")
    return {
        "tuckute": get_registry().get(MODEL_ID),
        "lebel": lebel_spec(),
        "brainscore": make_spec(model, version="2.3.0"),
        "trained": EncoderSpec("t", "trained", "m:f", options=TRAINED_OPTIONS),
        "testplugin": get_registry().get(SENTENCE),
    }


@pytest.mark.parametrize("family", ["tuckute", "lebel", "brainscore", "trained", "testplugin"])
def test_every_family_declares_typed_options(family):
    spec = _family_specs()[family]
    declared = spec.options.declared
    assert declared and all(isinstance(o, Option) for o in declared)
    for opt in declared:
        assert opt.type in (bool, int, float, str), (family, opt.name)  # no untyped option
        assert opt.help, (family, opt.name)
    if "batch_size" in spec.options:  # the hand checks of batch_size are gone: the declaration carries the minimum
        assert spec.options.option("batch_size").type is int and spec.options.option("batch_size").minimum == 1


def test_family_params_live_apart_from_info():
    """brainscore's factory reads its facts from ``spec.params`` (info stays display-only); trained reads params['path']."""
    spec = _family_specs()["brainscore"]
    assert spec.params["brainscore_id"] == "gpt2" and "params" not in spec.to_dict()
    sys.path.insert(0, str(ROOT / "plugins" / "berg_brainscore"))
    try:
        from berg_brainscore.enumerate import BrainscoreModel
    finally:
        sys.path.remove(str(ROOT / "plugins" / "berg_brainscore"))
    assert BrainscoreModel.from_info(spec.params).name == "gpt2"
