"""Registers one ``brainscore_language-{name}`` model per id of the installed brainscore-language.

The ids are found by reading the package's model folders (``berg_brainscore.enumerate``, AST only): no
brainscore module, torch, transformers or sklearn is imported here.
"""

from __future__ import annotations

from collections.abc import Callable

from berg_brainscore.enumerate import BrainscoreModel, brainscore_version, scan
from berg_brainscore.pereira import DATA_IDENTIFIER, EXPERIMENT, SUBJECTS, VOXELS
from berg_core import EncoderSpec, Option, Options, hookimpl

PREFIX = "brainscore_language-"
FAMILY = "brainscore"
OPTIONS = Options(
    Option("context", str, "independent", choices=("independent", "running"),
           help="independent: each sentence alone; running: the list is one running text (BERG's behaviour)"),
    Option("batch_size", int, 16, minimum=1, help="sentences per forward pass (independent mode, Hugging Face models)"),
    Option("train_context", str, "running", choices=("running", "passage"),
           help="how the PLS map's 384 training sentences are read: running = one running text in the data's order "
                "(BERG's map); passage = each passage alone (Brain-Score's benchmark)"),
)

CARD = f"""\
Brain-Score language models (brain-score.org, Schrimpf et al.) as BERG's brainscore_language family.
Each model is run through brainscore-language ({{version}}) and read at the layer its submitter committed
to for the human language system (last token of the text; embedding models average their words).
A PLS regression (sklearn PLSRegression, n_components=25, scale=False) maps those activations to the fMRI
voxels of one subject of Pereira et al. (2018), experiment {EXPERIMENT} (384 sentences in 96 passages of 4).
Training reproduces BERG's map: the 384 sentences, in the data's order, are read as ONE running text and the
rows and neuroids are aligned as brainscore-vision's pls_regression aligns them (train_context="passage" reads
each passage alone, as Brain-Score's benchmark does). The map is trained once per model, subject and
train_context (`berg fetch MODEL` builds the default ahead of time) and cached under the berg cache root as
.npz (no pickle).
Subjects and voxels: {", ".join(f"{s} ({n})" for s, n in VOXELS.items())}.
Options: context="independent" (default: each sentence encoded alone) or "running" (BERG's behaviour: the
list is one running text and sentence i sees sentences 0..i-1); batch_size (independent mode, Hugging Face
models); train_context ("running" | "passage", see above). Output: (n_sentences, n_voxels) in the data's
neuroid order; metadata lists the neuroid ids.
Data: {DATA_IDENTIFIER} from Brain-Score's storage (~70 MB netCDF, cached under $BRAINIO_HOME).
"""


def make_spec(model: BrainscoreModel, version: str | None = None) -> EncoderSpec:
    """The berg spec of one brainscore id (also used by tests for ad-hoc registry entries)."""
    version = version or brainscore_version()
    layer = f", layer {model.layer}" if model.layer else ""
    description = f"Brain-Score language model {model.name} ({model.subject_class}{layer}) + PLS to Pereira 2018 voxels\n{model.reason}"
    return EncoderSpec(
        model_id=PREFIX + model.name,
        family=FAMILY,
        factory="berg_brainscore.encoder:BrainscoreEncoder",
        metadata="berg_brainscore.encoder:load_metadata",
        prepare="berg_brainscore.encoder:prepare",
        description=description,
        subjects=SUBJECTS,
        stimulus="sentences",
        card=CARD.format(version=version),
        options=OPTIONS,
        params=model.to_info(),  # what the factory needs (BrainscoreModel.from_info(spec.params))
        info={**model.to_info(), "brainscore_language": version, "training_data": f"{DATA_IDENTIFIER} {EXPERIMENT}",
              "n_outputs": dict(VOXELS),
              "units": "z (Pereira 2018 voxel responses, z-scored per voxel)"},
    )


@hookimpl
def berg_register_encoders(register: Callable[[EncoderSpec], None]) -> None:
    """One spec per id in brainscore-language's model folders (94 in 2.3.0)."""
    version = brainscore_version()
    for model in scan().models:
        register(make_spec(model, version))
