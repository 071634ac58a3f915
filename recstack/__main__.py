"""``python -m recstack``: the console script (``torchrun -m recstack train ...`` uses it)."""

import sys

from recstack.cli import main

sys.exit(main())
