"""What flows between the engine's threads: captured frames, audio blocks, results.

Every timestamp is on one monotonic engine clock (``time.monotonic()`` seconds), except
``t_media``, the position in the source's own timeline (file PTS, or seconds since the
source started for live devices).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass
class FramePacket:
    """One captured video frame, as a capture thread hands it to inference."""

    seq: int
    """Capture sequence number (0, 1, 2, ... per source; gaps never happen at capture)."""
    t_capture: float
    """Capture time on the engine clock."""
    t_media: float
    """Time in the source's timeline (PTS for files); the audio window is taken by this."""
    rgb: np.ndarray
    """The frame as captured, H×W×3 uint8 RGB (for overlays and the annotated video)."""
    frame: np.ndarray | None
    """The frame resized to the model size (media.frames.resize_frame), S×S×3 uint8; None
    when the inference thread builds its inputs on a device from ``rgb``."""
    gray: np.ndarray | None
    """This frame's grayscale at flow resolution (FlowEstimator.gray), None without flow."""
    prev_gray: np.ndarray | None
    """The previous *captured* frame's grayscale (not the previous processed one), so a slow
    consumer never changes the flow's time step; None for the first frame."""
    fps: float
    """Source frame rate, for the flow's scaling to displacement per 1/25 s."""
    prev_rgb: np.ndarray | None = None
    """The previous *captured* frame (a reference, not a copy) when the flow is computed on a
    device: the inference thread uploads it only if it skipped that frame."""


@dataclass
class AudioChunk:
    """A block of mono float32 audio at the engine's audio rate."""

    t_capture: float
    """Engine-clock time of the block's first sample."""
    t_media: float
    """Source-timeline time of the block's first sample."""
    samples: np.ndarray
    rate: int


@dataclass
class Result:
    """What the engine produces per processed frame (sinks serialise this)."""

    seq: int
    """Processed-frame sequence number (0, 1, 2, ...)."""
    capture_seq: int
    """The FramePacket.seq it came from (gaps = frames dropped before inference)."""
    t_capture: float
    t_media: float
    t_result: float
    """Engine-clock time the map was ready."""
    map: np.ndarray
    """Raw similarity map, m×n float32 cosine values in [-1, 1]."""
    peak: tuple[float, float]
    """Map peak as normalised (x, y) in [0, 1] of the frame (cell centres)."""
    peak_value: float
    confidence: float
    """'Is something on screen sounding?' in [0, 1]: audio energy gate × similarity."""
    audio_rms_db: float
    """Level of the audio window (dBFS), what the energy gate looked at."""
    warming_up: bool
    """Fewer seconds of audio than the window needs exist yet (the window was padded)."""
    frame_size: tuple[int, int]
    """(width, height) of the captured frame."""
    rgb: np.ndarray | None = None
    """The captured frame, for sinks that draw (overlay, video); None for others."""
    direction: object | None = None
    """hearflow.runtime.geometry.Direction of ``peak`` (None without a camera model)."""
    peaks: list = field(default_factory=list)
    """Up to K tracked local maxima (hearflow.runtime.peaks.Peak, strongest first, each with
    its track_id and, with a camera model, its direction)."""
    camera: object | None = None
    """The hearflow.runtime.geometry.CameraModel the directions came from (None without one)."""
    extra: dict = field(default_factory=dict)


def finite(x) -> float | None:
    """A float, or None for NaN/inf (which JSON cannot hold): how Result fields are serialised."""
    x = float(x)
    return x if math.isfinite(x) else None
