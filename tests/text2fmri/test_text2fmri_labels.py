"""The Schaefer-2018 1000-parcel 7-network label table shipped with berg_text2fmri: its invariants (from the raw
lines), the sha256 check, the agreement check against BERG's metadata roi_masks and `berg info`'s network counts."""

from __future__ import annotations

import hashlib
import re
from collections import Counter

import numpy as np
import pytest

from berg_core import BERG, ModelLoadError
from berg_core.cli import main
from berg_text2fmri import labels, weights
from berg_text2fmri.plugin import METADATA_PATH, MODEL_ID, NETWORKS
from berg_text2fmri.testing import head_config, roi_masks, write_head

#: parcels per network (both hemispheres), counted from CBIG's Schaefer2018_1000Parcels_7Networks_order.txt
CBIG_COUNTS = {"Vis": 162, "SomMot": 194, "DorsAttn": 122, "SalVentAttn": 121, "Limbic": 60, "Cont": 129, "Default": 212}


def raw_rows() -> list[tuple[int, str]]:
    lines = labels.TABLE_PATH.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("#") and not any(line.startswith("#") for line in lines[1:])
    return [(int(i), name) for i, name in (line.split("\t") for line in lines[1:])]


def test_the_table_has_1000_ordered_rows_lh_then_rh_and_seven_networks():
    rows = raw_rows()
    assert [i for i, _ in rows] == list(range(1, 1001))
    assert all(re.fullmatch(r"7Networks_(LH|RH)_[A-Za-z]+(_[A-Za-z]+)?_\d+", name) for _, name in rows)
    assert {name.split("_")[1] for i, name in rows if i <= 500} == {"LH"}
    assert {name.split("_")[1] for i, name in rows if i > 500} == {"RH"}
    assert {name.split("_")[2] for _, name in rows} == set(NETWORKS)
    assert len({name for _, name in rows}) == 1000
    header = labels.TABLE_PATH.read_text(encoding="utf-8").splitlines()[0]
    for fact in ("ThomasYeoLab/CBIG", "Schaefer2018_1000Parcels_7Networks_order.txt", "MIT",
                 "c4034588d99b80c5cabf7fc1071c5766e4688ce9"):
        assert fact in header


def test_the_loader_gives_the_raw_names_and_network_counts():
    rows = raw_rows()
    counts = Counter(name.split("_")[2] for _, name in rows)
    assert labels.parcel_labels() == tuple(name for _, name in rows)
    assert labels.network_counts() == dict(counts) == CBIG_COUNTS
    assert list(labels.network_counts()) == list(NETWORKS)
    parcels = labels.network_parcels()
    assert parcels["Cont"][-2:] == (998, 999)  # RH_Cont_PCC_1/2 come after the RH Default parcels
    assert sorted(i for idx in parcels.values() for i in idx) == list(range(1000))


def test_the_recorded_sha256_is_the_files():
    assert hashlib.sha256(labels.TABLE_PATH.read_bytes()).hexdigest() == labels.TABLE_SHA256


@pytest.mark.parametrize("damage", [
    lambda b: b.replace(b"7Networks_LH_Vis_1\n", b"7Networks_LH_Vis_1 \n", 1),
    lambda b: b[:-30],
    lambda b: b"",
])
def test_a_damaged_table_is_one_line_error(tmp_path, damage):
    bad = tmp_path / labels.TABLE_PATH.name
    bad.write_bytes(damage(labels.TABLE_PATH.read_bytes()))
    with pytest.raises(ModelLoadError, match="is damaged .*reinstall berg-text2fmri") as info:
        labels.read_table(bad)
    assert "\n" not in str(info.value)


def test_a_damaged_table_stops_the_model_load(berg_dir, head_dir, tmp_path, monkeypatch):
    bad = tmp_path / "table.tsv"
    bad.write_bytes(labels.TABLE_PATH.read_bytes().replace(b"_Vis_", b"_Vix_", 1))
    monkeypatch.setattr(labels, "TABLE_PATH", bad)
    labels.parcel_labels.cache_clear()
    try:
        with pytest.raises(ModelLoadError, match=f"{bad} is damaged") as info:
            BERG(berg_dir).get_encoding_model(MODEL_ID, subject="1", model_variant=str(head_dir), device="cpu")
    finally:
        labels.parcel_labels.cache_clear()
    assert "\n" not in str(info.value)


def test_metadata_masks_that_disagree_name_both_files(tmp_path, tiny_qwen2_dir):
    masks = {k.lower(): v.copy() for k, v in roi_masks().items()}
    masks["vis"][0], masks["sommot"][0] = False, True  # parcel 1 (LH_Vis_1) moved to SomMot
    berg_dir = tmp_path / "berg"
    path = berg_dir / METADATA_PATH
    path.parent.mkdir(parents=True)
    np.save(path, {"roi_masks": masks}, allow_pickle=True)
    head = write_head(tmp_path / "head", head_config(str(tiny_qwen2_dir)))
    with pytest.raises(ModelLoadError) as info:
        BERG(berg_dir).get_encoding_model(MODEL_ID, subject="1", model_variant=str(head), device="cpu")
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg and labels.TABLE_PATH.name in msg
    assert "roi_masks['Vis'] (161 parcels)" in msg and "(162 parcels)" in msg and "first label 1" in msg
    with pytest.raises(ModelLoadError, match="disagrees with the shipped label table"):
        weights.read_roi_masks(path)


def test_agreeing_metadata_is_read(tmp_path):
    path = tmp_path / "metadata.npy"
    np.save(path, {"roi_masks": roi_masks(capitalised=False)}, allow_pickle=True)
    got = weights.read_roi_masks(path)
    assert {net: int(m.sum()) for net, m in got.items()} == CBIG_COUNTS


def test_berg_info_shows_the_networks_with_their_counts(capsys):
    assert main(["info", MODEL_ID]) == 0
    text = capsys.readouterr().out
    assert ", ".join(f"{net} {n}" for net, n in CBIG_COUNTS.items()) in text
