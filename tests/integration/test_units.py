"""Every family says in which units its predictions are (issue 11: the ``units`` attribute of every output file)."""

import pytest
from test_family_options import _family_specs

from berg_core.facade import spec_attrs

EXPECTED_UNIT = {"tuckute": "z", "lebel": "z", "brainscore": "z"}


@pytest.mark.parametrize("family", sorted(EXPECTED_UNIT))
def test_every_family_declares_the_units_of_its_predictions(family):
    spec = _family_specs()[family]
    units = spec_attrs(spec, None, {})["units"]
    assert units.split(" ")[0] == EXPECTED_UNIT[family], units
    assert len(units) > 5  # says what was z-scored, not only the unit
