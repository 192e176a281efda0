"""``python -m berg_core.cli``: the ``berg`` command."""

import sys

from berg_core.cli import main

sys.exit(main())
