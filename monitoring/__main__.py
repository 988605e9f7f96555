"""``python -m monitoring``: see :mod:`monitoring.cli`."""

import sys

from monitoring import sdk_range

# Before anything imports the SDK: a release outside the supported range is one line, not a traceback.
if (sdk_problem := sdk_range.problem()) is not None:
    print(f"error: {sdk_problem}", file=sys.stderr)
    sys.exit(2)

from monitoring.cli import main  # only once the SDK is known to be supported

sys.exit(main())
