"""Deprecated alias, kept for one release: ``berg_core.stats`` moved to ``berg_core.fit.stats``.

``import berg_core.stats`` still works (it is the same module object, so patches apply to both names) and
warns once; import from ``berg_core.fit.stats`` instead.
"""

import sys
import warnings

from berg_core.fit import stats as _moved

warnings.warn("berg_core.stats moved to berg_core.fit.stats; this alias will be removed in the next release",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
