"""``python -m mgmt`` is the same as the ``zeek-mgmt`` console script."""

import sys

from mgmt.cli import main

sys.exit(main())
