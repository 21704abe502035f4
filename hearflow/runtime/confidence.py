"""The ``sounding`` confidence of a similarity map: is something on screen making the sound?

An audio energy gate times a similarity factor, both soft thresholds; the engine computes
it per result and ``hearflow calibrate`` sets the thresholds from clips with and without
a visible source.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np


class ConfidenceThresholds(Protocol):
    """The thresholds :func:`confidence` reads (the engine's EngineConfig has them)."""

    energy_gate_db: float
    """Audio window RMS level (dBFS) at which the energy gate is half open."""
    energy_gate_width_db: float
    """Softness of the energy gate (dB per logistic unit)."""
    similarity_threshold: float
    """Peak cosine similarity at which the similarity factor is 0.5."""
    similarity_width: float
    """Softness of the similarity factor (cosine per logistic unit)."""


def _logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, x))))


def confidence(peak: float, rms_db: float, cfg: ConfidenceThresholds) -> float:
    """'Something on screen is sounding' in [0, 1]: an audio energy gate times a
    similarity factor. Silence closes the gate whatever the map says (the model's peak
    similarity barely drops for silence: see docs/results.md)."""
    gate = _logistic((rms_db - cfg.energy_gate_db) / cfg.energy_gate_width_db)
    sim = _logistic((peak - cfg.similarity_threshold) / cfg.similarity_width)
    return gate * sim


def rms_db(x: np.ndarray) -> float:
    """RMS level of a wave in dBFS (what the energy gate looks at)."""
    return 20.0 * math.log10(float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) + 1e-10)


__all__ = ["ConfidenceThresholds", "confidence", "rms_db"]
