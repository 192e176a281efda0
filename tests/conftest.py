"""For every suite (tests/integration has no conftest of its own): no test reaches a non-loopback host."""

import pytest

from berg_core.testing import refuse_network


@pytest.fixture(autouse=True)
def no_remote_hosts():
    """Resolving or connecting to a non-loopback host raises ``NetworkGuardError`` (child processes excepted)."""
    with refuse_network():
        yield
