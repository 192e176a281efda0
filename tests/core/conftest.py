import pytest

from berg_core.registry import reset_registry


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch, tmp_path):
    """Each test sees a registry built from scratch and its own berg_dir / cache root."""
    for var in ("BERG_LOAD_PLUGINS", "BERG_DISABLE_PLUGINS", "BERG_STRICT_PLUGINS", "BERG_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BERG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("BERG_DIR", str(tmp_path / "berg"))
    reset_registry()
    yield
    reset_registry()
