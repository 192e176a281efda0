"""Text2fMRI features on a tiny random Qwen2: token -> TR assignment (BERG's loop), the explicit last-four mean."""

from __future__ import annotations

import numpy as np
import pytest
from text2fmri_helpers import berg_tokens_by_tr

from berg_text2fmri.features import assign_tokens, last_four_mean, tr_features, tr_text

TRS = ["", "So the", "", "quokka juggled 1999", "", "", "fox jumps", "over the lazy dog.", ""]


def tokenize(tok_dir, trs):
    from transformers import AutoTokenizer

    text, _ = tr_text(trs)
    enc = AutoTokenizer.from_pretrained(str(tok_dir))(text, add_special_tokens=True, return_offsets_mapping=True)
    return text, enc["input_ids"], [tuple(o) for o in enc["offset_mapping"]]


def test_spans_include_each_newline():
    text, ends = tr_text(["ab", "", "c"])
    assert text == "ab\n\nc\n" and ends.tolist() == [3, 4, 6]


def test_assignment_edge_cases_by_hand():
    ends = np.array([3, 4, 6])  # "ab\n" | "\n" | "c\n"
    offsets = np.array([[0, 0],   # zero-length special token at 0: skipped (ends at 0)
                        [0, 2],   # "ab"
                        [2, 4],   # "\n\n" merged across TRs 0 and 1: the earlier TR
                        [3, 4],   # "\n" of the empty TR 1: TR 1
                        [1, 5],   # a token straddling TRs 0..2: the first it overlaps
                        [4, 4],   # empty token on a boundary: no TR
                        [5, 5],   # empty token inside TR 2: TR 2
                        [5, 6]])  # "\n" of TR 2
    want = [-1, 0, 0, 1, 0, -1, 2, 2]
    assert assign_tokens(offsets, ends).tolist() == want
    assert berg_tokens_by_tr(offsets.tolist(), ["ab", "", "c"]).tolist() == want


def test_assignment_equals_bergs_loop_on_the_real_tokenizer(tiny_qwen2_dir):
    text, _, offsets = tokenize(tiny_qwen2_dir, TRS)
    pieces = [text[a:b] for a, b in offsets]
    assert "\n\n" in pieces or "\n\n\n" in pieces  # merged newline runs occur (Qwen-like pre-tokenizer)
    got = assign_tokens(np.array(offsets), tr_text(TRS)[1])
    np.testing.assert_array_equal(got, berg_tokens_by_tr(offsets, TRS))
    assert 2 not in got.tolist() and 0 in got.tolist()  # empty TR 2's "\n" merged into TR 1's "\n\n"; empty TR 0 owns "\n"
    rng = np.random.default_rng(0)
    words = ["the", "fox", "", "", "quokka", "1999!", "dog.", "So", "  "]
    for _ in range(30):  # random transcripts, empty and blank TRs included
        trs = [" ".join(rng.choice(words, rng.integers(0, 4))) for _ in range(rng.integers(1, 15))]
        _, _, offs = tokenize(tiny_qwen2_dir, trs)
        np.testing.assert_array_equal(assign_tokens(np.array(offs).reshape(-1, 2), tr_text(trs)[1]), berg_tokens_by_tr(offs, trs))


def test_an_empty_tr_owning_a_newline_token_gets_its_vector(tiny_qwen2_dir):
    text, _, offsets = tokenize(tiny_qwen2_dir, ["fox jumps.", "", "dog"])
    owners = assign_tokens(np.array(offsets), tr_text(["fox jumps.", "", "dog"])[1])
    pieces = {text[a:b]: o for (a, b), o in zip(offsets, owners)}
    # "." + "\n" + "\n" tokenize as ".\n\n" (punctuation takes the newline run): TR 1 gets nothing
    assert 1 not in owners.tolist() and any("\n\n" in p for p in pieces)


def reference_last_four(model_dir, ids):
    """HF's own ``mean(hidden_states[-4:])`` of the full model (float64)."""
    import torch
    from transformers import Qwen2Model

    model = Qwen2Model.from_pretrained(str(model_dir)).eval()
    with torch.no_grad():
        hs = model(torch.tensor([ids]), output_hidden_states=True).hidden_states
    return torch.stack(hs[-4:]).double().mean(0)[0].numpy(), hs


def test_last_four_mean_is_explicit_and_equals_hidden_states(tiny_qwen2_dir):
    import torch
    from transformers import Qwen2Model

    _, ids, _ = tokenize(tiny_qwen2_dir, TRS)
    want, hs = reference_last_four(tiny_qwen2_dir, ids)
    model = Qwen2Model.from_pretrained(str(tiny_qwen2_dir)).eval()
    got = last_four_mean(model, torch.tensor([ids])).double().numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    # the last entry is the final-normed output: without the norm the mean differs (the tiny model's norm is not 1)
    with torch.no_grad():
        normed = model.norm.weight.clone()
        model.norm.weight.fill_(1.0)
        ones = last_four_mean(model, torch.tensor([ids])).double().numpy()
        model.norm.weight.copy_(normed)
    assert np.abs(ones - want).max() > 1e-3


def test_tr_features_equal_the_per_token_loop(tiny_qwen2_dir):
    from transformers import AutoTokenizer, Qwen2Model

    model = Qwen2Model.from_pretrained(str(tiny_qwen2_dir)).eval()
    tok = AutoTokenizer.from_pretrained(str(tiny_qwen2_dir))
    got = tr_features(model, tok, TRS)
    _, ids, offsets = tokenize(tiny_qwen2_dir, TRS)
    h, _ = reference_last_four(tiny_qwen2_dir, ids)
    owners = berg_tokens_by_tr(offsets, TRS)
    want = np.zeros((len(TRS), h.shape[1]))
    for i in range(len(TRS)):  # BERG: mean of the TR's token rows, zeros without tokens
        rows = [h[t] for t in range(len(ids)) if owners[t] == i]
        if rows:
            want[i] = np.mean(rows, axis=0)
    assert got.dtype == np.float32 and got.shape == (len(TRS), 32)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    assert owners[0] == 0 and np.any(got[0])  # TR 0 is empty but owns its own "\n" token: its vector, not zeros
    assert 2 not in owners.tolist() and np.all(got[2] == 0)  # TR 2's "\n" merged into TR 1's "\n\n": zeros
    assert np.all(got[[i for i in range(len(TRS)) if i not in owners]] == 0)


def test_too_many_tokens_warn_and_keep_the_first(tiny_qwen2_dir):
    from transformers import AutoTokenizer, Qwen2Model

    model = Qwen2Model.from_pretrained(str(tiny_qwen2_dir)).eval()
    tok = AutoTokenizer.from_pretrained(str(tiny_qwen2_dir))
    trs = ["the fox jumps"] * 6
    with pytest.warns(UserWarning, match="more than the language model's 8 positions"):
        got = tr_features(model, tok, trs, max_tokens=8)
    assert np.any(got[0]) and np.all(got[-2:] == 0)
