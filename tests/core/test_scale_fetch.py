"""`berg fetch 'PATTERN' --subject all --executor ...`: one task per matching model; a failed model does not stop the rest."""

from __future__ import annotations

import pytest

from berg_core.cli import main
from berg_core.errors import ResourceError
from berg_core.facade import BERG


@pytest.mark.parametrize("executor", ["local", "debug"])
def test_pattern_fetches_every_matching_model_and_reports_the_failed_one(monkeypatch, tmp_path, capsys, executor):
    calls = []

    def fake_fetch(self, model_id, subject=None, show_progress=True, *, include_backbone=True, options=None):
        calls.append((model_id, subject, include_backbone))
        if model_id == "test-timed_words":
            raise ResourceError("download of S2/weights.npy failed: connection refused; try again later")
        return [tmp_path / f"{model_id}.bin"]

    monkeypatch.setattr(BERG, "fetch", fake_fetch)
    code = main(["fetch", "test-*", "--subject", "all", "--no-backbone", "--executor", executor, "--berg-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 1
    assert sorted(calls) == [("test-sentence_length", None, False), ("test-timed_words", None, False)]
    assert "model test-timed_words failed: download of S2/weights.npy failed" in err
    assert "1 of 2 models fetched" in err and "1 of 2 tasks failed" in err.strip().splitlines()[-1]


def test_pattern_without_a_match_and_a_single_model_unchanged(monkeypatch, tmp_path, capsys):
    assert main(["fetch", "brainscore_nothing-*", "--berg-dir", str(tmp_path)]) == 1
    assert "no installed model matches 'brainscore_nothing-*'" in capsys.readouterr().err
    calls = []
    monkeypatch.setattr(BERG, "fetch", lambda self, m, subject=None, show_progress=True, **kw: calls.append((m, subject)) or [])
    assert main(["fetch", "test-timed_words", "--subject", "all", "--berg-dir", str(tmp_path)]) == 0
    assert calls == [("test-timed_words", None)]
    assert not (tmp_path / "logs").exists()  # a plain fetch runs here, as before
