"""Registers an id the test plugin also registers: both claims must be kept out."""

from berg_core import EncoderSpec, hookimpl


@hookimpl
def berg_register_encoders(register):
    register(EncoderSpec(model_id="test-duplicate", family="dupe", factory="berg_testplugin.encoder:LengthEncoder"))
