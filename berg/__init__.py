"""Compatibility name: BERG users' ``from berg import BERG`` keeps working with berg installed."""

from berg_core import *  # noqa: F403
from berg_core import BERG, __all__, __version__  # noqa: F401
