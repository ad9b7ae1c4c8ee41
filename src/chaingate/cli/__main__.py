"""`python -m chaingate.cli`: the same as the `chaingate` console script."""

import sys

from chaingate.cli import main

sys.exit(main())
