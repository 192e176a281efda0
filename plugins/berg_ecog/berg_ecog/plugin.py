"""Registers ``ecog-zada2025-gpt2_xl`` (Podcast ECoG x GPT-2 XL; Zada et al. 2025) with berg.

Data only: importing this module imports nothing heavy; the encoder and the file conversion live behind the
``factory``/``metadata``/``prepare`` strings.
"""

from __future__ import annotations

from collections.abc import Callable

from berg_core import EncoderSpec, Option, Options, RemoteFile, hookimpl

MODEL_ID = "ecog-zada2025-gpt2_xl"
#: No alias. BERG's older id ``ecog-podcast_ecog-gpt2_xl`` (card and ``podcast_ecog_gpt2_xl.py`` @ 5618e98; spec
#: ecog_zada2025.md) named the same recipe trained earlier into another bucket folder (``train_dataset-podcast_ecog/``),
#: with other weights and selection key ``timepoints``; its module could not even be imported (bug 6) and BERG's newest
#: registry dropped it. The spec allows the alias only if those files exist, which cannot be checked offline; an alias
#: would silently serve this model's weights under that id.
ALIASES: tuple[str, ...] = ()
SUBJECTS: tuple[str, ...] = ("01", "02", "03", "04", "05", "06", "07", "08", "09")
#: electrodes per subject (BERG's table; the files' own count is what berg uses and checks)
ELECTRODES: dict[str, int] = {"01": 99, "02": 90, "03": 235, "04": 143, "05": 159, "06": 166, "07": 116, "08": 72, "09": 188}
N_LAGS = 129  # lags t_k = -2 + k/32 s, k = 0..128 (k = 64 is word onset)
LAYER = 24
CONTEXT_TOKENS = 32

#: Paths relative to berg_dir (= keys in BERG's bucket); ``{subject}`` is "01".."09".
MODEL_DIR = "encoding_models/modality-ecog/train_dataset-zada2025/model-gpt2_xl"
WEIGHTS_PATH = f"{MODEL_DIR}/encoding_models_weights/weights_sub-{{subject}}.npy"
METADATA_PATH = f"{MODEL_DIR}/metadata/metadata_sub-{{subject}}.npy"

OPTIONS = Options(
    Option("backbone", str, "gpt2-xl", help="hub id or local folder of a GPT-2 model (tests use a tiny random one)"),
    Option("layer", int, LAYER, minimum=0, help="read the residual stream after this block (1-based; the model's layer is 24)"),
    Option("context_tokens", int, CONTEXT_TOKENS, minimum=0,
           help="preceding tokens in each token's window (window = context_tokens + 1, left-padded with id 0); "
                "32 is BERG's current model, 1023 its older 1024-token windows"),
    Option("batch_size", int, 64, minimum=1, help="token windows per forward pass (BERG runs 4)"),
    Option("dtype", str, None, choices=("float32", "float16", "bfloat16"),
           help="backbone precision; None: float32 on CPU, float16 on CUDA/MPS"),
    Option("revision", str, None, help="hub revision (commit, tag or branch) of the backbone"),
)

DESCRIPTION = (
    "Predicts intracranial (ECoG) high-gamma (70-150 Hz) power at each electrode of one of 9 epilepsy patients who "
    "listened to a 30-min podcast (Podcast ECoG dataset, OpenNeuro ds005574, CC0), as a lag profile of 129 samples "
    "from -2 to +2 s around each word's onset (32 Hz): GPT-2 XL's residual stream after block 24 for every token, read "
    "with the 32 preceding tokens of the same call (33-token windows left-padded with token id 0), averaged over the "
    "word's tokens (1600-d) -> StandardScaler -> ridge (himalaya RidgeCV, one alpha per target) -> inverse scaler. "
    "Output (n_words, n_electrodes, n_lags), float32. Pass the words as spoken, with attached punctuation."
)

CARD = """ecog-zada2025-gpt2_xl (BERG's ECoG model, Zada et al. 2025, Sci Data; data CC0, GPT-2 XL MIT)

Stimulus: a list of words, in order (one output row per word). Each word is tokenized as " " + word (GPT-2 BPE); every
token is read in a window of itself and the 32 tokens before it in the same call, left-padded with token id 0 ("!") and
no attention mask (as the dataset's own feature extraction); a word's feature is the mean over its tokens of GPT-2 XL's
hidden_states[24] at the window's last position. Context stops at the call: encode a transcript in one call.
Readout: X = (x - mean_X) / scale_X; Y = (X @ coef + intercept) * scale_Y + mean_Y (scikit-learn StandardScaler and
himalaya ridge fitted on ~5,100 word epochs per subject, all of the podcast). Output (n_words, n_electrodes, n_lags)
in the dataset's high-gamma units; lags -2.0 ... +2.0 s in steps of 1/32 s around word onset.
Selection: electrode_index (0/1 over the subject's electrodes), lags (0/1 over the 129 lags); every selected electrode
x every selected lag, ascending. Metadata: electrode names and coordinates (MNE chs[i]['loc'][:3], m), lag times (s),
2-fold cross-validated Pearson r per electrode and lag (correlation_results).
Option context_tokens: 32 (default) is BERG's current model; 1023 reproduces BERG's earlier 1024-token windows.
"""


@hookimpl
def berg_register_encoders(register: Callable[[EncoderSpec], None]) -> None:
    """Register the one model of this family."""
    register(
        EncoderSpec(
            model_id=MODEL_ID,
            aliases=ALIASES,
            family="ecog",
            factory="berg_ecog.encoder:EcogEncoder",
            modality="ecog",
            description=DESCRIPTION,
            subjects=SUBJECTS,
            selection={
                "electrode_index": "0/1 vector over the subject's electrodes (" +
                                   ", ".join(f"{s}: {n}" for s, n in ELECTRODES.items()) + ")",
                "lags": f"0/1 vector over the {N_LAGS} lags (-2 ... +2 s around word onset, 32 Hz)",
            },
            stimulus="words",
            metadata="berg_ecog.weights:load_metadata",
            remote_files=(RemoteFile(WEIGHTS_PATH, per_subject=True), RemoteFile(METADATA_PATH, per_subject=True)),
            prepare="berg_ecog.weights:prepare",
            card=CARD,
            options=OPTIONS,
            info={
                "backbone": "gpt2-xl (48 blocks, 1600-d; openai-community/gpt2-xl, MIT)",
                "layer": LAYER,
                "features": "per token: hidden_states[24] at the last position of a 33-token window (32 preceding tokens, "
                            "left-padded with id 0); per word: mean over its tokens",
                "readout": "StandardScaler -> himalaya RidgeCV (alpha per target) -> inverse StandardScaler",
                "outputs": "(n_words, n_electrodes, 129 lags), high-gamma power, lags -2..+2 s at 32 Hz",
                "units": "high-gamma power in the dataset's units (ds005574 desc-highgamma at 32 Hz; the scaler is inverted)",
                "electrodes": dict(ELECTRODES),
                "data": "OpenNeuro ds005574 (Podcast ECoG, Zada et al. 2025), CC0",
                "precision": "float32 on CPU; float16 on GPU unless dtype='float32'",
            },
        )
    )
