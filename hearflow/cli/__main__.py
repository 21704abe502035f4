"""``python -m hearflow.cli`` is the ``hearflow`` command."""

import sys

from hearflow.cli import main

sys.exit(main())
