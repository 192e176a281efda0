"""Deprecated alias, kept for one release: ``berg_core.ridge`` moved to ``berg_core.fit.ridge``.

``import berg_core.ridge`` still works (it is the same module object, so patches apply to both names) and
warns once; import from ``berg_core.fit.ridge`` instead.
"""

import sys
import warnings

from berg_core.fit import ridge as _moved

warnings.warn("berg_core.ridge moved to berg_core.fit.ridge; this alias will be removed in the next release",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
