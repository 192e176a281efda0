"""berg_core.features.words: batched context windows == per-word incremental contexts on the full model."""

from __future__ import annotations

import math

import numpy as np
import pytest
from lebel_helpers import LAYER, make_story
from lebel_reference import incremental_word_features, is_real

from berg_core.errors import StimulusError
from berg_core.features.backbones import load_backbone
from berg_core.features.words import context_windows, expand_to_all_words, is_real_word, word_features, word_token_ids


def incremental_starts(n: int, max_words: int, keep_words: int) -> list[int]:
    """Context start of each word under the spec's grow-then-restart rule, simulated word by word."""
    starts, start, size = [], 0, 0
    for i in range(n):
        if size == max_words:
            start, size = i - keep_words, keep_words
        size += 1
        starts.append(start)
    return starts


@pytest.mark.parametrize("max_words,keep_words", [(512, 256), (8, 3), (5, 0)])
def test_windows_partition_words_with_incremental_contexts(max_words, keep_words):
    for n in [1, 2, max_words - 1, max_words, max_words + 1, 3 * max_words + 7, 1300]:
        windows = context_windows(n, max_words, keep_words)
        expected = 1 if n <= max_words else 1 + math.ceil((n - max_words) / (max_words - keep_words))
        assert len(windows) == expected
        starts = incremental_starts(n, max_words, keep_words)
        assigned = []
        for w in windows:
            assert w.stop - w.start <= max_words
            for i in range(w.assign_from, w.stop):
                assert starts[i] == w.start  # the window's context is exactly word i's incremental context
                assigned.append(i)
        assert assigned == list(range(n))  # every word exactly once, in order


def test_spec_window_layout():
    w = context_windows(1300)
    assert [(x.start, x.stop, x.assign_from) for x in w] == [(0, 512, 0), (256, 768, 512), (512, 1024, 768), (768, 1280, 1024),
                                                             (1024, 1300, 1280)]


def test_real_word_rule_and_copying():
    assert [is_real_word(w) for w in ["a", "'s", "", "  ", "'S", "s", "it's"]] == [True, False, False, False, True, True, True]
    real = np.array([[1.0, 1], [2, 2]])
    mask = np.array([False, True, False, False, True, False])
    np.testing.assert_array_equal(expand_to_all_words(real, mask), [[0, 0], [1, 1], [1, 1], [1, 1], [2, 2], [2, 2]])


def test_first_real_word_has_no_leading_space(opt_dir):
    backbone = load_backbone(str(opt_dir), layer=1)
    ids = word_token_ids(backbone.tokenizer, ["The", "quick"])
    tok = backbone.tokenizer
    assert ids == [tok("The", add_special_tokens=False)["input_ids"], tok(" quick", add_special_tokens=False)["input_ids"]]
    assert ids[0] != tok(" The", add_special_tokens=False)["input_ids"]


def test_short_story_every_word_equals_full_model(opt_dir):
    """All words of a story with non-real words (first word blank) against the full model, one word at a time."""
    words = make_story(60, seed=5)["words"]
    assert not is_real(words[0]) and any(w == "'s" for w in words)
    backbone = load_backbone(str(opt_dir), layer=LAYER)
    got = word_features(backbone, words, batch_size=2)
    ref = incremental_word_features(opt_dir, words, LAYER)
    assert got.dtype == np.float32 and got.shape == (60, 32)
    np.testing.assert_array_equal(got[0], 0.0)
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=1e-5)


def test_long_story_windows_equal_incremental_contexts(opt_dir):
    """1,300 words (5 windows of 512/256): batched windows vs per-word contexts on the full model.

    The reference tracks the context for every word; the full model runs for every word within 3
    words of a window boundary (start, first assigned word, end) and for every 11th word.
    """
    story = make_story(1300, seed=1)
    words = story["words"]
    real_index = [i for i, w in enumerate(words) if is_real(w)]
    windows = context_windows(len(real_index))
    assert len(windows) >= 4
    near = {r + d for w in windows for r in (w.start, w.assign_from, w.stop - 1) for d in range(-2, 3)}
    sampled = {real_index[r] for r in near if 0 <= r < len(real_index)} | set(real_index[::17])
    ref = incremental_word_features(opt_dir, words, LAYER, only=sampled)
    backbone = load_backbone(str(opt_dir), layer=LAYER)
    got = word_features(backbone, words, batch_size=3)
    rows = sorted(sampled)
    assert len(rows) > 80
    np.testing.assert_allclose(got[rows], ref[rows], atol=1e-5, rtol=1e-5)
    # non-real words copy the previous real word
    for i in range(1, len(words)):
        if not is_real(words[i]):
            np.testing.assert_array_equal(got[i], got[i - 1])


def test_too_many_tokens_for_the_backbone(opt_dir):
    backbone = load_backbone(str(opt_dir), layer=1)
    backbone.model.config.max_position_embeddings = 64  # a window of 512 words cannot fit
    with pytest.raises(StimulusError, match="tokens in one context window"):
        word_features(backbone, ["seatbelt"] * 100)


def test_feature_cache_memory_disk_and_damaged_entries(tmp_path, monkeypatch):
    from berg_core.features import cache as features

    calls = []

    def compute():
        calls.append(1)
        return np.arange(6, dtype=np.float32).reshape(3, 2) * len(calls)

    key = {"backbone": "x", "revision": "r", "layer": 1, "words": features.stimulus_hash(["a", "b", "c"])}
    first = features.cached_features(key, compute)
    assert not first.flags.writeable and len(calls) == 1
    np.testing.assert_array_equal(features.cached_features(key, compute), first)
    assert len(calls) == 1 and features.stats["memory"] == 1
    features.clear_memory()
    np.testing.assert_array_equal(features.cached_features(key, compute), first)  # from disk
    assert len(calls) == 1 and features.stats["disk"] == 1
    features.clear_memory()
    features.feature_path(key).write_bytes(b"garbage")  # damaged entry: recomputed and rewritten
    with pytest.warns(features.FeatureCacheWarning, match="damaged .*recomputing"):
        np.testing.assert_array_equal(features.cached_features(key, compute), first * 2)
    assert len(calls) == 2
    features.cached_features({**key, "layer": 2}, compute)  # any key part changes the entry
    assert len(calls) == 3
    features.cached_features(key, compute, enabled=False)
    assert len(calls) == 4
    assert features.stimulus_hash(["a", "b"]) != features.stimulus_hash(["a b"])
    assert features.stimulus_hash(["a"], [0.0]) != features.stimulus_hash(["a"], [0.5])


def test_backbone_revision_fingerprints_local_folders(opt_dir, tmp_path):
    from berg_core.features.cache import backbone_revision

    rev = backbone_revision(str(opt_dir))
    assert rev.startswith("local:") and rev == backbone_revision(str(opt_dir))
    assert backbone_revision(str(opt_dir), "abc123") == "abc123"
    assert backbone_revision("facebook/opt-1.3b") == "hub:facebook/opt-1.3b@main"
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in opt_dir.iterdir():
        (copy / f.name).write_bytes(f.read_bytes() + (b" " if f.suffix == ".json" else b""))
    assert backbone_revision(str(copy)) != rev
