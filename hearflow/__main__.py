"""``python -m hearflow`` is the ``hearflow`` command."""

import sys

from hearflow.cli import main

sys.exit(main())
