"""``berg_core.select_outputs``: one selection rule and one set of messages for every family (issue 10, item 1)."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from berg_core import InvalidParameterError, ModelLoadError, select_outputs
from berg_core.facade import BERG

ROIS = ("IFG", "MFG", "AntTemp")
TABLE = {"V1": [0, 1, 2], "AC": np.array([False, False, True, True, False, False, False, False]), "Broca": [7], "none": []}
N = 8


# ------------------------------------------------------------------------------------ fixed ROIs


def test_fixed_rois_come_back_in_the_users_order():
    assert select_outputs(None, rois=ROIS) == list(ROIS)
    assert select_outputs({}, rois=ROIS) == list(ROIS)
    assert select_outputs({"roi": None}, rois=ROIS) == list(ROIS)
    assert select_outputs({"roi": ["AntTemp", "IFG"]}, rois=ROIS) == ["AntTemp", "IFG"]
    assert select_outputs({"roi": "MFG"}, rois=ROIS) == ["MFG"]
    got = select_outputs({"roi": np.array(["MFG", "IFG"])}, rois=ROIS)
    assert got == ["MFG", "IFG"] and all(type(r) is str for r in got)


@pytest.mark.parametrize("roi,who,subject,message", [
    (["IFG", "Nope"], None, None, "unknown ROI 'Nope'; valid ROIs: AntTemp, IFG, MFG"),
    ("Nope", "my-model", None, "unknown ROI 'Nope' for my-model; valid ROIs: AntTemp, IFG, MFG"),
    ("Nope", "my-model", "S1", "unknown ROI 'Nope' for subject S1; valid ROIs: AntTemp, IFG, MFG"),
    (["IFG", "IFG"], None, None, "ROI 'IFG' is selected twice; list each ROI once"),
    ([], None, None, "selection['roi'] is an empty list: it selects no voxel or output; give at least one ROI name; "
                     "valid ROIs: AntTemp, IFG, MFG"),
    ([3], None, None, "selection['roi'] must be an ROI name or a list of ROI names, got list holding a non-str; "
                      "valid ROIs: AntTemp, IFG, MFG"),
    (3, None, None, "selection['roi'] must be an ROI name or a list of ROI names, got int; valid ROIs: AntTemp, IFG, MFG"),
])
def test_fixed_roi_mistakes_are_one_line(roi, who, subject, message):
    with pytest.raises(InvalidParameterError) as err:
        select_outputs({"roi": roi}, rois=ROIS, who=who, subject=subject)
    assert str(err.value) == message


def test_exactly_one_kind_of_model():
    with pytest.raises(TypeError, match="exactly one"):
        select_outputs({}, rois=ROIS, n_outputs=3)
    with pytest.raises(TypeError, match="exactly one"):
        select_outputs({})


# ------------------------------------------------------------------------------------ voxelwise


def test_voxelwise_union_in_voxel_order():
    assert select_outputs(None, n_outputs=N, roi_voxels=TABLE).tolist() == list(range(N))
    got = select_outputs({"roi": ["Broca", "AC"], "voxel_index": [0, 0, 0, 0, 0, 1, 0, 0]}, n_outputs=N, roi_voxels=TABLE)
    assert got.dtype == np.int64 and got.tolist() == [2, 3, 5, 7]
    assert select_outputs({"roi": "V1"}, n_outputs=N, roi_voxels=TABLE).tolist() == [0, 1, 2]
    # bool, int and float masks, and a row vector, are the same mask
    for mask in (np.array([1, 0, 0, 0, 0, 0, 0, 1], dtype=bool), [1, 0, 0, 0, 0, 0, 0, 1], np.array([[1.0, 0, 0, 0, 0, 0, 0, 1]])):
        assert select_outputs({"voxel_index": mask}, n_outputs=N).tolist() == [0, 7]


@pytest.mark.parametrize("selection,message", [
    ({"roi": "FFA"}, "unknown ROI 'FFA' for subject UTS01; valid ROIs: AC, Broca, V1, none"),
    ({"voxel_index": np.ones(3)}, "selection['voxel_index'] has length 3, but UTS01 has 8 voxels; give a 0/1 vector of length 8"),
    ({"voxel_index": np.full(N, 2)}, "selection['voxel_index'] must contain only 0 and 1 (a non-empty binary mask over voxels)"),
    ({"voxel_index": [np.nan] * N}, "selection['voxel_index'] must contain only 0 and 1 (a non-empty binary mask over voxels)"),
    ({"voxel_index": ["1"] * N}, "selection['voxel_index'] must contain only 0 and 1 (a non-empty binary mask over voxels)"),
    ({"voxel_index": np.zeros((2, 4))}, "selection['voxel_index'] must be a 0/1 vector of length 8, got an array of shape (2, 4)"),
    ({"voxel_index": [[1, 0], [1]]}, "selection['voxel_index'] must be a 0/1 vector of length 8: "),
    ({"voxel_index": np.zeros(N)}, "selection['voxel_index'] is all zeros (an empty selection): it selects no voxel; "
                                   "set 1 at the voxels you want"),
    ({"roi": "none"}, "the selection ['roi'] selects no voxel of UTS01; give ROI names or a voxel_index"),
])
def test_voxelwise_mistakes_are_one_line(selection, message):
    with pytest.raises(InvalidParameterError) as err:
        select_outputs(selection, n_outputs=N, roi_voxels=TABLE, who="m", subject="UTS01")
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


@pytest.mark.parametrize("table,reason", [
    ({"A": np.ones(5, dtype=bool)}, "has 5 entries but m has 8 voxels"),
    ({"A": [0, 8]}, "lists voxels outside 0..7"),
    ({"A": [-1]}, "lists voxels outside 0..7"),
    ({"A": [0.5]}, "neither a boolean mask nor voxel indices"),
])
def test_a_damaged_roi_table_is_a_model_error(table, reason):
    with pytest.raises(ModelLoadError, match=reason):
        select_outputs({"roi": "A"}, n_outputs=N, roi_voxels=table, who="m")


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(n=st.integers(1, 40), data=st.data())
def test_voxelwise_matches_set_union(n, data):
    """Against an independent reference: Python sets of the ROIs' voxels and the mask's ones, sorted."""
    table = {f"r{k}": data.draw(st.lists(st.integers(0, n - 1), max_size=n)) for k in range(data.draw(st.integers(0, 4)))}
    picked = data.draw(st.lists(st.sampled_from(sorted(table)), unique=True, max_size=len(table))) if table else []
    mask = data.draw(st.none() | st.lists(st.integers(0, 1), min_size=n, max_size=n))
    selection = {"roi": picked or None, "voxel_index": mask}
    want = set().union(*(table[r] for r in picked)) | ({i for i, v in enumerate(mask) if v} if mask else set())
    refused = (mask is not None and not any(mask)) or ((picked or mask is not None) and not want)
    if refused:
        with pytest.raises(InvalidParameterError, match="all zeros|selects no voxel"):
            select_outputs(selection, n_outputs=n, roi_voxels=table)
        return
    expected = sorted(want) if (picked or mask is not None) else list(range(n))
    assert select_outputs(selection, n_outputs=n, roi_voxels=table).tolist() == expected


# ------------------------------------------------------------------------------------ families


def test_the_test_plugins_timed_model_selects_voxels():
    """The toy voxelwise model now honours roi ∪ voxel_index (it ignored its selection before)."""
    story = {"words": ["a", "b", "c", "d"], "word_onsets": [0.0, 0.5, 2.5, 6.0]}
    berg = BERG()
    with berg.get_encoding_model("test-timed_words", subject="S1", device="cpu") as full_model:
        full = full_model.encode(story)
    with berg.get_encoding_model("test-timed_words", subject="S1", device="cpu",
                                 selection={"roi": "odd", "voxel_index": [1, 0, 0, 0]}) as model:
        assert model.output_names == ["voxel_0", "voxel_1", "voxel_3"]
        np.testing.assert_array_equal(model.encode(story), full[:, [0, 1, 3]])
    with pytest.raises(InvalidParameterError, match=r"^selection\['voxel_index'\] has length 2, but test-timed_words has 4 voxels"):
        berg.get_encoding_model("test-timed_words", subject="S1", device="cpu", selection={"voxel_index": [1, 0]})
    with pytest.raises(InvalidParameterError, match=r"^unknown ROI 'left' for test-timed_words; valid ROIs: all, odd$"):
        berg.get_encoding_model("test-timed_words", subject="S1", device="cpu", selection={"roi": "left"})


def test_the_test_plugins_sentence_model_keeps_the_users_order():
    berg = BERG()
    with berg.get_encoding_model("test-sentence_length", device="cpu", selection={"roi": ["roi_c", "roi_a"]}, scale=2.0) as model:
        assert model.output_names == ["roi_c", "roi_a"]
        np.testing.assert_array_equal(model.encode(["abc", "a"]), [[18.0, 6.0], [6.0, 2.0]])
    with pytest.raises(InvalidParameterError, match="'roi_a' is selected twice"):
        berg.get_encoding_model("test-sentence_length", device="cpu", selection={"roi": ["roi_a", "roi_a"]})
