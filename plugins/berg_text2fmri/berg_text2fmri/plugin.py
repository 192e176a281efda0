"""Registers ``fmri-cneuromod_algo2025-text2fmri`` (Text2fMRI, Dixit 2026; CNeuroMod / Algonauts 2025) with berg.

Data only: importing this module imports nothing heavy; the encoder, the head and the hub downloads live behind
the ``factory``/``metadata``/``prepare`` strings.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from berg_core import EncoderSpec, Option, Options, RemoteFile, hookimpl
from berg_text2fmri.revisions import is_commit, locks_line

MODEL_ID = "fmri-cneuromod_algo2025-text2fmri"
#: other ids BERG gave this model (the model_id of its older cards): ``fmri-cneuromods-text2fmri`` (card
#: ``text2fmri.yaml`` @ b69df84; the id in the BERG example of the hub card ShreyDixit/Text2fMRI-Qwen-2.5-0.5B) and
#: ``fmri-cneuromod-text2fmri`` (card ``fmri-cneuromod-text2fmri.yaml`` @ 03d3d89). ``text2fmri`` (spec text2fmri.md)
#: is only that card's file name, never an id, so it is not registered. Both old cards numbered the subjects 0-3
#: (the head's rows), which are subjects 1, 2, 3, 5 here: the card says so.
ALIASES: tuple[str, ...] = ("fmri-cneuromods-text2fmri", "fmri-cneuromod-text2fmri")
#: CNeuroMod subjects sub-01/02/03/05 -> the head's subject-embedding row
SUBJECT_INDEX: dict[str, int] = {"1": 0, "2": 1, "3": 2, "5": 3}
SUBJECTS: tuple[str, ...] = tuple(SUBJECT_INDEX)
N_PARCELS = 1000
NETWORKS: tuple[str, ...] = ("Vis", "SomMot", "DorsAttn", "SalVentAttn", "Limbic", "Cont", "Default")
TR_SECONDS = 1.49

MODEL_DIR = "encoding_models/modality-fmri/train_dataset-cneuromod_algo2025/model-text2fmri"
METADATA_PATH = f"{MODEL_DIR}/metadata/metadata.npy"

#: The hub revisions below could not be verified offline (no hub access while this plugin was written): "main" is
#: NOT a pinned commit. Replace each by the 40-hex commit of the repo (``huggingface-cli download ... --revision``)
#: after checking it (a 40-hex value is used verbatim). Until then berg locks, per install, the commit ``main``
#: resolves to on the first ``berg fetch`` or load (``berg_text2fmri.revisions``: trust on first use) and reads
#: exactly that commit afterwards.
UNVERIFIED_HEAD_REVISION = "main"
#: Qwen/Qwen2.5-0.5B and -1.5B: likewise unverified offline
UNVERIFIED_BACKBONE_REVISION = "main"


@dataclass(frozen=True)
class Variant:
    """One trained head on the hub: its repo (``config.json`` + ``model.pt``), its revision and the revision of the
    language model its config names (``extractor_LLM``)."""

    repo: str
    revision: str
    backbone_revision: str


#: ``model_variant`` -> the hub head; the backbone and every size come from that repo's config.json
VARIANTS: dict[str, Variant] = {
    "ShreyDixit/Text2fMRI-Qwen-2.5-0.5B": Variant("ShreyDixit/Text2fMRI-Qwen-2.5-0.5B", UNVERIFIED_HEAD_REVISION,
                                                  UNVERIFIED_BACKBONE_REVISION),
    "ShreyDixit/Text2fMRI-Qwen-2.5-1.5B": Variant("ShreyDixit/Text2fMRI-Qwen-2.5-1.5B", UNVERIFIED_HEAD_REVISION,
                                                  UNVERIFIED_BACKBONE_REVISION),
}
DEFAULT_VARIANT = "ShreyDixit/Text2fMRI-Qwen-2.5-0.5B"

OPTIONS = Options(
    Option("model_variant", str, DEFAULT_VARIANT,
           help="the trained head: " + ", ".join(VARIANTS) + ", or a local folder with config.json + model.pt (tests)"),
    Option("backbone", str, None, help="hub id or local folder of the Qwen2 language model; None: the variant config's extractor_LLM"),
    Option("dtype", str, None, choices=("float32", "float16", "bfloat16"),
           help="language-model precision; None: the variant config's (float16, BERG's) on a GPU, float32 on CPU; the head runs in float32"),
    Option("low_mem_use", bool, False, help="unload the language model after each call (reloaded on the next; BERG's option)"),
)

DESCRIPTION = (
    "Predicts fMRI responses of 1,000 Schaefer-2018 parcels (7 networks) of CNeuroMod subjects 1, 2, 3 and 5 to "
    "spoken text given as one string per TR (1.49 s; '' for silent TRs): Qwen2.5-0.5B reads the whole transcript "
    "at once (TRs joined, each ending with a newline), the mean of its last four hidden states is averaged over each "
    "TR's tokens, and a 4-layer bidirectional transformer head (RoPE, ScaleNorm; 52 M parameters, trained on "
    "Friends/movies, Algonauts 2025) maps the TR sequence with a subject embedding to the parcels. Output (n_TR, "
    "n_parcels), float32. Every TR's prediction depends on the whole call (past and future TRs)."
)

CARD = """fmri-cneuromod_algo2025-text2fmri (BERG's Text2fMRI; Dixit 2026, Algonauts 2025 / CNeuroMod; head on the hub)

Stimulus: one str per fMRI TR (1.49 s): the words heard during that TR; '' for a silent TR. One output row per TR.
Features: text = "".join(tr + "\\n" for tr in TRs), tokenized once (Qwen2.5 tokenizer, offsets); one forward pass;
h = mean(h_{L-3}, h_{L-2}, h_{L-1}, RMSNorm_final(h_L)) (= mean(hidden_states[-4:]) in HF terms), in the LM's dtype;
each token goes to the first TR whose span (its text + its newline) it overlaps; TR feature = mean of its tokens
(zeros for a TR without tokens). Inputs longer than the LM's positions (32,768 tokens) are cut, with a warning.
Head: concat(feature, subject embedding 128) -> Linear -> 4 pre-ScaleNorm transformer layers (8 heads x 128,
rotary embeddings on all head dims, GPT-J interleaved pairs as x-transformers >= 1.35, exact GELU FF x4) -> ScaleNorm
-> Linear to 1000 parcels + a per-subject bias. Bidirectional: each TR's output depends on past AND future TRs of the
call, so appending text changes earlier rows; keep calls to one run (a few hundred TRs).
Selection: roi (7-network names, from the Schaefer-2018 label table shipped with the plugin; BERG's metadata
roi_masks must agree with it) and/or voxel_index (0/1 over the 1000 parcels), united, ascending. Output columns: the
Schaefer label names (7Networks_LH_Vis_1 ...; label order 1..1000: LH 1-500, RH 501-1000).
Precision: BERG runs the LM in float16, even on CPU; berg does on a GPU and uses float32 on CPU (dtype=float16 for
BERG's CPU numbers; the two differ by ~1e-3 relative).
Licence: the head repos declare no licence readable offline; see berg info's "licence" and the first-load notice.
Older ids: fmri-cneuromods-text2fmri and fmri-cneuromod-text2fmri (accepted, with a notice) numbered the subjects
0, 1, 2, 3; here they are 1, 2, 3, 5 (CNeuroMod sub-01/02/03/05): old subject 0 is 1, 1 is 2, 2 is 3, 3 is 5.
Revisions: the variant table's hub revisions are "main" (unverified, not pinned); the first berg fetch (or load)
locks the commit main resolved to in berg's cache (text2fmri/revisions.json) and berg reads exactly that commit
afterwards (berg info "revisions"; the output attribute backbone_revision is the language model's commit).
"""

_LICENCE_LINE = re.compile(r"^licen[cs]e:\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)


def card_licence(card: Path) -> str | None:
    """The ``license:`` of a hub card's YAML header (``README.md``), or None (no file, no header, no entry)."""
    try:
        text = card.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    if not text.startswith("---"):
        return None
    m = _LICENCE_LINE.search(text[3:].split("\n---", 1)[0])
    return m.group(1).strip("'\"") or None if m else None


def non_commercial(licence: str) -> bool:
    """True for a licence id that forbids commercial use (``cc-by-nc-*``, "non-commercial", research licences)."""
    low = licence.lower()
    return "nc" in re.split(r"[^a-z0-9.]+", low) or "non-commercial" in low or "noncommercial" in low or "research" in low


def hub_cache() -> Path:
    """The Hugging Face hub cache folder as the environment sets it now (``HF_HUB_CACHE``, ``HF_HOME``/hub,
    ``XDG_CACHE_HOME``/huggingface/hub, ~/.cache/huggingface/hub), as huggingface_hub resolves it."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    return Path(os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface") / "hub"


def cached_head_licence(repo: str) -> str | None:
    """The licence on the card of ``repo`` in the local hub cache (newest snapshot; no network), or None."""
    snapshots = hub_cache() / f"models--{repo.replace('/', '--')}" / "snapshots"
    try:
        cards = sorted(snapshots.glob("*/README.md"), key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return None
    return next((lic for lic in map(card_licence, cards) if lic), None)


LICENCE_NOTE = ("head weights (ShreyDixit/Text2fMRI-*): no licence found in the hub card when this plugin was written "
                "(unknown: ask the authors before commercial use); backbone Qwen2.5-0.5B/1.5B: Apache-2.0")


def _licence_line() -> str:
    """``berg info``'s licence line: the cached hub card's licence of the default head when present, else the note."""
    licence = cached_head_licence(DEFAULT_VARIANT)
    if licence is None:
        return LICENCE_NOTE
    flag = " (NON-COMMERCIAL)" if non_commercial(licence) else ""
    return f"head weights ({DEFAULT_VARIANT}): {licence}{flag} (from its hub card); backbone Qwen2.5-0.5B: Apache-2.0"


def _networks_line() -> str:
    """``berg info``'s networks line: each network with its parcel count, from the shipped label table."""
    from berg_core import ModelLoadError
    from berg_text2fmri.labels import network_counts

    try:
        counts = network_counts()
    except ModelLoadError as exc:
        return str(exc)
    return ", ".join(f"{net} {n}" for net, n in counts.items()) + " parcels (Schaefer-2018 table shipped with the plugin)"


def _table_revisions() -> set[str]:
    """The distinct revisions of the variant table, quoted (``'main'``) unless they are commits."""
    return {r if is_commit(r) else repr(r) for v in VARIANTS.values() for r in (v.revision, v.backbone_revision)}


@hookimpl
def berg_register_encoders(register: Callable[[EncoderSpec], None]) -> None:
    """Register the one model of this family."""
    register(
        EncoderSpec(
            model_id=MODEL_ID,
            aliases=ALIASES,
            family="text2fmri",
            factory="berg_text2fmri.encoder:Text2fMRIEncoder",
            modality="fmri",
            description=DESCRIPTION,
            subjects=SUBJECTS,
            selection={
                "roi": "Schaefer-2018 7-network names: " + ", ".join(NETWORKS) + " (union with voxel_index)",
                "voxel_index": f"0/1 vector over the {N_PARCELS} Schaefer parcels (label order 1..1000)",
            },
            stimulus="tr_texts",
            metadata="berg_text2fmri.weights:load_metadata",
            remote_files=(RemoteFile(METADATA_PATH),),
            prepare="berg_text2fmri.weights:prepare",
            card=CARD,
            options=OPTIONS,
            info={
                "backbone": "Qwen/Qwen2.5-0.5B (24 layers, 896-d; Apache-2.0), from the variant's config.json",
                "features": "mean of the last four hidden states (the last one final-normed), averaged over each TR's tokens",
                "head": "x-transformers-style encoder, 4 layers x 8 heads x 128, RoPE (interleaved), ScaleNorm; 52 M parameters",
                "outputs": "(n_TR, 1000 Schaefer-2018 parcels), columns named by their labels, TR 1.49 s, no HRF shift",
                "units": "BOLD, a.u. (CNeuroMod parcel time series as the head was trained on them)",
                "networks": _networks_line(),
                "variants": {name: f"{v.repo}@{v.revision}" for name, v in VARIANTS.items()},
                "revisions": "UNVERIFIED: the table's hub revisions are " + ", ".join(sorted(_table_revisions())) +
                             ", not pinned commits (no hub access when written); locked per install: " + locks_line(),
                "licence": _licence_line(),
                "precision": "LM float16 on GPU (BERG's), float32 on CPU (BERG: float16 there too; -O dtype=float16); head float32",
            },
        )
    )
