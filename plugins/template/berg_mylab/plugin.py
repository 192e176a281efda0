"""berg plugin berg-mylab: registers every trained-encoder folder shipped in berg_mylab/encoders/."""

from berg_core import hookimpl, register_package_encoders


@hookimpl
def berg_register_encoders(register):
    register_package_encoders(register, __package__)
