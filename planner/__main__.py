"""``python -m planner`` is the same as the ``sacroplan`` command."""

import sys

from planner.cli import main

sys.exit(main())
