"""hearflow: real-time visual sound source localization ("Hear The Flow").

Layers, each importing only from those below it (tests/test_architecture.py checks this):
``media`` (the one definition of preprocessing) → ``model`` → ``runtime`` (load and run a
checkpoint or export) → ``trainer`` → ``export`` → ``engine`` → ``cli``.
"""

import os as _os

# OpenMP threads that spin at a barrier keep the core a descheduled peer needs: on a CPU
# shared with another busy process torch's CPU paths then slow down several-fold
# (docs/benchmarks.md, "Contended CPUs"). Waiting threads sleep instead. It must be set
# before torch loads libgomp, hence here; a value the user set wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
