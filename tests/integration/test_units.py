"""Every family says in which units its predictions are (issue 11: the ``units`` attribute of every output file)."""

import pytest
from test_family_options import _family_specs

from berg_core.facade import spec_attrs
from berg_core.registry import get_registry

EXPECTED_UNIT = {"tuckute": "z", "lebel": "z", "brainscore": "z", "ecog": "high-gamma", "text2fmri": "BOLD,"}


def _spec(family: str):
    if family in ("ecog", "text2fmri"):
        from berg_ecog.plugin import MODEL_ID as ECOG
        from berg_text2fmri.plugin import MODEL_ID as TEXT2FMRI

        return get_registry().get({"ecog": ECOG, "text2fmri": TEXT2FMRI}[family])
    return _family_specs()[family]


@pytest.mark.parametrize("family", sorted(EXPECTED_UNIT))
def test_every_family_declares_the_units_of_its_predictions(family):
    spec = _spec(family)
    units = spec_attrs(spec, None, {})["units"]
    assert units.split(" ")[0] == EXPECTED_UNIT[family], units
    assert len(units) > 5  # says what was z-scored, not only the unit
