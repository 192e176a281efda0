"""Registers two toy models: a sentence model with fixed ROIs and a duplicate-id probe."""

from collections.abc import Callable

from berg_core import EncoderSpec, Option, Options, hookimpl

ROIS = ("roi_a", "roi_b", "roi_c")
#: the timed-words model's ROIs: name -> voxel indices (of its 4 voxels)
VOXEL_ROIS = {"all": (0, 1, 2, 3), "odd": (1, 3)}


@hookimpl
def berg_register_encoders(register: Callable[[EncoderSpec], None]) -> None:
    register(
        EncoderSpec(
            model_id="test-sentence_length",
            family="testplugin",
            factory="berg_testplugin.encoder:LengthEncoder",
            metadata="berg_testplugin.encoder:load_metadata",
            description="Toy model: responses are functions of sentence length (tests only).",
            rois=ROIS,
            selection={"roi": ", ".join(ROIS)},
            options=Options(Option("scale", float, 1.0, help="multiplies every response"),
                            Option("batch_size", int, 8, minimum=1, help="sentences per batch (unused)")),
            card="A toy card.",
        )
    )
    register(
        EncoderSpec(
            model_id="test-timed_words",
            family="testplugin",
            factory="berg_testplugin.encoder:WordRateEncoder",
            description="Toy timed-words model: words per 2-s TR (tests only).",
            subjects=("S1", "S2"),
            stimulus="timed_words",
            selection={"roi": ", ".join(VOXEL_ROIS), "voxel_index": "0/1 mask of length 4"},
        )
    )
    register(EncoderSpec(model_id="test-duplicate", family="testplugin", factory="berg_testplugin.encoder:LengthEncoder"))
