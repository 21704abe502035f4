"""Synthetic audio-visual clips: several objects on screen, exactly one makes the sound.

No public dataset can be downloaded everywhere, so ``hearflow synth`` writes one that a
small model can learn audio-visual correspondence from in minutes: 8 object classes,
each with its own look (shape, colour, texture) and its own sound (timbre and rhythm),
jittered per clip (pitch, size, shade) so no class is one fixed template. Each clip
shows 2–4 objects of different classes over a textured, low-saturation background;
one of them sounds. A motion regime per clip (source moves / all move / a distractor
moves / static) lets the value of optical flow be measured.

Three layers:

* :func:`sample_spec` draws a :class:`ClipSpec` (everything random about a clip) from a
  :class:`SynthConfig` and a numpy Generator.
* :class:`SynthScene` renders a spec: ``frame(i)`` and ``audio(start, n)`` are pure
  functions of the spec and the time, defined for any time ≥ 0, so the live engine can
  use a scene as an endless "synthetic camera + microphone" (objects keep bouncing or
  oscillating, sounds keep repeating).
* :func:`render_clip` renders a spec's clip in memory and :func:`generate` writes a
  whole dataset (mp4 + annotations, see :func:`generate`) with a process pool.

Boxes are ``[x1, y1, x2, y2]`` in pixels with x2/y2 exclusive, or normalised 0–1 (the
pixel box divided by the frame size) in ``annotations.json``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import multiprocessing
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from scipy import signal

from hearflow.errors import ConfigError, HearflowError

REGIMES = ("source_moves", "all_move", "distractor_moves", "static")
"""Motion regimes: which objects move in a clip."""

NEGATIVE_KINDS = ("silence", "noise", "offscreen")
"""Negative clips: near-silence, broadband noise, or the sound of a class not on screen."""

SPLITS = ("train", "val", "test")
_SPLIT_CODE = {"train": 0, "val": 1, "test": 2}


# =========================================================================== classes
@dataclass(frozen=True)
class ClassStyle:
    """How one object class looks and sounds (the nominal values; clips jitter them).

    name: class name written to the annotations.
    shape: circle, square, triangle, star, diamond, hexagon, cross or ring.
    texture: stripes, dots, checker, radial, rings or solid.
    colour / colour2: main and pattern colour (RGB).
    sound: hum, buzz, drum, chirp, bell, tremolo, clicks or whistle (see ``_sound_signal``).
    """

    name: str
    shape: str
    texture: str
    colour: tuple[int, int, int]
    colour2: tuple[int, int, int]
    sound: str


# Saturated colours with different hues, against a low-saturation background; each
# class differs from every other one in shape, hue and texture, and in sound.
CLASS_STYLES: dict[str, ClassStyle] = {
    s.name: s
    for s in (
        ClassStyle("hum", "circle", "stripes", (215, 35, 35), (250, 215, 200), "hum"),
        ClassStyle("buzz", "square", "dots", (35, 75, 215), (200, 220, 255), "buzz"),
        ClassStyle("drum", "triangle", "checker", (35, 160, 55), (15, 75, 25), "drum"),
        ClassStyle("chirp", "star", "radial", (245, 210, 30), (200, 110, 0), "chirp"),
        ClassStyle("bell", "diamond", "rings", (140, 55, 200), (225, 190, 245), "bell"),
        ClassStyle("tremolo", "hexagon", "stripes", (245, 135, 25), (110, 50, 10), "tremolo"),
        ClassStyle("clicks", "cross", "checker", (25, 195, 205), (10, 80, 90), "clicks"),
        ClassStyle("whistle", "ring", "solid", (235, 80, 170), (255, 190, 225), "whistle"),
    )
}
CLASS_NAMES = tuple(CLASS_STYLES)


# =========================================================================== config
@dataclass(frozen=True)
class RegimeWeights:
    """Relative frequency of each motion regime (0 disables one)."""

    source_moves: float = 1.0
    """The sounding object moves, the distractors are static."""
    all_move: float = 1.0
    """Every object moves."""
    distractor_moves: float = 1.0
    """The sounding object is static and one distractor moves."""
    static: float = 1.0
    """Nothing moves (optical flow carries no information)."""

    def as_dict(self) -> dict[str, float]:
        """{regime: weight} in REGIMES order."""
        return {r: float(getattr(self, r)) for r in REGIMES}


@dataclass(frozen=True)
class SynthConfig:
    """Everything ``hearflow synth`` can vary; see configs/synth.yaml for the defaults."""

    # --- media ------------------------------------------------------------------------
    width: int = 256
    """Frame width in pixels."""
    height: int = 256
    """Frame height in pixels."""
    fps: float = 25.0
    """Video frame rate."""
    duration: float = 4.0
    """Clip length in seconds."""
    sample_rate: int = 22050
    """Audio sample rate (mono)."""
    crf: int = 23
    """libx264 constant rate factor (lower = better quality, bigger files)."""
    preset: str = "veryfast"
    """libx264 preset (speed/size trade-off)."""
    audio_bit_rate: int = 64000
    """AAC bit rate in bits/s."""

    # --- objects ----------------------------------------------------------------------
    classes: tuple[str, ...] = CLASS_NAMES
    """Object classes to use (a subset of hum, buzz, drum, chirp, bell, tremolo, clicks, whistle)."""
    min_objects: int = 2
    """Fewest objects on screen (the sounding one included)."""
    max_objects: int = 4
    """Most objects on screen; each object of a clip has a different class."""
    source_side: tuple[float, float] = (0.2236, 0.7746)
    """The sounding object's box side as a fraction of the frame side, drawn uniformly
    from this range (sqrt of the area fraction: the default gives boxes of 5–60 % of the
    frame with a median near 25 %, like VGG-SS)."""
    distractor_side: tuple[float, float] = (0.2, 0.65)
    """Same for the silent objects (a bit smaller on average)."""
    aspect: float = 1.25
    """Largest width/height (or height/width) ratio of a box; the area is kept."""
    max_overlap: float = 0.3
    """Rejection sampling keeps, when it can, every pair of boxes below this overlap
    (intersection over the smaller box) on every frame of the clip."""
    min_visible: float = 0.7
    """Smallest fraction of the sounding object's pixels inside the frame, at any time."""
    pitch_jitter: float = 0.15
    """Per-clip relative jitter of each sound's pitch and rhythm (±)."""
    shade_jitter: float = 0.12
    """Per-clip relative jitter of each object's brightness (±), plus a small tint."""

    # --- motion -----------------------------------------------------------------------
    regime_weights: RegimeWeights = field(default_factory=RegimeWeights)
    """Relative frequency of the motion regimes."""
    regime_order: Literal["cycle", "random"] = "cycle"
    """cycle: regimes follow a deterministic weighted round robin over each split's
    clips (exact proportions); random: each clip draws one with these weights."""
    motion: Literal["mixed", "bounce", "sine"] = "mixed"
    """How moving objects move: constant velocity bouncing off the allowed area,
    sinusoidal (elliptic) oscillation, or either at random."""
    speed: tuple[float, float] = (1.0, 6.0)
    """Speed range of moving objects in pixels per frame at 256 px frame width."""

    # --- sound ------------------------------------------------------------------------
    loudness: float = 0.1
    """RMS level of the sound (float audio in [-1, 1])."""
    loudness_jitter_db: float = 3.0
    """Per-clip loudness jitter (± dB)."""
    sound_onset: float = 0.0
    """Seconds of silence (noise floor only) before the sound starts; 0: it sounds all
    clip long. The annotated frame is the middle of the sounding part."""
    sound_onset_jitter: float = 0.0
    """A uniform random 0..this is added to sound_onset per clip."""

    # --- negatives --------------------------------------------------------------------
    negative_fraction: float = 0.0
    """Fraction of clips (drawn per clip) in which no visible object sounds."""
    negative_kinds: tuple[Literal["silence", "noise", "offscreen"], ...] = NEGATIVE_KINDS
    """Kinds of negative clip, drawn uniformly: near-silence, broadband noise, or the
    sound of a class that is not on screen."""

    # --- noise and background ---------------------------------------------------------
    video_noise: float = 3.0
    """Standard deviation of Gaussian pixel noise (0–255 levels)."""
    audio_noise: float = 0.003
    """RMS of the white noise floor added to every clip's audio."""
    background_contrast: float = 45.0
    """Amplitude (0–255 levels) of the procedural background texture."""
    background_saturation: float = 0.18
    """Largest HSV saturation of the background tint (objects are far more saturated)."""

    # --- Flickr-style annotations -----------------------------------------------------
    flickr_annotators: tuple[int, int] = (2, 3)
    """Range of the number of "annotators'" boxes per test clip XML."""
    flickr_jitter: int = 3
    """Each annotator box moves each coordinate by up to this many pixels (256 px frame)."""

    def __post_init__(self):
        if self.width < 32 or self.height < 32:
            raise ValueError(f"width and height must be >= 32, got {self.width}x{self.height}")
        if self.fps <= 0 or self.duration <= 0 or self.sample_rate < 8000:
            raise ValueError("fps and duration must be positive and sample_rate >= 8000")
        unknown = [c for c in self.classes if c not in CLASS_STYLES]
        if unknown:
            raise ValueError(f"unknown classes {unknown} (known: {', '.join(CLASS_NAMES)})")
        if len(set(self.classes)) != len(self.classes) or not self.classes:
            raise ValueError("classes must be a non-empty list without repeats")
        if not 1 <= self.min_objects <= self.max_objects <= len(self.classes):
            raise ValueError(
                f"need 1 <= min_objects <= max_objects <= len(classes) ({len(self.classes)}), "
                f"got {self.min_objects}, {self.max_objects}"
            )
        for name in ("source_side", "distractor_side"):
            lo, hi = getattr(self, name)
            if not 0.02 <= lo <= hi <= 0.95:
                raise ValueError(f"{name} must satisfy 0.02 <= lo <= hi <= 0.95, got {(lo, hi)}")
        if self.aspect < 1:
            raise ValueError("aspect must be >= 1")
        if not 0 < self.min_visible <= 1:
            raise ValueError("min_visible must be in (0, 1]")
        weights = self.regime_weights.as_dict()
        if min(weights.values()) < 0 or sum(weights.values()) <= 0:
            raise ValueError("regime_weights must be >= 0 with a positive sum")
        if not 0 <= self.speed[0] <= self.speed[1]:
            raise ValueError("speed must be a range 0 <= lo <= hi")
        if not 0 <= self.negative_fraction <= 1:
            raise ValueError("negative_fraction must be in [0, 1]")
        if self.negative_fraction > 0 and not self.negative_kinds:
            raise ValueError("negative_kinds is empty but negative_fraction > 0")
        if self.sound_onset < 0 or self.sound_onset_jitter < 0:
            raise ValueError("sound_onset and sound_onset_jitter must be >= 0")
        if not 1 <= self.flickr_annotators[0] <= self.flickr_annotators[1]:
            raise ValueError("flickr_annotators must be a range 1 <= lo <= hi")

    @property
    def n_frames(self) -> int:
        """Frames per clip."""
        return max(1, int(round(self.duration * self.fps)))

    @property
    def n_samples(self) -> int:
        """Audio samples per clip."""
        return int(round(self.duration * self.sample_rate))


# =========================================================================== specs
@dataclass(frozen=True)
class Motion:
    """Trajectory of an object's top-left corner in pixels, a pure function of the frame index.

    kind: static (at x0, y0); bounce (from x0, y0 at vx, vy px/frame, reflected at the
    borders of the allowed area); sine (x = x0 + ax sin(omega i + phase),
    y = y0 + ay sin(omega i + phase + psi): an ellipse or a line).
    area: allowed top-left range (xlo, xhi, ylo, yhi); bounce reflects off it, the
    other kinds stay inside it by construction.
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

    @property
    def moves(self) -> bool:
        """Whether the object moves at all."""
        return self.kind != "static"

    def position(self, i):
        """Top-left (x, y) in pixels (floats) at frame index ``i`` (scalar or array)."""
        i = np.asarray(i, dtype=np.float64)
        xlo, xhi, ylo, yhi = self.area
        if self.kind == "bounce":
            return _reflect(self.x0 + self.vx * i, xlo, xhi), _reflect(self.y0 + self.vy * i, ylo, yhi)
        if self.kind == "sine":
            a = self.omega * i + self.phase
            return self.x0 + self.ax * np.sin(a), self.y0 + self.ay * np.sin(a + self.psi)
        return np.full_like(i, self.x0), np.full_like(i, self.y0)

    def pixel(self, i):
        """Integer top-left (x, y) at frame ``i``: where the sprite is drawn."""
        x, y = self.position(i)
        return np.floor(x + 0.5).astype(np.int64), np.floor(y + 0.5).astype(np.int64)


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
    """

    kind: str
    pitch: float
    rate: float
    gain: float
    offset: float
    seed: int


@dataclass(frozen=True)
class ClipSpec:
    """Everything random about one clip; :class:`SynthScene` renders it deterministically.

    objects: in drawing order; the object at ``source_index`` (the last, drawn on top)
    is the sounding one unless ``negative`` is set.
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


# =========================================================================== sprites
def _polygon(shape: str) -> np.ndarray | None:
    """Vertices in the unit square for polygon shapes (None for analytic shapes)."""
    if shape == "triangle":
        return np.array([(0.5, 0.0), (1.0, 1.0), (0.0, 1.0)])
    if shape == "diamond":
        return np.array([(0.5, 0.0), (1.0, 0.5), (0.5, 1.0), (0.0, 0.5)])
    if shape == "hexagon":
        return np.array([(0.25, 0.0), (0.75, 0.0), (1.0, 0.5), (0.75, 1.0), (0.25, 1.0), (0.0, 0.5)])
    if shape == "cross":
        a, b = 0.32, 0.68
        return np.array([(a, 0), (b, 0), (b, a), (1, a), (1, b), (b, b), (b, 1), (a, 1), (a, b), (0, b), (0, a), (a, a)])
    if shape == "star":
        k = np.arange(10)
        r = np.where(k % 2 == 0, 1.0, 0.42)
        ang = -np.pi / 2 + k * np.pi / 5
        pts = np.stack([r * np.cos(ang), r * np.sin(ang)], axis=1)
        return (pts - pts.min(0)) / (pts.max(0) - pts.min(0))  # stretch to fill the box
    return None


def shape_mask(shape: str, w: int, h: int) -> np.ndarray:
    """Boolean (h, w) mask of ``shape`` filling the w×h box: its tight box is the whole array."""
    poly = _polygon(shape)
    if poly is not None:
        mask = np.zeros((h, w), np.uint8)
        pts = np.round(poly * [w - 1, h - 1]).astype(np.int32)
        cv2.fillPoly(mask, [pts], 1)
        return mask.astype(bool)
    if shape == "square":
        return np.ones((h, w), bool)
    # ellipse through the pixel centres of the first/last row and column, so it fills the box
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    rx, ry = max((w - 1) / 2, 0.5), max((h - 1) / 2, 0.5)
    d = ((xx - (w - 1) / 2) / rx) ** 2 + ((yy - (h - 1) / 2) / ry) ** 2
    mask = d <= 1.0 + 1e-9
    if shape == "ring":
        mask &= d >= 0.55**2
    return mask


def make_sprite(obj: ObjectSpec) -> tuple[np.ndarray, np.ndarray]:
    """The object's look: (rgb (h, w, 3) uint8, mask (h, w) bool)."""
    style = CLASS_STYLES[obj.cls]
    h, w = obj.h, obj.w
    mask = shape_mask(style.shape, w, h)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c1 = np.array(obj.colour, np.float32)
    c2 = np.array(obj.colour2, np.float32)
    p = max(obj.pattern, 3.0)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    if style.texture == "stripes":
        u = xx * math.cos(obj.angle) + yy * math.sin(obj.angle)
        t = (np.mod(u / p, 1.0) < 0.5).astype(np.float32)
    elif style.texture == "dots":
        dx = np.mod(xx, p) - p / 2
        dy = np.mod(yy, p) - p / 2
        t = (dx * dx + dy * dy < (0.3 * p) ** 2).astype(np.float32)
    elif style.texture == "checker":
        t = ((np.floor(xx / p) + np.floor(yy / p)) % 2).astype(np.float32)
    elif style.texture == "rings":
        r = np.hypot(xx - cx, yy - cy)
        t = (np.mod(r / p, 1.0) < 0.5).astype(np.float32)
    elif style.texture == "radial":
        r = np.hypot((xx - cx) / max(cx, 1), (yy - cy) / max(cy, 1))
        t = np.clip(r, 0, 1) ** 1.5
    else:  # solid, lit from the top-left so it is not perfectly flat
        t = 0.25 * ((xx / max(w - 1, 1)) + (yy / max(h - 1, 1))) / 2
    rgb = c1 * (1 - t[..., None]) + c2 * t[..., None]
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8), mask


def visible_fraction(mask: np.ndarray, x: int, y: int, width: int, height: int) -> float:
    """Fraction of a sprite mask's pixels inside a width×height frame when drawn at (x, y)."""
    h, w = mask.shape
    x0, x1 = max(0, -x), min(w, width - x)
    y0, y1 = max(0, -y), min(h, height - y)
    if x0 >= x1 or y0 >= y1:
        return 0.0
    return float(mask[y0:y1, x0:x1].sum()) / max(1, int(mask.sum()))


def visible_box(mask: np.ndarray, x: int, y: int, width: int, height: int) -> tuple[int, int, int, int] | None:
    """Tight box [x1, y1, x2, y2) of a sprite mask's pixels inside the frame; None if none."""
    h, w = mask.shape
    x0, x1 = max(0, -x), min(w, width - x)
    y0, y1 = max(0, -y), min(h, height - y)
    if x0 >= x1 or y0 >= y1:
        return None
    m = mask[y0:y1, x0:x1]
    cols = np.flatnonzero(m.any(axis=0))
    rows = np.flatnonzero(m.any(axis=1))
    if cols.size == 0:
        return None
    return (x + x0 + int(cols[0]), y + y0 + int(rows[0]), x + x0 + int(cols[-1]) + 1, y + y0 + int(rows[-1]) + 1)


# =========================================================================== sampling
def clip_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of clip ``index`` of ``split``: independent of worker count and order."""
    return np.random.default_rng([int(seed), _SPLIT_CODE.get(split, 3), int(index)])


def regime_cycle(weights: RegimeWeights | dict, n: int) -> list[str]:
    """Deterministic weighted round robin of regimes for n clips (smooth: evenly spread)."""
    w = weights.as_dict() if isinstance(weights, RegimeWeights) else dict(weights)
    names = [r for r in REGIMES if w.get(r, 0) > 0]
    total = sum(w[r] for r in names)
    current = {r: 0.0 for r in names}
    out = []
    for _ in range(n):
        for r in names:
            current[r] += w[r]
        pick = max(names, key=lambda r: current[r])  # first of the largest: stable
        current[pick] -= total
        out.append(pick)
    return out


def _jitter_colour(rgb, rng, amount: float) -> tuple[int, int, int]:
    c = np.asarray(rgb, np.float64) * (1 + rng.uniform(-amount, amount))
    c += rng.uniform(-1, 1, 3) * 80 * amount  # slight tint
    return tuple(int(v) for v in np.clip(np.round(c), 0, 255))


def _sample_look(cfg: SynthConfig, rng, cls: str, side_range) -> tuple:
    """Size, colours and texture of one object: (w, h, colour, colour2, pattern, angle)."""
    style = CLASS_STYLES[cls]
    side = rng.uniform(*side_range)
    ratio = math.exp(rng.uniform(-math.log(cfg.aspect), math.log(cfg.aspect)))
    # area stays side² of the frame; clamp so it always fits
    w = int(round(min(side * math.sqrt(ratio), 0.95) * cfg.width))
    h = int(round(min(side / math.sqrt(ratio), 0.95) * cfg.height))
    w, h = max(w, 6), max(h, 6)
    shade = rng.uniform(-cfg.shade_jitter, cfg.shade_jitter)
    colour = _jitter_colour(np.asarray(style.colour) * (1 + shade), rng, cfg.shade_jitter / 3)
    colour2 = _jitter_colour(np.asarray(style.colour2) * (1 + shade), rng, cfg.shade_jitter / 3)
    pattern = min(w, h) * rng.uniform(0.15, 0.22)
    angle = rng.uniform(0, np.pi) if style.texture == "stripes" else 0.0
    return w, h, colour, colour2, pattern, angle


def _shrink_look(look: tuple, f: float) -> tuple:
    w, h, colour, colour2, pattern, angle = look
    return max(6, round(w * f)), max(6, round(h * f)), colour, colour2, pattern * f, angle


def _allowed_area(cfg: SynthConfig, w: int, h: int, overhang: float) -> tuple[float, float, float, float]:
    """Top-left range keeping at most ``overhang`` of the sprite's width/height outside."""
    ox, oy = math.floor(overhang * w), math.floor(overhang * h)
    return (float(-ox), float(cfg.width - w + ox), float(-oy), float(cfg.height - h + oy))


def _sample_motion(cfg: SynthConfig, rng, area, moves: bool) -> Motion:
    xlo, xhi, ylo, yhi = area
    if not moves:
        return Motion("static", float(round(rng.uniform(xlo, xhi))), float(round(rng.uniform(ylo, yhi))), area)
    speed = rng.uniform(*cfg.speed) * cfg.width / 256.0
    kind = cfg.motion if cfg.motion != "mixed" else ("bounce" if rng.random() < 0.5 else "sine")
    theta = rng.uniform(0, 2 * np.pi)
    if kind == "sine":
        # amplitude vector along theta within the half ranges; omega gives the peak speed
        half_x, half_y = (xhi - xlo) / 2, (yhi - ylo) / 2
        amp = rng.uniform(0.5, 1.0) * min(
            half_x / max(abs(math.cos(theta)), 1e-6), half_y / max(abs(math.sin(theta)), 1e-6)
        )
        ax, ay = abs(amp * math.cos(theta)), abs(amp * math.sin(theta))
        if math.hypot(ax, ay) >= 4:  # else too cramped to oscillate: bounce instead
            return Motion(
                "sine",
                x0=rng.uniform(xlo + ax, xhi - ax),
                y0=rng.uniform(ylo + ay, yhi - ay),
                area=area,
                ax=ax,
                ay=ay,
                omega=speed / math.hypot(ax, ay),
                phase=rng.uniform(0, 2 * np.pi),
                psi=float(rng.choice([0.0, np.pi / 2, rng.uniform(0, np.pi)])),
            )
    return Motion(
        "bounce",
        x0=rng.uniform(xlo, xhi),
        y0=rng.uniform(ylo, yhi),
        area=area,
        vx=speed * math.cos(theta),
        vy=speed * math.sin(theta),
    )


def _max_overlap(objs: list[ObjectSpec], frames: np.ndarray) -> float:
    """Largest intersection / smaller-box area over object pairs and the given frames."""
    boxes = []
    for o in objs:
        x, y = o.motion.position(frames)
        boxes.append((x, y, x + o.w, y + o.h, o.w * o.h))
    worst = 0.0
    for a in range(len(boxes)):
        for b in range(a + 1, len(boxes)):
            ax0, ay0, ax1, ay1, aa = boxes[a]
            bx0, by0, bx1, by1, ba = boxes[b]
            iw = np.clip(np.minimum(ax1, bx1) - np.maximum(ax0, bx0), 0, None)
            ih = np.clip(np.minimum(ay1, by1) - np.maximum(ay0, by0), 0, None)
            worst = max(worst, float((iw * ih).max()) / min(aa, ba))
    return worst


def _sound_gain(cfg: SynthConfig, snd: SoundSpec, rng) -> float:
    """Gain that brings the sound's RMS to the configured loudness (± jitter), peaks below 0.9."""
    probe = dataclasses.replace(snd, gain=1.0)
    raw = _sound_signal(probe, np.arange(2 * cfg.sample_rate), cfg.sample_rate)
    rms = float(np.sqrt(np.mean(raw**2))) + 1e-9
    db = rng.uniform(-cfg.loudness_jitter_db, cfg.loudness_jitter_db)
    # sparse sounds (drum, clicks) would clip at the RMS target: cap the peak instead
    return min(cfg.loudness * 10 ** (db / 20) / rms, 0.9 / (float(np.abs(raw).max()) + 1e-9))


def sample_spec(
    cfg: SynthConfig,
    rng: np.random.Generator,
    *,
    clip_id: str = "clip",
    split: str = "train",
    regime: str | None = None,
    negative: str | None | Literal["auto"] = "auto",
    source_class: str | None = None,
) -> ClipSpec:
    """Draw one clip's spec.

    cfg: the dataset config.
    rng: the clip's generator (see :func:`clip_rng`); the spec is a pure function of it.
    clip_id / split: recorded in the spec.
    regime: one of REGIMES; None draws one with ``cfg.regime_weights``.
    negative: "auto" draws with ``cfg.negative_fraction``; None forces a positive clip;
    a kind from NEGATIVE_KINDS forces that negative.
    source_class: force the sounding (or, for a negative, the source-role) object's class.
    """
    weights = cfg.regime_weights.as_dict()
    if regime is None:
        names = [r for r in REGIMES if weights[r] > 0]
        p = np.array([weights[r] for r in names])
        regime = str(rng.choice(names, p=p / p.sum()))
    if regime not in REGIMES:
        raise ValueError(f"unknown regime {regime!r} (known: {', '.join(REGIMES)})")
    if negative == "auto":
        negative = None
        if cfg.negative_fraction > 0 and rng.random() < cfg.negative_fraction:
            negative = str(rng.choice(list(cfg.negative_kinds)))
    if negative is not None and negative not in NEGATIVE_KINDS:
        raise ValueError(f"unknown negative kind {negative!r} (known: {', '.join(NEGATIVE_KINDS)})")

    # classes: all different; an off-screen sound needs one more class than is shown
    max_n = cfg.max_objects if negative != "offscreen" else min(cfg.max_objects, len(cfg.classes) - 1)
    if max_n < 1:
        raise ConfigError("an 'offscreen' negative needs at least two classes")
    n_obj = int(rng.integers(min(cfg.min_objects, max_n), max_n + 1))
    pool = list(cfg.classes)
    if source_class is not None:
        if source_class not in CLASS_STYLES:
            raise ValueError(f"unknown class {source_class!r}")
        pool = [c for c in pool if c != source_class]
        classes = [source_class] + [str(c) for c in rng.permutation(pool)[: n_obj - 1]]
    else:
        classes = [str(c) for c in rng.permutation(pool)[:n_obj]]
    src_cls, dis_cls = classes[0], classes[1:]

    # looks (fixed for the clip) and who moves
    src_look = _sample_look(cfg, rng, src_cls, cfg.source_side)
    dis_looks = [_sample_look(cfg, rng, c, cfg.distractor_side) for c in dis_cls]
    src_moves = regime in ("source_moves", "all_move")
    dis_moves = [regime == "all_move" or (regime == "distractor_moves" and k == 0) for k in range(len(dis_cls))]

    # the sounding object's allowed area: overhang per axis as large as min_visible
    # allows for a rectangle, verified on the true mask at the area's corners (the
    # visible part anywhere else contains the one at some corner), else halved, else 0
    sw, sh = src_look[0], src_look[1]
    src_mask = shape_mask(CLASS_STYLES[src_cls].shape, sw, sh)
    full = 1 - math.sqrt(cfg.min_visible)
    for overhang in (full, full / 2, 0.0):
        src_area = _allowed_area(cfg, sw, sh, overhang)
        corners = [(src_area[i], src_area[j]) for i in (0, 1) for j in (2, 3)]
        worst = min(visible_fraction(src_mask, int(x), int(y), cfg.width, cfg.height) for x, y in corners)
        if worst >= cfg.min_visible:
            break
    dis_areas = [_allowed_area(cfg, lk[0], lk[1], 0.25) for lk in dis_looks]

    # positions and velocities by rejection sampling on the overlap over the whole clip;
    # when the frame is too crowded, shrink the distractors (twice, by 15 %), then drop one
    check = np.arange(0, cfg.n_frames, 2)
    best, best_score = None, math.inf
    for attempt in range(80):
        if attempt in (16, 32):
            dis_looks = [_shrink_look(lk, 0.85) for lk in dis_looks]
            dis_areas = [_allowed_area(cfg, lk[0], lk[1], 0.25) for lk in dis_looks]
        if attempt in (48, 64) and len(dis_looks) + 1 > cfg.min_objects:
            dis_looks, dis_cls, dis_areas, dis_moves = dis_looks[:-1], dis_cls[:-1], dis_areas[:-1], dis_moves[:-1]
        objs = [
            ObjectSpec(c, *lk, _sample_motion(cfg, rng, area, mv))
            for c, lk, area, mv in zip(dis_cls, dis_looks, dis_areas, dis_moves)
        ]
        objs.append(ObjectSpec(src_cls, *src_look, _sample_motion(cfg, rng, src_area, src_moves)))
        score = _max_overlap(objs, check) if len(objs) > 1 else 0.0
        if score < best_score:
            best, best_score = objs, score
        if score <= cfg.max_overlap:
            break
    objs = best

    onset = cfg.sound_onset + (rng.uniform(0, cfg.sound_onset_jitter) if cfg.sound_onset_jitter > 0 else 0.0)
    mid_time = (min(onset, cfg.duration) + cfg.duration) / 2
    annotate_frame = min(cfg.n_frames - 1, int(round(mid_time * cfg.fps)))

    # the sound
    sound_class = src_cls
    if negative == "silence":
        sound, sound_class = None, "silence"
    else:
        if negative == "noise":
            kind, sound_class = "noise", "noise"
        elif negative == "offscreen":
            off = [c for c in cfg.classes if c not in {o.cls for o in objs}]
            sound_class = str(rng.choice(off))
            kind = CLASS_STYLES[sound_class].sound
        else:
            kind = CLASS_STYLES[src_cls].sound
        sound = SoundSpec(
            kind=kind,
            pitch=float(1 + rng.uniform(-cfg.pitch_jitter, cfg.pitch_jitter)),
            rate=float(1 + rng.uniform(-cfg.pitch_jitter, cfg.pitch_jitter)),
            gain=1.0,
            offset=float(rng.uniform(0, 2.0)),
            seed=int(rng.integers(0, 2**31 - 1)),
        )
        sound = dataclasses.replace(sound, gain=_sound_gain(cfg, sound, rng))

    return ClipSpec(
        clip_id=clip_id,
        split=split,
        width=cfg.width,
        height=cfg.height,
        fps=cfg.fps,
        duration=cfg.duration,
        sample_rate=cfg.sample_rate,
        regime=regime,
        negative=negative,
        sound_onset=float(onset),
        annotate_frame=annotate_frame,
        objects=tuple(objs),
        source_index=len(objs) - 1,
        sound=sound,
        sound_class=sound_class,
        seed=int(rng.integers(0, 2**31 - 1)),
        video_noise=cfg.video_noise,
        audio_noise=cfg.audio_noise,
        background_contrast=cfg.background_contrast,
        background_saturation=cfg.background_saturation,
    )


# =========================================================================== sound
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _hash64(seed: int, idx: np.ndarray) -> np.ndarray:
    """splitmix64 of (seed, idx): counter-based randomness, so any sample range is pure."""
    with np.errstate(over="ignore"):
        z = idx.astype(np.int64).astype(np.uint64) * _GOLDEN + np.uint64(seed & 0xFFFFFFFFFFFF) * np.uint64(
            0xD1B54A32D192ED03
        )
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def hash_noise(seed: int, idx: np.ndarray) -> np.ndarray:
    """Approximately standard-normal noise (float64), a pure function of (seed, sample index).

    Sum of four 16-bit uniforms from one 64-bit hash (Irwin–Hall), scaled to unit variance.
    """
    h = _hash64(seed, np.asarray(idx))
    s = np.zeros(h.shape, np.float64)
    for k in range(4):
        s += ((h >> np.uint64(16 * k)) & np.uint64(0xFFFF)).astype(np.float64)
    return (s / 65536.0 - 2.0) * math.sqrt(3.0)


@lru_cache(maxsize=64)
def _bandpass(lo: float, hi: float, sr: int):
    return signal.butter(2, [lo, hi], btype="band", fs=sr, output="sos")


def _bursts(snd: SoundSpec, u: np.ndarray, sr: int) -> np.ndarray:
    """Drum: band-passed noise bursts on a beat, each rendered whole so chunks agree."""
    period = 0.25 / snd.rate
    length = int(0.16 * sr)
    fc = 1500.0 * snd.pitch
    sos = _bandpass(fc / 1.7, min(fc * 1.7, 0.45 * sr), sr)
    out = np.zeros(u.shape, np.float64)
    u0, u1 = int(u[0]), int(u[-1]) + 1
    env = np.exp(-np.arange(length) / (0.035 * sr))
    k0 = math.floor((u0 - length) / (period * sr))
    k1 = math.floor(u1 / (period * sr))
    for k in range(k0, k1 + 1):
        b = int(round(k * period * sr))
        lo, hi = max(b, u0), min(b + length, u1)
        if lo >= hi:
            continue
        accent = 0.55 + 0.45 * (hash_noise(snd.seed + 7, np.array([k]))[0] > 0)  # strong/weak beats
        burst = signal.sosfilt(sos, hash_noise(snd.seed, np.arange(length) + k * length)) * env
        burst *= accent / (np.abs(burst).max() + 1e-9)  # equal peaks: the level cap holds for every burst
        out[lo - u0 : hi - u0] += burst[lo - b : hi - b]
    return out


def _sound_signal(snd: SoundSpec, u: np.ndarray, sr: int) -> np.ndarray:
    """The raw sound (times snd.gain) at sound-local sample indices ``u`` (consecutive ints)."""
    t = u / sr
    two_pi = 2 * np.pi
    p, r, kind = snd.pitch, snd.rate, snd.kind
    if kind == "hum":  # low harmonic hum with a slow swell
        f0 = 90.0 * p
        x = sum(k**-1.2 * np.sin(two_pi * k * f0 * t + 0.7 * k) for k in range(1, 9))
        x = x * (1 + 0.15 * np.sin(two_pi * 0.7 * r * t))
    elif kind == "buzz":  # band-limited square wave: odd harmonics, 1/k
        f0 = 200.0 * p
        x = sum(np.sin(two_pi * k * f0 * t) / k for k in range(1, int(0.45 * sr / f0) + 1, 2))
    elif kind == "drum":
        x = _bursts(snd, u, sr)
    elif kind == "chirp":  # exponential up-sweeps, 2 per second
        period, dur = 0.5 / r, 0.3 / r
        f1, f2 = 580.0 * p, 2320.0 * p
        tau = np.mod(t, period)
        k = math.log(f2 / f1)
        phase = two_pi * f1 * dur / k * (np.exp(k * np.minimum(tau, dur) / dur) - 1)
        env = np.where(tau < dur, np.sin(np.pi * np.minimum(tau, dur) / dur) ** 2, 0.0)
        x = env * np.sin(phase)
    elif kind == "bell":  # inharmonic partials, struck every 0.8 s
        period = 0.8 / r
        tau = np.mod(t, period)
        f0 = 460.0 * p
        x = sum(
            a * np.exp(-tau / d) * np.sin(two_pi * f0 * q * tau)
            for q, a, d in ((1.0, 1.0, 0.5), (2.32, 0.7, 0.3), (4.25, 0.5, 0.18), (6.63, 0.35, 0.1))
        )
        x = x * np.minimum(tau / 0.002, 1.0)  # soft attack: no click at the strike
    elif kind == "tremolo":  # tone with a deep 6 Hz amplitude modulation
        f0 = 230.0 * p
        tone = np.sin(two_pi * f0 * t) + 0.3 * np.sin(two_pi * 2 * f0 * t)
        x = tone * (1 - 0.9 * (0.5 + 0.5 * np.sin(two_pi * 6.0 * r * t)))
    elif kind == "clicks":  # train of short high clicks, 25 per second
        period = 0.04 / r
        tau = np.mod(t, period)
        x = np.exp(-tau / 0.0015) * np.sin(two_pi * 5000.0 * p * tau)
    elif kind == "whistle":  # high sine with vibrato
        fc, fv = 3000.0 * p, 5.0 * r
        x = np.sin(two_pi * fc * t + (0.03 * fc / fv) * np.sin(two_pi * fv * t))
    elif kind == "noise":  # broadband
        x = hash_noise(snd.seed, u)
    else:
        raise ValueError(f"unknown sound {kind!r}")
    return snd.gain * np.asarray(x, np.float64)


# =========================================================================== scene
class SynthScene:
    """Renders a :class:`ClipSpec`: frames, audio, masks and boxes as pure functions of time.

    Works for any frame index / sample index ≥ 0, beyond the clip's duration too
    (objects keep moving, sounds keep repeating), so a live source can stream it.
    """

    def __init__(self, spec: ClipSpec):
        self.spec = spec
        self.width, self.height = spec.width, spec.height
        self.fps, self.sample_rate = spec.fps, spec.sample_rate
        self.sprites = [make_sprite(o) for o in spec.objects]
        self.background = _background(spec)
        rng = np.random.default_rng([spec.seed, 1])
        # a bank of noise twice the frame size; each frame takes a window at a hashed
        # offset: fresh-looking noise per frame without drawing 200k normals every time
        bank = rng.standard_normal((2 * self.height, 2 * self.width, 3), dtype=np.float32) * spec.video_noise
        self._noise_bank = np.round(bank).astype(np.int16)
        self._onset_sample = int(round(spec.sound_onset * spec.sample_rate))

    # --- video -----------------------------------------------------------------------
    @property
    def n_frames(self) -> int:
        """Frames in the clip (the scene itself is endless)."""
        return self.spec.n_frames

    def positions(self, i: int) -> list[tuple[int, int]]:
        """Integer top-left of every object's sprite at frame i (drawing order)."""
        out = []
        for o in self.spec.objects:
            x, y = o.motion.pixel(i)
            out.append((int(x), int(y)))
        return out

    def frame(self, i: int, noise: bool = True) -> np.ndarray:
        """RGB uint8 (height, width, 3) frame i (at time i / fps)."""
        img = self.background.copy()
        for (rgb, mask), (x, y) in zip(self.sprites, self.positions(i)):
            h, w = mask.shape
            x0, x1 = max(0, -x), min(w, self.width - x)
            y0, y1 = max(0, -y), min(h, self.height - y)
            if x0 >= x1 or y0 >= y1:
                continue
            region = img[y + y0 : y + y1, x + x0 : x + x1]
            m = mask[y0:y1, x0:x1]
            region[m] = rgb[y0:y1, x0:x1][m]
        if noise and self.spec.video_noise > 0:
            h = _hash64(self.spec.seed, np.array([i]))[0]
            oy = int(h % np.uint64(self.height))
            ox = int((h >> np.uint64(32)) % np.uint64(self.width))
            window = self._noise_bank[oy : oy + self.height, ox : ox + self.width]
            img = np.clip(img.astype(np.int16) + window, 0, 255).astype(np.uint8)
        return img

    def frame_at(self, t: float, noise: bool = True) -> np.ndarray:
        """The frame shown at time t seconds (the last frame starting at or before t)."""
        return self.frame(int(math.floor(t * self.fps + 1e-6)), noise=noise)

    def masks(self, i: int) -> list[np.ndarray]:
        """Full-frame boolean mask of every object at frame i (drawing order, occlusion ignored)."""
        out = []
        for (_, mask), (x, y) in zip(self.sprites, self.positions(i)):
            full = np.zeros((self.height, self.width), bool)
            h, w = mask.shape
            x0, x1 = max(0, -x), min(w, self.width - x)
            y0, y1 = max(0, -y), min(h, self.height - y)
            if x0 < x1 and y0 < y1:
                full[y + y0 : y + y1, x + x0 : x + x1] = mask[y0:y1, x0:x1]
            out.append(full)
        return out

    def boxes(self, i: int) -> list[tuple[int, int, int, int] | None]:
        """Tight pixel box [x1, y1, x2, y2) of each object's in-frame pixels at frame i."""
        return [
            visible_box(mask, x, y, self.width, self.height)
            for (_, mask), (x, y) in zip(self.sprites, self.positions(i))
        ]

    def visible_fractions(self, i: int) -> list[float]:
        """Fraction of each object's pixels inside the frame at frame i."""
        return [
            visible_fraction(mask, x, y, self.width, self.height)
            for (_, mask), (x, y) in zip(self.sprites, self.positions(i))
        ]

    # --- audio -----------------------------------------------------------------------
    def audio(self, start: int, n: int) -> np.ndarray:
        """float32 mono samples [start, start + n) (sample s is at time s / sample_rate).

        Before the onset only the noise floor sounds; a 10 ms fade-in follows it.
        """
        idx = np.arange(start, start + n, dtype=np.int64)
        out = np.zeros(n, np.float64)
        snd = self.spec.sound
        if snd is not None and n > 0:
            on = idx >= self._onset_sample
            if on.any():
                sr = self.sample_rate
                u = idx[on] - self._onset_sample + int(round(snd.offset * sr))
                ramp = np.minimum((idx[on] - self._onset_sample) / (0.01 * sr), 1.0)
                out[on] = _sound_signal(snd, u, sr) * ramp
        if self.spec.audio_noise > 0:
            out += self.spec.audio_noise * hash_noise(self.spec.seed ^ 0x5A5A, idx)
        return np.clip(out, -1.0, 1.0).astype(np.float32)

    def audio_at(self, t0: float, t1: float) -> np.ndarray:
        """Audio from t0 to t1 seconds."""
        s0 = int(round(t0 * self.sample_rate))
        return self.audio(s0, max(0, int(round(t1 * self.sample_rate)) - s0))


def _background(spec: ClipSpec) -> np.ndarray:
    """Procedural low-saturation texture: octaves of smooth noise plus a gradient, tinted."""
    rng = np.random.default_rng([spec.seed, 0])
    W, H = spec.width, spec.height
    lum = np.zeros((H, W), np.float32)
    for cells, amp in ((3, 1.0), (7, 0.5), (18, 0.3), (50, 0.15)):
        small = rng.standard_normal((cells, cells)).astype(np.float32)
        lum += amp * cv2.resize(small, (W, H), interpolation=cv2.INTER_CUBIC)
    lum /= max(float(lum.std()), 1e-6)
    theta = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    grad = ((xx / W - 0.5) * math.cos(theta) + (yy / H - 0.5) * math.sin(theta)) * 2
    base = rng.uniform(80, 170)
    value = base + spec.background_contrast * (0.6 * lum + 0.5 * rng.uniform(0.3, 1.0) * grad)
    hue = rng.uniform(0, 1)
    sat = rng.uniform(0, spec.background_saturation)
    tint = _hsv_to_rgb(hue, sat)  # per-channel factors around 1
    img = value[..., None] * tint[None, None, :]
    # a second, weaker noise field in another hue keeps it from looking like one gel
    small = rng.standard_normal((9, 9)).astype(np.float32)
    chroma = cv2.resize(small, (W, H), interpolation=cv2.INTER_CUBIC)
    img += chroma[..., None] * (_hsv_to_rgb(rng.uniform(0, 1), spec.background_saturation) - 1) * 40
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def _hsv_to_rgb(h: float, s: float) -> np.ndarray:
    """RGB factors (max 1 → scaled to mean 1) of a hue at saturation s and full value."""
    px = np.array([[[h * 180, s * 255, 255]]], np.float32).astype(np.uint8)
    rgb = cv2.cvtColor(px, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32) / 255
    return rgb / max(float(rgb.mean()), 1e-6)


def render_clip(spec: ClipSpec, scene: SynthScene | None = None):
    """Render a clip in memory.

    Returns (frames (n_frames, H, W, 3) uint8, audio (n_samples,) float32,
    boxes (n_frames, n_objects, 4) int32 visible pixel boxes in drawing order, -1 where
    an object is entirely outside the frame).
    """
    scene = scene or SynthScene(spec)
    n = spec.n_frames
    frames = np.empty((n, spec.height, spec.width, 3), np.uint8)
    boxes = np.full((n, len(spec.objects), 4), -1, np.int32)
    for i in range(n):
        frames[i] = scene.frame(i)
        for k, b in enumerate(scene.boxes(i)):
            if b is not None:
                boxes[i, k] = b
    audio = scene.audio(0, spec.n_samples)
    return frames, audio, boxes


def scene_from_config(cfg: SynthConfig | None = None, seed: int = 0, **kwargs) -> SynthScene:
    """A scene for a live synthetic source: ``sample_spec(cfg, default_rng(seed), **kwargs)``."""
    cfg = cfg or SynthConfig()
    return SynthScene(sample_spec(cfg, np.random.default_rng(seed), **kwargs))


# =========================================================================== annotations
def _norm(box, W: int, H: int) -> list[float]:
    x1, y1, x2, y2 = box
    return [round(x1 / W, 6), round(y1 / H, 6), round(x2 / W, 6), round(y2 / H, 6)]


def annotation_record(spec: ClipSpec, scene: SynthScene | None = None) -> dict:
    """The clip's annotations.json record (VGG-SS keys plus hearflow's extras)."""
    scene = scene or SynthScene(spec)
    i = spec.annotate_frame
    W, H = spec.width, spec.height
    boxes = scene.boxes(i)
    src = boxes[spec.source_index]
    objects = [
        {
            "class": o.cls,
            "bbox": None if b is None else _norm(b, W, H),
            "sounding": spec.negative is None and k == spec.source_index,
            "moving": o.motion.moves,
        }
        for k, (o, b) in enumerate(zip(spec.objects, boxes))
    ]
    return {
        "file": spec.clip_id,
        "class": spec.sound_class,
        "bbox": [_norm(src, W, H)] if spec.negative is None and src is not None else [],
        "frame_time": round(i / spec.fps, 6),
        "frame_index": i,
        "regime": spec.regime,
        "split": spec.split,
        "negative": spec.negative,
        "objects": objects,
        "sound_onset": round(spec.sound_onset, 6),
    }


def flickr_boxes(record: dict, cfg: SynthConfig, rng: np.random.Generator) -> list[list[int]]:
    """2–3 "annotators'" boxes (256×256 pixels): the true box, each coordinate jittered."""
    from hearflow.media.annotations import FLICKR_FRAME

    if not record["bbox"]:
        return []
    x1, y1, x2, y2 = (v * FLICKR_FRAME for v in record["bbox"][0])
    n = int(rng.integers(cfg.flickr_annotators[0], cfg.flickr_annotators[1] + 1))
    out = []
    for _ in range(n):
        j = rng.integers(-cfg.flickr_jitter, cfg.flickr_jitter + 1, 4)
        a = int(np.clip(round(x1) + j[0], 0, FLICKR_FRAME - 1))
        b = int(np.clip(round(y1) + j[1], 0, FLICKR_FRAME - 1))
        c = int(np.clip(round(x2) + j[2], a + 1, FLICKR_FRAME))
        d = int(np.clip(round(y2) + j[3], b + 1, FLICKR_FRAME))
        out.append([a, b, c, d])
    return out


# =========================================================================== dataset
def _init_worker():
    cv2.setNumThreads(1)  # the pool already uses every core


def _make_clip(task) -> tuple[dict, bool, int]:
    """Worker: sample, render and encode one clip (unless its mp4 exists); return its record."""
    from hearflow.media import annotations
    from hearflow.media.encode import write_clip

    cfg, seed, split, index, regime, out = task
    clip_id = f"{split}_{index:05d}"
    spec = sample_spec(cfg, clip_rng(seed, split, index), clip_id=clip_id, split=split, regime=regime)
    scene = SynthScene(spec)
    mp4 = Path(out) / "videos" / f"{clip_id}.mp4"
    written = False
    if not mp4.exists():
        frames, audio, _ = render_clip(spec, scene)
        part = mp4.with_name(f".{clip_id}.part.mp4")  # renamed when complete: resume-safe
        write_clip(
            part,
            frames,
            fps=cfg.fps,
            audio=audio,
            sample_rate=cfg.sample_rate,
            video_options={"preset": cfg.preset, "crf": cfg.crf},
            audio_bit_rate=cfg.audio_bit_rate,
            threads=1,
        )
        os.replace(part, mp4)
        written = True
    record = annotation_record(spec, scene)
    if split == "test":
        rng = np.random.default_rng([int(seed), _SPLIT_CODE[split], int(index), 99])
        annotations.write_flickr_xml(
            Path(out) / "Annotations" / f"{clip_id}.xml", clip_id, flickr_boxes(record, cfg, rng), record["class"]
        )
    return record, written, mp4.stat().st_size


def _check_out(out: Path, cfg: SynthConfig, seed: int) -> None:
    """Refuse a non-empty folder made with another config or seed (or not by synth)."""
    from hearflow import config as config_mod

    if out.exists() and not out.is_dir():
        raise HearflowError(f"{out} exists and is not a folder")
    if not out.exists() or not any(out.iterdir()):
        return
    yaml_path, summary_path = out / "synth.yaml", out / "summary.json"
    if not yaml_path.is_file() or not summary_path.is_file():
        raise HearflowError(
            f"{out} is not empty and was not made by 'hearflow synth' (no synth.yaml/summary.json); "
            "choose a new or empty folder"
        )
    try:
        old_cfg = config_mod.load(SynthConfig, yaml_path)
        old_seed = json.loads(summary_path.read_text()).get("seed")
    except (HearflowError, ValueError) as exc:
        raise HearflowError(f"{out}: cannot read the previous synth.yaml/summary.json ({exc})") from None
    if old_seed != seed:
        raise HearflowError(
            f"{out} was made with seed {old_seed}, not {seed}; use that seed to resume or choose another folder"
        )
    if old_cfg != cfg:
        a, b = config_mod.to_dict(old_cfg), config_mod.to_dict(cfg)
        diff = [k for k in a if a[k] != b.get(k)]
        raise HearflowError(
            f"{out} was made with a different config (differs in: {', '.join(diff)}); "
            "use the same config to resume or choose another folder"
        )


def _percentiles(values) -> dict:
    if not values:
        return {}
    v = np.asarray(values, np.float64)
    return {
        "p10": round(float(np.percentile(v, 10)), 4),
        "p50": round(float(np.percentile(v, 50)), 4),
        "p90": round(float(np.percentile(v, 90)), 4),
        "mean": round(float(v.mean()), 4),
    }


def generate(
    out,
    cfg: SynthConfig | None = None,
    train: int = 800,
    val: int = 80,
    test: int = 200,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
) -> dict:
    """Write a synthetic dataset to ``out`` and return its summary.

    out: output folder, created. Written: ``videos/<id>.mp4`` (H.264 + AAC),
    ``annotations.json`` (VGG-SS records plus frame_time, frame_index, regime, split,
    negative, objects, sound_onset), ``Annotations/<id>.xml`` (Flickr-style, test clips),
    ``splits/{train,val,test}.txt``, ``synth.yaml`` (cfg) and ``summary.json``.
    cfg: the SynthConfig (defaults when None).
    train / val / test: number of clips per split; ids are ``<split>_<index:05d>``.
    seed: clip ``index`` of ``split`` is drawn from (seed, split, index) alone, so the
    output does not depend on ``workers``, and a larger count extends a smaller one.
    workers: processes (default: CPU count); 1 runs in this process.
    progress: show a tqdm progress bar.

    A non-empty ``out`` made with the same config and seed is resumed (clips whose mp4
    exists are not rendered again; other clip counts extend or trim the splits, and
    videos beyond a smaller count stay on disk unlisted); one made with another config or
    seed, or not by this function, raises :class:`~hearflow.errors.HearflowError`.
    """
    cfg = cfg or SynthConfig()
    out = Path(out)
    counts = {"train": int(train), "val": int(val), "test": int(test)}
    if min(counts.values()) < 0:
        raise HearflowError(f"clip counts must be >= 0, got {counts}")
    _check_out(out, cfg, seed)
    from hearflow import config as config_mod
    from hearflow.media import annotations

    t_start = time.perf_counter()
    (out / "videos").mkdir(parents=True, exist_ok=True)
    (out / "splits").mkdir(exist_ok=True)
    # seed and config first, so an interrupted run can be resumed (and checked)
    (out / "summary.json").write_text(json.dumps({"seed": seed, "complete": False, "clips": counts}, indent=2) + "\n")
    config_mod.save(cfg, out / "synth.yaml")

    tasks = []
    for split, n in counts.items():
        regimes = regime_cycle(cfg.regime_weights, n) if cfg.regime_order == "cycle" else [None] * n
        tasks += [(cfg, seed, split, i, regimes[i], str(out)) for i in range(n)]

    workers = workers or os.cpu_count() or 1
    results = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(tasks), unit="clip", desc="synth", dynamic_ncols=True, disable=None)  # off when not a terminal
    try:
        if workers <= 1 or len(tasks) <= 1:
            for task in tasks:
                results.append(_make_clip(task))
                if bar is not None:
                    bar.update()
        else:
            # spawn, not fork: a child forked from a process whose OpenCV (or OpenMP) thread
            # pool is running waits forever on threads that were not copied
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(min(workers, len(tasks)), initializer=_init_worker) as pool:
                for res in pool.imap(_make_clip, tasks, chunksize=1):
                    results.append(res)
                    if bar is not None:
                        bar.update()
    finally:
        if bar is not None:
            bar.close()

    records = [r for r, _, _ in results]
    annotations.write_vggss(out / "annotations.json", records)
    for split in SPLITS:
        ids = [r["file"] for r in records if r["split"] == split]
        (out / "splits" / f"{split}.txt").write_text("".join(i + "\n" for i in ids))

    areas = [
        (b[2] - b[0]) * (b[3] - b[1]) for r in records if r["bbox"] for b in r["bbox"][:1]
    ]
    summary = {
        "seed": seed,
        "complete": True,
        "out": str(out),
        "clips": counts,
        "total": len(records),
        "written": sum(1 for _, w, _ in results if w),
        "skipped": sum(1 for _, w, _ in results if not w),
        "regimes": {s: dict(Counter(r["regime"] for r in records if r["split"] == s)) for s in SPLITS},
        "classes": dict(sorted(Counter(r["class"] for r in records if r["negative"] is None).items())),
        "negatives": dict(Counter(r["negative"] for r in records if r["negative"] is not None)),
        "box_area": _percentiles(areas),
        "objects_per_clip": _percentiles([len(r["objects"]) for r in records]),
        "video_bytes": int(sum(n for _, _, n in results)),
        "seconds": round(time.perf_counter() - t_start, 2),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def format_summary(summary: dict) -> str:
    """Human-readable lines describing a :func:`generate` summary."""
    c = summary["clips"]
    lines = [
        f"wrote {summary['out']}: {summary['total']} clips "
        f"(train {c['train']}, val {c['val']}, test {c['test']}; "
        f"{summary['written']} rendered, {summary['skipped']} already there) "
        f"in {summary['seconds']:.1f} s, {summary['video_bytes'] / 1e6:.1f} MB of video",
    ]
    for split in SPLITS:
        reg = summary["regimes"].get(split) or {}
        if reg:
            lines.append(f"  {split:5s} regimes: " + ", ".join(f"{k} {v}" for k, v in sorted(reg.items())))
    if summary["classes"]:
        lines.append("  sounding classes: " + ", ".join(f"{k} {v}" for k, v in summary["classes"].items()))
    if summary["negatives"]:
        lines.append("  negatives: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["negatives"].items())))
    a = summary.get("box_area") or {}
    if a:
        lines.append(
            f"  sounding box area (fraction of frame): p10 {a['p10']:.2f}, median {a['p50']:.2f}, "
            f"p90 {a['p90']:.2f}, mean {a['mean']:.2f}"
        )
    return "\n".join(lines)


__all__ = [
    "SynthConfig",
    "RegimeWeights",
    "ClassStyle",
    "CLASS_STYLES",
    "CLASS_NAMES",
    "REGIMES",
    "NEGATIVE_KINDS",
    "Motion",
    "ObjectSpec",
    "SoundSpec",
    "ClipSpec",
    "SynthScene",
    "sample_spec",
    "clip_rng",
    "regime_cycle",
    "render_clip",
    "annotation_record",
    "flickr_boxes",
    "scene_from_config",
    "shape_mask",
    "make_sprite",
    "visible_fraction",
    "visible_box",
    "hash_noise",
    "generate",
    "format_summary",
]
