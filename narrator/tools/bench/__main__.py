"""``python -m narrator.tools.bench``: see :mod:`narrator.tools.bench.runner`."""

import sys

from .runner import main

sys.exit(main())
