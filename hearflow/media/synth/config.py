"""What ``hearflow synth`` can vary: the object classes, the motion regimes and :class:`SynthConfig`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

REGIMES = (
    "source_moves",
    "all_move",
    "distractor_moves",
    "static",
    "twins_source_moves",
    "twins_distractor_moves",
    "twins_all_move",
)
"""Motion regimes: which objects move in a clip. The ``twins_*`` regimes show 2 or more
identical objects (one class, one look) of which one sounds, so appearance cannot
decide which: only motion (and its timing against the sound) can."""
TWINS_REGIMES = tuple(r for r in REGIMES if r.startswith("twins_"))

NEGATIVE_KINDS = ("silence", "noise", "offscreen")
"""Negative clips: near-silence, broadband noise, or the sound of a class not on screen."""

SPLITS = ("train", "val", "test")
SPLIT_CODE = {"train": 0, "val": 1, "test": 2}
"""Each split's number in the seed of its clips (see ``sampling.clip_rng``)."""


@dataclass(frozen=True)
class ClassStyle:
    """How one object class looks and sounds (the nominal values; clips jitter them).

    name: class name written to the annotations.
    shape: circle, square, triangle, star, diamond, hexagon, cross or ring.
    texture: stripes, dots, checker, radial, rings or solid.
    colour / colour2: main and pattern colour (RGB).
    sound: hum, buzz, drum, chirp, bell, tremolo, clicks or whistle (see ``sounds.sound_signal``).
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
    twins_source_moves: float = 0.0
    """Identical objects; the sounding twin moves, the other twins are static."""
    twins_distractor_moves: float = 0.0
    """Identical objects; the sounding twin is static, one silent twin moves."""
    twins_all_move: float = 0.0
    """Identical objects, all moving (bouncing) with a speed that swells and ebbs; the
    sounding twin's speed follows its sound's loudness envelope, the others' have
    envelopes of their own (another rate and phase)."""

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
    twin_envelope_hz: tuple[float, float] = (0.3, 0.8)
    """twins_all_move: range of the rate (Hz) of each twin's speed envelope (and of the
    sound's loudness envelope, which is the sounding twin's)."""
    twin_envelope_floor: float = 0.1
    """twins_all_move: the envelope's low point (fraction of the top speed / loudness)."""

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
        if not 0 < self.twin_envelope_hz[0] <= self.twin_envelope_hz[1] or not 0 <= self.twin_envelope_floor < 1:
            raise ValueError("twin_envelope_hz must be a range 0 < lo <= hi and twin_envelope_floor in [0, 1)")
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
