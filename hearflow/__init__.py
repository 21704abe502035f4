"""hearflow: real-time visual sound source localization ("Hear The Flow").

Layers, each importing only from those below it (tests/test_layers.py checks this):
``media`` (the one definition of preprocessing) → ``model`` → ``runtime`` (load and run a
checkpoint or export) → ``trainer`` → ``export`` → ``engine`` → ``cli``.
"""

__version__ = "0.1.0"
