"""``python -m monitoring``: see :mod:`monitoring.cli`."""

import sys

from monitoring.cli import main

sys.exit(main())
