"""Several sources in one map, followed over time: peak finding and a small tracker.

:func:`find_peaks` returns up to K local maxima of a map above a threshold, strongest
first, with non-maximum suppression; :class:`PeakTracker` gives each one a ``track_id``
that stays with the same source across frames:

- association: the globally nearest (track, peak) pairs first, each track at most one
  peak, only within ``gate`` (normalised frame units) of where the track is expected
  (its last position moved on by its last velocity);
- a track that finds no peak survives ``max_gap`` seconds (short drop-outs), then ends;
- an unmatched peak starts a new track; ids count up and are never reused.

Positions are normalised (x, y) in [0, 1] of the frame, as ``Result.peak``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Peak:
    x: float
    """Normalised column position (cell centre) in [0, 1]."""
    y: float
    value: float
    """The map's value there (cosine similarity)."""
    track_id: int = -1
    """Assigned by PeakTracker (-1: not tracked)."""
    direction: object | None = None
    """hearflow.runtime.geometry.Direction when a camera model is known."""


def find_peaks(m: np.ndarray, k: int = 3, threshold: float = 0.5, min_distance: float = 0.15) -> list[Peak]:
    """Up to ``k`` local maxima of the m×n map with value ≥ ``threshold``, strongest first.

    A local maximum is ≥ its 8 neighbours (plateaus give several cells; suppression keeps
    one). Non-maximum suppression: a peak closer than ``min_distance`` (normalised frame
    units, Euclidean) to a stronger kept peak is dropped.
    """
    from scipy.ndimage import maximum_filter

    m = np.asarray(m, np.float32)
    if k <= 0 or m.size == 0:
        return []
    finite = np.where(np.isfinite(m), m, -np.inf)
    local = (finite == maximum_filter(finite, size=3, mode="constant", cval=-np.inf)) & (finite >= threshold)
    rows, cols = np.nonzero(local)
    order = np.argsort(-finite[rows, cols], kind="stable")
    h, w = m.shape
    kept: list[Peak] = []
    for i in order:
        x, y = (cols[i] + 0.5) / w, (rows[i] + 0.5) / h
        if all(math.hypot(x - p.x, y - p.y) >= min_distance for p in kept):
            kept.append(Peak(float(x), float(y), float(finite[rows[i], cols[i]])))
            if len(kept) == k:
                break
    return kept


@dataclass
class _Track:
    id: int
    x: float
    y: float
    t: float
    vx: float = 0.0
    vy: float = 0.0

    def predict(self, t: float) -> tuple[float, float]:
        dt = t - self.t
        return self.x + self.vx * dt, self.y + self.vy * dt


@dataclass
class PeakTracker:
    """Gives peaks track ids that follow the same source across frames.

    gate: the largest distance (normalised frame units) between a track's expected
        position and a peak for them to be the same source.
    max_gap: seconds a track lives on without a peak (a source briefly silent or hidden).
    """

    gate: float = 0.2
    max_gap: float = 0.5
    tracks: list[_Track] = field(default_factory=list)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def update(self, peaks: list[Peak], t: float) -> list[Peak]:
        """Assign ``track_id`` to each of ``peaks`` (found at time ``t``, seconds) and return them."""
        if self.tracks and t < max(tr.t for tr in self.tracks):  # time went back (a file restarted): start over
            self.tracks.clear()
        pairs = []
        for ti, tr in enumerate(self.tracks):
            px, py = tr.predict(t)
            for pi, p in enumerate(peaks):
                d = math.hypot(p.x - px, p.y - py)
                if d <= self.gate:
                    pairs.append((d, ti, pi))
        pairs.sort()
        used_t, used_p = set(), set()
        for _, ti, pi in pairs:
            if ti in used_t or pi in used_p:
                continue
            used_t.add(ti)
            used_p.add(pi)
            tr, p = self.tracks[ti], peaks[pi]
            dt = t - tr.t
            if dt > 0:
                tr.vx, tr.vy = (p.x - tr.x) / dt, (p.y - tr.y) / dt
            tr.x, tr.y, tr.t = p.x, p.y, t
            p.track_id = tr.id
        self.tracks = [tr for i, tr in enumerate(self.tracks) if i in used_t or t - tr.t <= self.max_gap]
        for pi, p in enumerate(peaks):
            if pi not in used_p:
                tr = _Track(next(self._ids), p.x, p.y, t)
                self.tracks.append(tr)
                p.track_id = tr.id
        return peaks


__all__ = ["Peak", "PeakTracker", "find_peaks"]
