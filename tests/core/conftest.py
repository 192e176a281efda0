import pytest

from berg_core.testing import isolated_berg


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch, tmp_path):
    """Each test sees a registry built from scratch and its own berg_dir / cache root."""
    with isolated_berg(monkeypatch, tmp_path):
        yield
