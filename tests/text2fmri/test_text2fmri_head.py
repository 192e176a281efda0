"""berg's Text2fMRI head against BERG's module built on the pinned x-transformers 2.3.0, and against the formulas."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
from text2fmri_helpers import bergs_model

from berg_core import ModelLoadError
from berg_text2fmri.head import Text2fMRIHead, apply_rope, convert_state_dict
from berg_text2fmri.testing import head_config, write_head, xt_state_dict
from berg_text2fmri.weights import load_head, read_config

x_transformers = pytest.importorskip("x_transformers", reason="the head's reference needs x-transformers==2.3.0 (pip install -e 'plugins/berg_text2fmri[test]')")


def test_pinned_library_version():
    from importlib.metadata import version

    assert version("x-transformers") == "2.3.0"


@pytest.mark.parametrize("seed", [0, 1])
def test_head_equals_the_x_transformers_forward(seed):
    config = head_config("unused", dim=64, depth=2, heads=4)
    state = xt_state_dict(config, seed)
    ref = bergs_model(config)
    ref.load_state_dict(state, strict=True)  # the fixture's keys are exactly BERG's module's
    head = Text2fMRIHead.from_config(config).eval()
    head.load_state_dict(convert_state_dict(state, head), strict=True)
    x = torch.randn(40, 32, generator=torch.Generator().manual_seed(seed))
    rois = np.sort(np.random.default_rng(seed).choice(1000, 57, replace=False))
    with torch.no_grad():
        for subject in (0, 3):
            want = ref(x[None], torch.tensor([subject]), rois)[0]
            got = head(x, subject, torch.as_tensor(rois))
            assert got.shape == (40, 57)
            torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
            assert (want[1:] - want[:-1]).abs().max() > 1e-2  # rows differ: positions matter at this tolerance
        torch.testing.assert_close(head(x, 2), ref(x[None], torch.tensor([2]), np.arange(1000))[0], rtol=0, atol=1e-5)


def interleaved_rope_by_hand(x, theta=10000.0):
    """(T, d): position t, pair j = (x[2j], x[2j+1]) rotated by angle t * theta^(-2j/d) (GPT-J, x-transformers >= 1.35)."""
    t_len, d = x.shape
    out = np.empty_like(x)
    for t in range(t_len):
        for j in range(d // 2):
            a = t * theta ** (-2 * j / d)
            c, s = math.cos(a), math.sin(a)
            out[t, 2 * j] = x[t, 2 * j] * c - x[t, 2 * j + 1] * s
            out[t, 2 * j + 1] = x[t, 2 * j] * s + x[t, 2 * j + 1] * c
    return out


def halves_rope_by_hand(x, theta=10000.0):
    """NeoX convention (x-transformers 1.27): dims j and j + d/2 rotate together."""
    t_len, d = x.shape
    out = np.empty_like(x)
    for t in range(t_len):
        for j in range(d // 2):
            a = t * theta ** (-2 * j / d)
            c, s = math.cos(a), math.sin(a)
            out[t, j] = x[t, j] * c - x[t, j + d // 2] * s
            out[t, j + d // 2] = x[t, j] * s + x[t, j + d // 2] * c
    return out


def test_rope_is_interleaved_pairs():
    """Fails if the RoPE convention flips to rotated halves (the weights expect x-transformers >= 1.35's pairs)."""
    d = 16
    x = np.random.default_rng(0).standard_normal((12, d))
    inv_freq = 1.0 / 10000 ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
    got = apply_rope(torch.as_tensor(x), inv_freq).numpy()
    np.testing.assert_allclose(got, interleaved_rope_by_hand(x), rtol=0, atol=1e-12)
    assert np.abs(got - halves_rope_by_hand(x)).max() > 0.1  # the other convention is far off
    np.testing.assert_allclose(got[0], x[0])  # position 0 is not rotated


def test_scalenorm_unit_offset():
    """x-transformers 2.x stores ScaleNorm's g with a unit offset: a stored 0 scales by 1."""
    from berg_text2fmri.head import ScaleNorm

    norm = ScaleNorm(64)
    x = torch.randn(3, 64)
    torch.testing.assert_close(norm(x), x / x.norm(dim=-1, keepdim=True) * 8.0)
    with torch.no_grad():
        norm.g.fill_(0.5)
    torch.testing.assert_close(norm(x), x / x.norm(dim=-1, keepdim=True) * 8.0 * 1.5)


def test_load_head_from_a_hub_like_folder(tmp_path):
    config = head_config("unused")
    folder = write_head(tmp_path / "v", config, seed=4)
    head = load_head(folder, read_config(folder))
    ref = bergs_model(config)
    ref.load_state_dict(torch.load(folder / "model.pt", weights_only=True))
    x = torch.randn(9, 32)
    with torch.no_grad():
        torch.testing.assert_close(head(x, 1), ref(x[None], torch.tensor([1]), np.arange(1000))[0], rtol=0, atol=1e-5)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize(("mutate", "match"), [
    (lambda sd: sd.pop("encoder.final_norm.g"), "missing keys"),
    (lambda sd: sd.update({"encoder.layers.9.1.to_q.weight": torch.zeros(1)}), "unexpected keys"),
    (lambda sd: sd.update({"out.weight": torch.zeros(999, 64)}), r"out.weight has shape \(999, 64\)"),
    (lambda sd: sd.update({"encoder.rotary_pos_emb.inv_freq": torch.ones(8)}), "rotary frequencies"),
    (lambda sd: sd.update({"evil": Evil()}), "not a plain torch state dict"),
])
def test_wrong_head_files_are_one_line_errors(tmp_path, mutate, match):
    config = head_config("unused")
    folder = write_head(tmp_path / "v", config)
    state = torch.load(folder / "model.pt", weights_only=True)
    mutate(state)
    torch.save(state, folder / "model.pt")
    with pytest.raises(ModelLoadError, match=match) as info:
        load_head(folder, read_config(folder))
    assert "\n" not in str(info.value)


def test_bad_configs_are_one_line_errors(tmp_path):
    folder = write_head(tmp_path / "v", head_config("unused"))
    (folder / "config.json").write_text('{"num_subjects": 4}')
    with pytest.raises(ModelLoadError, match="lacks num_rois"):
        read_config(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="not a readable JSON"):
        read_config(folder)
