"""What every capture thread shares: the CaptureContext and the FramePacket builder.

A capture thread (one per source, see :mod:`hearflow.engine.sources`) gets a
:class:`CaptureContext` and runs ``source.run(ctx)`` until the end of the stream or
``ctx.stop``. Video threads turn each captured frame into a FramePacket with a
:class:`FrameBuilder` and hand it to ``ctx.mailbox``; audio goes through
:meth:`CaptureContext.emit_audio` into ``ctx.ring`` and the audio taps.

Clock conventions (all sources): ``t_capture`` is on the engine clock
(``time.monotonic()``); ``t_media`` is the source timeline — file PTS for files, and
``t_capture - clock0`` for live devices. In realtime runs files are paced so that
``t_capture = clock0 + t_media`` as well, so every source shares one timeline and the
inference thread can take any source's audio window by a frame's ``t_media``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from hearflow.engine.log import stderr_log
from hearflow.engine.mailbox import Mailbox
from hearflow.engine.packets import AudioChunk, FramePacket
from hearflow.engine.ring import AudioRing
from hearflow.media.flow import FlowEstimator
from hearflow.media.frames import resize_frame
from hearflow.media.preprocess import PreprocessConfig

class CaptureCounters:
    """What the capture threads did, for the status line and the run summary.

    Each plain field has a single writer (frames: the video thread; audio_samples: the
    audio thread or callback), so ``+=`` needs no lock; :meth:`add` (locked) is for the
    rare events any thread may count. The audio callback never calls :meth:`add`.
    """

    def __init__(self):
        self.frames = 0
        """Video frames captured (before any drop)."""
        self.audio_samples = 0
        """Audio samples written to the ring."""
        self.errors = 0
        """Failures survived: lost devices, failing taps, callback errors."""
        self.reconnects = 0
        """Devices that came back after being lost."""
        self.overflows = 0
        """Audio device overflows reported (samples lost by the driver)."""
        self.tap_errors = 0
        """Audio tap calls that raised (written only by the thread that feeds the taps)."""
        self._lock = threading.Lock()

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def as_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}


@dataclass
class CaptureContext:
    """Everything a capture thread needs; built by the engine, shared by its capture threads."""

    clock0: float
    """Engine start on the monotonic clock; live t_media = t_capture - clock0, and realtime
    file pacing starts here (so start the capture threads right after setting it)."""
    preprocess: PreprocessConfig
    """The model's preprocessing: frame size and filter, flow provider and resolution."""
    mailbox: Mailbox
    """Where video threads put FramePackets (lossless when not realtime)."""
    ring: AudioRing | None = None
    """Where audio goes; None when the run has no audio source."""
    audio_taps: list[Callable[[AudioChunk], None]] = field(default_factory=list)
    """Called with every audio block (e.g. the video sink muxing the original sound). In
    realtime runs they are called from audio callbacks, so they must never block."""
    stop: threading.Event = field(default_factory=threading.Event)
    """Set by the engine to end every capture thread (Ctrl-C, --duration, errors)."""
    realtime: bool = True
    """Pace files like a camera (True) or process every frame as fast as possible (False)."""
    counters: CaptureCounters = field(default_factory=CaptureCounters)
    log: Callable[[str], None] = stderr_log
    """Thread-safe one-line warning printer (never called from an audio callback)."""
    duration: float | None = None
    """Sources stop at this source time (t_media, seconds); None: end of stream or stop."""
    frames_on_host: bool = True
    """Resize each frame in the capture thread (False: the inference thread does it on a device)."""
    gray_on_host: bool = True
    """Make each frame's flow grayscale in the capture thread (False: a device flow makes its own)."""

    def past_duration(self, t_media: float) -> bool:
        return self.duration is not None and t_media >= self.duration

    def wait_until(self, t_engine: float) -> bool:
        """Sleep until engine time t_engine; False if ``stop`` was set meanwhile."""
        delay = t_engine - time.monotonic()
        if delay > 0:
            return not self.stop.wait(delay)
        return not self.stop.is_set()

    def deliver(self, packet: FramePacket) -> bool:
        """Hand a frame to inference; False when the run is over (mailbox closed, stop set).

        Live mailboxes return at once (latest wins); a lossless one waits for inference
        to take the previous frame, checking ``stop`` every 0.1 s.
        """
        self.counters.frames += 1
        while not self.stop.is_set():
            if self.mailbox.put(packet, timeout=0.1):
                return True
            if self.mailbox.closed:
                return False
        return False

    def emit_audio(self, samples: np.ndarray, t_media: float | None, t_capture: float | None, rate: int) -> None:
        """Write an audio block to the ring and the taps; safe in an audio callback.

        samples: (n,) float32 mono at ``rate`` (copied, so a reused device buffer is fine).
        t_media: source time of its first sample; None = right after the previous block.
        t_capture: engine-clock time of its first sample; None = clock0 + t_media.
        Tap failures are counted, never raised (a broken sink must not stop capture).
        """
        ring = self.ring
        if ring is not None:
            if t_media is None:
                t_media = ring.end_time
            ring.write(samples, t_media)
        elif t_media is None:
            t_media = 0.0
        self.counters.audio_samples += len(samples)
        if self.audio_taps:
            t_cap = self.clock0 + t_media if t_capture is None else t_capture
            chunk = AudioChunk(t_cap, t_media, np.array(samples, dtype=np.float32), int(rate))
            for tap in self.audio_taps:
                try:
                    tap(chunk)
                except Exception:  # noqa: BLE001 - see docstring
                    self.counters.tap_errors += 1


class FrameBuilder:
    """Captured RGB frames → FramePackets: one resize, one grayscale, prev_gray chaining.

    cfg: the preprocessing config (image size/filter, flow provider and resolution).
    One per capture thread (the FlowEstimator inside is not thread-safe). prev_gray is the
    previous *captured* frame's, so however slow inference is, the flow it computes spans
    one source frame interval (1/fps).
    """

    def __init__(self, cfg: PreprocessConfig, ctx: CaptureContext | None = None):
        self.cfg = cfg
        self.on_host = ctx.frames_on_host if ctx is not None else True
        gray_on_host = ctx.gray_on_host if ctx is not None else True
        self.estimator = FlowEstimator(cfg) if cfg.uses_flow and gray_on_host else None
        self.keep_rgb = cfg.uses_flow and not gray_on_host  # a device flow uploads the previous frame itself
        self.seq = 0
        self.prev_gray = None
        self.prev_rgb = None

    def reset(self) -> None:
        """Forget the previous frame (after a gap: device reconnect, skipped frames), so
        no flow is computed across the discontinuity."""
        self.prev_gray = self.prev_rgb = None

    def build(self, rgb: np.ndarray, t_media: float, t_capture: float, fps: float) -> FramePacket:
        """The FramePacket for one captured H×W×3 uint8 RGB frame."""
        frame = resize_frame(rgb, self.cfg) if self.on_host else None
        gray = None
        if self.estimator is not None:
            # model resolution: the already resized frame (no second resize); native: the source frame
            model = self.cfg.flow_resolution == "model"
            gray = self.estimator.gray((frame if frame is not None else rgb) if model else rgb)
        packet = FramePacket(
            seq=self.seq, t_capture=t_capture, t_media=t_media, rgb=rgb, frame=frame,
            gray=gray, prev_gray=self.prev_gray, fps=float(fps), prev_rgb=self.prev_rgb,
        )
        self.seq += 1
        self.prev_gray = gray
        self.prev_rgb = rgb if self.keep_rgb else None
        return packet


class Backoff:
    """Exponential retry delays for lost devices: first, 2·first, … capped at ``limit``."""

    def __init__(self, first: float = 0.5, limit: float = 8.0):
        self.first, self.limit = first, limit
        self.delay = first

    def next(self) -> float:
        d = self.delay
        self.delay = min(self.delay * 2, self.limit)
        return d

    def reset(self) -> None:
        self.delay = self.first
