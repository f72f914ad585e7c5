"""``python -m sobolev_rf.numeric.cli``: the same as the ``sobolev-rf`` command."""

import sys

from .main import main

sys.exit(main())
