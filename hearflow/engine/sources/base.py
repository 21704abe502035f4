"""What every engine source is: the :class:`Source` contract and the realtime pacing.

A source is opened (:meth:`Source.open`: fail early, with one line), run in its own
capture thread (:meth:`Source.run`) and closed (:meth:`Source.close`, idempotent). Like
a file object, ``with source:`` closes it on leaving the block. Video sources
(:class:`VideoSource`) hand FramePackets to ``ctx.mailbox`` and say their ``fps`` and
``size``; audio sources (:class:`AudioSource`) write through ``ctx.emit_audio`` at
``rate``. A video source can write its own audio too (``--audio same``, synth): then its
``rate`` is set and the engine uses it as both.
"""

from __future__ import annotations

import abc
import threading
import time

import numpy as np

from hearflow.media.decode.damage import DamageReport

from hearflow.engine.capture import CaptureContext

LIVE_RATE = 22050
"""Audio rate for live devices (and synth) when the config says ``sample_rate: native``."""


class Source(abc.ABC):
    """A capture source of the engine (video or audio)."""

    name: str = ""
    """Shown in logs: the spec it came from (a path, ``camera 0``, ``gst:…``)."""
    rate: int | None = None
    """Rate of the audio it writes (Hz); None when it writes none."""

    def open(self) -> None:
        """Acquire and check the device or stream; raise HearflowError (one line) when impossible."""

    def close(self) -> None:
        """Release what :meth:`open` acquired; safe to call more than once."""

    @abc.abstractmethod
    def run(self, ctx: CaptureContext) -> None:
        """The capture thread body: deliver until the end of the stream or ``ctx.stop``.

        It does not close ``ctx.mailbox``: the engine does, once the thread has ended.
        """

    @property
    def full_audio(self) -> tuple[np.ndarray, int] | None:
        """The whole audio track (wave, rate) when it exists before the run (offline
        files): the engine then takes centred windows from it. None otherwise."""
        return None

    def damage(self) -> list[DamageReport]:
        """What decoding skipped so far (damaged or truncated files); empty for live sources."""
        return []

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class VideoSource(Source):
    """A source of frames."""

    fps: float = 0.0
    """Nominal frame rate (0 until known)."""
    size: tuple[int, int] = (0, 0)
    """(width, height) of the captured frames ((0, 0) until known)."""


class AudioSource(Source):
    """A source of mono float32 audio at :attr:`rate`."""


def capture_time(ctx: CaptureContext, t_media: float, realtime: bool) -> float:
    """Engine-clock capture time of an item at source time ``t_media``: paced runs hand
    it out at ``clock0 + t_media``; unpaced ones when it was made (now)."""
    return ctx.clock0 + t_media if realtime else time.monotonic()


def pace(ctx: CaptureContext, t_media: float, realtime: bool) -> float | None:
    """Realtime: wait until the item at ``t_media`` is due, like a camera (nothing early,
    late items at once). Returns its t_capture, or None when ``ctx.stop`` was set meanwhile."""
    if realtime and not ctx.wait_until(ctx.clock0 + t_media):
        return None
    return capture_time(ctx, t_media, realtime)


class WholeTrack:
    """A file's whole audio track, decoded once on first use (thread-safe).

    path: the media file or URL.
    """

    def __init__(self, path: str):
        self.path = path
        self.report = DamageReport(path)
        """What decoding the track skipped (filled by the first get)."""
        self._wave: tuple[np.ndarray, int] | None = None
        self._lock = threading.Lock()

    def get(self, rate: int) -> tuple[np.ndarray, int]:
        """(wave, rate) of the track at ``rate`` (a separate pass over the audio stream only)."""
        with self._lock:
            if self._wave is None:
                from hearflow.media.decode import read_audio

                self._wave = read_audio(self.path, rate, report=self.report)
            return self._wave


__all__ = ["LIVE_RATE", "AudioSource", "Source", "VideoSource", "WholeTrack", "capture_time", "pace"]
