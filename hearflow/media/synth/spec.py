"""Clip specs: everything random about one clip, as frozen data that the renderer turns into media."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class Motion:
    """Trajectory of an object's top-left corner in pixels, a pure function of the frame index.

    kind: static (at x0, y0); bounce (from x0, y0 at vx, vy px/frame, reflected at the
    borders of the allowed area); sine (x = x0 + ax sin(omega i + phase),
    y = y0 + ay sin(omega i + phase + psi): an ellipse or a line).
    area: allowed top-left range (xlo, xhi, ylo, yhi); bounce reflects off it, the
    other kinds stay inside it by construction.
    env_rate / env_phase / env_floor: when env_rate > 0 the speed is multiplied by
    :func:`envelope` (``env_rate`` radians per frame): the object slows down and speeds
    up; the twins_all_move regime gives the sounding twin the envelope of its sound.
    """

    kind: Literal["static", "bounce", "sine"]
    x0: float
    y0: float
    area: tuple[float, float, float, float]
    vx: float = 0.0
    vy: float = 0.0
    ax: float = 0.0
    ay: float = 0.0
    omega: float = 0.0
    phase: float = 0.0
    psi: float = 0.0
    env_rate: float = 0.0
    env_phase: float = 0.0
    env_floor: float = 1.0

    @property
    def moves(self) -> bool:
        """Whether the object moves at all."""
        return self.kind != "static"

    def position(self, i):
        """Top-left (x, y) in pixels (floats) at frame index ``i`` (scalar or array)."""
        i = self.progress(i)
        xlo, xhi, ylo, yhi = self.area
        if self.kind == "bounce":
            return _reflect(self.x0 + self.vx * i, xlo, xhi), _reflect(self.y0 + self.vy * i, ylo, yhi)
        if self.kind == "sine":
            a = self.omega * i + self.phase
            return self.x0 + self.ax * np.sin(a), self.y0 + self.ay * np.sin(a + self.psi)
        return np.full_like(i, self.x0), np.full_like(i, self.y0)

    def progress(self, i):
        """The motion's own clock at frame ``i``: ``i`` itself, or the integral of the
        speed envelope (so the speed at frame i is the base speed times envelope(i))."""
        i = np.asarray(i, dtype=np.float64)
        if self.env_rate <= 0:
            return i
        w, phi, fl = self.env_rate, self.env_phase, self.env_floor
        # ∫0^i fl + (1 - fl)(1 + sin(w u + phi)) / 2 du, in closed form: pure for any i
        return (1 + fl) / 2 * i - (1 - fl) / (2 * w) * (np.cos(w * i + phi) - np.cos(phi))

    def pixel(self, i):
        """Integer top-left (x, y) at frame ``i``: where the sprite is drawn."""
        x, y = self.position(i)
        return np.floor(x + 0.5).astype(np.int64), np.floor(y + 0.5).astype(np.int64)


def envelope(angle, floor: float):
    """A slow loudness / speed envelope between ``floor`` and 1: floor + (1 - floor)(1 + sin angle) / 2."""
    return floor + (1 - floor) * (1 + np.sin(angle)) / 2


def _reflect(x, lo, hi):
    """Fold x into [lo, hi] as a ball bouncing between two walls (a triangle wave)."""
    span = hi - lo
    if span <= 0:
        return np.full_like(np.asarray(x, dtype=np.float64), lo)
    u = np.mod(x - lo, 2 * span)
    return lo + np.where(u <= span, u, 2 * span - u)


@dataclass(frozen=True)
class ObjectSpec:
    """One object of a clip: class, sprite size and shading, trajectory.

    cls: class name (a key of CLASS_STYLES).
    w, h: sprite size in pixels (the shape fills this box exactly).
    colour, colour2: jittered main and pattern colours (RGB).
    pattern: texture period in pixels; angle: texture direction in radians.
    motion: the trajectory of the sprite's top-left corner.
    """

    cls: str
    w: int
    h: int
    colour: tuple[int, int, int]
    colour2: tuple[int, int, int]
    pattern: float
    angle: float
    motion: Motion


@dataclass(frozen=True)
class SoundSpec:
    """The clip's sound: what, how high, how loud, where in its cycle it starts.

    kind: a class's sound name (hum, buzz, ...) or ``noise`` (broadband).
    pitch: factor on the class's nominal frequencies; rate: factor on its rhythm.
    gain: linear gain (already normalised so the RMS is the configured loudness).
    offset: seconds into the sound's own timeline at the onset (desynchronises clips).
    seed: seed of the sound's random parts (noise bursts).
    env_freq / env_phase / env_floor: when env_freq > 0 the sound is multiplied by
    ``envelope(2 pi env_freq t + env_phase, env_floor)`` (t: seconds since the clip's
    start), the same envelope as the sounding twin's speed in twins_all_move.
    """

    kind: str
    pitch: float
    rate: float
    gain: float
    offset: float
    seed: int
    env_freq: float = 0.0
    env_phase: float = 0.0
    env_floor: float = 1.0


@dataclass(frozen=True)
class ClipSpec:
    """Everything random about one clip; :class:`SynthScene` renders it deterministically.

    objects: in drawing order; the object at ``source_index`` is the sounding one unless
    ``negative`` is set (the last, drawn on top, except in the twins regimes, where it
    is drawn at random among identical objects).
    sound: None for a ``silence`` negative.
    sound_class: class name of what is heard (``silence``/``noise`` for those negatives).
    annotate_frame: the frame the annotation describes (middle of the sounding part).
    """

    clip_id: str
    split: str
    width: int
    height: int
    fps: float
    duration: float
    sample_rate: int
    regime: str
    negative: str | None
    sound_onset: float
    annotate_frame: int
    objects: tuple[ObjectSpec, ...]
    source_index: int
    sound: SoundSpec | None
    sound_class: str
    seed: int
    video_noise: float
    audio_noise: float
    background_contrast: float
    background_saturation: float

    @property
    def n_frames(self) -> int:
        """Frames in the clip."""
        return max(1, int(round(self.duration * self.fps)))

    @property
    def n_samples(self) -> int:
        """Audio samples in the clip."""
        return int(round(self.duration * self.sample_rate))

    @property
    def source(self) -> ObjectSpec:
        """The object that sounds (or would, in a negative clip)."""
        return self.objects[self.source_index]
