"""Fails at import time, as a plugin with a missing dependency would."""

import berg_this_dependency_does_not_exist  # noqa: F401
