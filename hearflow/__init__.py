"""hearflow: real-time visual sound source localization ("Hear The Flow").

Stages: ``hearflow.media`` (preprocessing shared by everything), ``hearflow.model``,
``hearflow.trainer``, ``hearflow.export`` and ``hearflow.engine``.
"""

__version__ = "0.1.0"
