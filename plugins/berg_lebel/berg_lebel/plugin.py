"""Registers ``fmri-lebel2023-opt_1_3b`` (subjects UTS01-UTS08). Imports nothing heavy."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources

from berg_core import EncoderSpec, Option, Options, RemoteFile, hookimpl

MODEL_ID = "fmri-lebel2023-opt_1_3b"
SUBJECTS = ("UTS01", "UTS02", "UTS03", "UTS04", "UTS05", "UTS06", "UTS07", "UTS08")
#: cortical voxels per subject (BERG's card); the files' own counts are what the code checks against
N_VOXELS = {"UTS01": 81126, "UTS02": 94251, "UTS03": 95556, "UTS04": 109469, "UTS05": 99322, "UTS06": 92198,
            "UTS07": 94395, "UTS08": 97023}
MODEL_DIR = "encoding_models/modality-fmri/train_dataset-lebel2023/model-opt_1_3b_ridge"
WEIGHTS_FILE = MODEL_DIR + "/encoding_models_weights/weights_{subject}.npy"
METADATA_FILE = MODEL_DIR + "/metadata/metadata_{subject}.npy"
#: the subject's pycortex files on OpenNeuro ds003020 (the voxel order and the functional space): (size, MD5)
PYCORTEX_DIR = "ds003020/derivative/pycortex-db/{subject}/transforms/{subject}_auto/"
MASK_FILES = {
    "UTS01": (14622, "76eda19b0d784cf95fda0e1f33e2035e"), "UTS02": (16306, "fb22c810477b257e76690cd0f800de84"),
    "UTS03": (16119, "621640c8f979a1ebb06d68a67dc3aef0"), "UTS04": (17466, "f8d630fe06d79eaf82e00a723bcd955d"),
    "UTS05": (16666, "3c7efa27fe1974e6c4b112d07ad530ae"), "UTS06": (15950, "52aace396a9212a3b75657b86ec21445"),
    "UTS07": (15431, "230ae98046135fe1a3ff93af221a5f0f"), "UTS08": (16430, "cd7d8fd5b573ec550adaf51a2109b0ca"),
}
REFERENCE_FILES = {
    "UTS01": (1401336, "de4c5d170a61992d5c6823f1804f789b"), "UTS02": (1407949, "7f68bc8d7f4b89e3e742e79444f0cdcf"),
    "UTS03": (1406899, "f7a6ed8607554cb953ab31f30074f400"), "UTS04": (1405634, "651df957a1cb6fab793ed32cc8f35db5"),
    "UTS05": (1404263, "bc2a3732234f86503375071c9ac81c5b"), "UTS06": (1401392, "f1e038d60c51a9c430caddc9a2163d3c"),
    "UTS07": (1407712, "d2c4b5395cf6c9c710fac5ffc04e69f7"), "UTS08": (1409948, "ebedb8b82cd6c27eed995cfff8dcef1a"),
}
BACKBONE = "facebook/opt-1.3b"
LAYER = 18


def _card() -> str:
    try:
        return resources.files("berg_lebel").joinpath("card.txt").read_text(encoding="utf-8")
    except OSError:  # pragma: no cover - package data missing from a broken install
        return ""


def lebel_spec() -> EncoderSpec:
    """The model's spec (data only; the encoder is imported when the model is loaded)."""
    counts = ", ".join(f"{s} {n:,}" for s, n in N_VOXELS.items())
    return EncoderSpec(
        model_id=MODEL_ID,
        family="lebel",
        factory="berg_lebel.encoder:LebelEncoder",
        description=(
            "Voxelwise fMRI responses to a story (words + onsets, s) from LeBel et al. (2023): OPT-1.3B layer-18 "
            "word features (dynamic 512/256-word context), Lanczos-resampled to TR = 2 s, z-scored per stimulus, "
            "FIR delays 1-4 TRs, ridge weights per voxel (Antonello et al. 2023)."
        ),
        subjects=SUBJECTS,
        selection={
            "roi": "ROI name or list of names (the set varies per subject; see get_model_metadata(..., subject=S)['roi'])",
            "voxel_index": f"0/1 vector of length n_voxels ({counts}); united with 'roi'",
        },
        stimulus="timed_words",
        metadata="berg_lebel.weights:load_metadata",
        remote_files=(RemoteFile(METADATA_FILE, per_subject=True), RemoteFile(WEIGHTS_FILE, per_subject=True)),
        prepare="berg_lebel.weights:prepare",
        card=_card(),
        options=Options(
            Option("backbone", str, BACKBONE, help="hub id or local folder of the feature model"),
            Option("layer", int, LAYER, minimum=0, help="hidden_states index read (0 = embeddings)"),
            Option("revision", str, None, help="hub revision (commit, tag or branch) of the backbone"),
            Option("dtype", str, None, choices=("float32", "float16", "bfloat16"),
                   help="backbone precision; None: float32 on CPU, float16 on GPU"),
            Option("batch_size", int, 8, minimum=1, help="context windows per forward pass"),
            Option("feature_cache", bool, True, help="reuse word features across subjects and runs"),
            Option("progress", bool, True, help="bars while fetching/converting"),
        ),
        info={
            "backbone": f"{BACKBONE}, hidden_states[{LAYER}] (blocks 1-{LAYER} of 24 run), last token of each word",
            "n_outputs": dict(N_VOXELS),
            "tr_s": 2.0,
            "units": "z (BOLD z-scored per voxel)",
            "volume": True,
            "space": "subject-native functional (pycortex UTSxx_auto; mask_thick + reference.nii.gz from OpenNeuro ds003020)",
            "delays_tr": [1, 2, 3, 4],
            "output": "float32 (n_TRs, n_selected_voxels), voxels in ascending index order",
            "weights": "BERG's weights_{S}.npy converted once to float32 HDF5 chunked by voxel (cache); only selected voxels are read",
            "dtype": "backbone float32 on CPU, float16 on GPU (option dtype=)",
            "parity": "BERG's inference recipe (not the training one: no lower-casing, onsets not mid-times, no trimming)",
        },
    )


@hookimpl
def berg_register_encoders(register: Callable[[EncoderSpec], None]) -> None:
    register(lebel_spec())
