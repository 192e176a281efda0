"""Registers ``fmri-tuckute_2024-GPT2_XL`` (Tuckute et al. 2024) with berg.

Data only: importing this module imports nothing heavy (no numpy work, torch, transformers, sklearn or
h5py); the encoder and the file conversion live behind the ``factory``/``metadata``/``prepare`` strings.
"""

from __future__ import annotations

from berg_core import EncoderSpec, Option, Options, RemoteFile, hookimpl
from berg_tuckute.card import CARD

MODEL_ID = "fmri-tuckute_2024-GPT2_XL"

#: The six left-hemisphere language fROIs, in BERG's default output order.
ROIS: tuple[str, ...] = (
    "lang_LH_AntTemp",
    "lang_LH_IFG",
    "lang_LH_IFGorb",
    "lang_LH_MFG",
    "lang_LH_PostTemp",
    "lang_LH_netw",
)

#: Paths relative to berg_dir (= keys in BERG's bucket).
MODEL_DIR = "encoding_models/modality-fmri/train_dataset-tuckute_2024/model-GPT2_XL"
WEIGHTS_PATH = (
    f"{MODEL_DIR}/encoding_models_weights/"
    "mapping-full_SOURCE-22_TARGET-20221214a-None_d-swr-5-0.05-bySessVoxZ_MAPPING-None-False-False.pkl"
)
METADATA_PATH = f"{MODEL_DIR}/metadata/metadata.npy"

#: Load options (``get_encoding_model(..., **options)``), typed; checked by berg before the encoder is imported.
OPTIONS = Options(
    Option("backbone", str, "gpt2-xl", help="hub id or local folder of a GPT-2 model (tests use a tiny random one)"),
    Option("layer", int, 22, help="read the residual stream after this block (1-based; BERG's optimal layer)"),
    Option("batch_size", int, 32, minimum=1, help="sentences per forward pass"),
    Option("dtype", str, None, choices=("float32", "float16", "bfloat16"),
           help="backbone precision; None: float32 on CPU, float16 on CUDA/MPS"),
    Option("revision", str, None, help="hub revision (commit, tag or branch) of the backbone"),
)

DESCRIPTION = (
    "Predicts the z-scored, participant-averaged BOLD response of the left-hemisphere language network "
    "(5 fROIs + their average) to a sentence: GPT2-XL's residual stream after block 22 at the sentence's last "
    "token (1600-d, each sentence alone) -> ridge regression (sklearn RidgeCV) fitted on 1,000 six-word "
    "sentences read by 5 participants (Tuckute et al. 2024, Nature Human Behaviour)."
)


@hookimpl
def berg_register_encoders(register):  # type: ignore[no-untyped-def]
    """Register the one model of this family."""
    register(
        EncoderSpec(
            model_id=MODEL_ID,
            family="tuckute",
            factory="berg_tuckute.encoder:TuckuteEncoder",
            modality="fmri",
            description=DESCRIPTION,
            subjects=None,
            selection={"roi": "list of ROI names, returned in the order given: " + ", ".join(ROIS)},
            rois=ROIS,
            stimulus="sentences",
            metadata="berg_tuckute.weights:load_metadata",
            remote_files=(RemoteFile(WEIGHTS_PATH), RemoteFile(METADATA_PATH)),
            prepare="berg_tuckute.weights:prepare",
            card=CARD,
            options=OPTIONS,
            info={
                "backbone": "gpt2-xl (48 blocks, 1600-d)",
                "layer": 22,
                "features": "last token of each sentence, residual stream after block 22 (no final LayerNorm)",
                "readout": "RidgeCV (sklearn 0.24.2), alpha per ROI, no feature scaling",
                "training": "1,000 six-word sentences, 5 participants, session-wise z-scored",
                "predictivity_r": "0.38 (lang_LH_netw, 5-fold CV)",
                "noise_ceiling_r": "0.56 (lang_LH_netw)",
                "precision": "float32 on CPU; float16 on GPU unless dtype='float32'",
                "units": "z (BOLD response magnitude, z-scored per session, averaged over voxels and participants)",
                "paper": "https://www.nature.com/articles/s41562-023-01783-7",
            },
        )
    )
