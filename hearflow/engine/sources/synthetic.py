"""``--video synth[:<seed>]``: a live synthetic scene (hearflow.media.synth) as the source.

t_media = frame index / fps (sample index / rate for its sound); t_capture as for files:
paced to clock0 + t_media in realtime runs, when it was rendered otherwise.
"""

from __future__ import annotations

import math
import time

from hearflow.engine.capture import CaptureContext, FrameBuilder
from hearflow.engine.sources.base import LIVE_RATE, VideoSource, capture_time, pace
from hearflow.errors import HearflowError
from hearflow.media.preprocess import PreprocessConfig


class SynthVideoSource(VideoSource):
    """A live synthetic scene (hearflow.media.synth), endless; also its audio if ``with_audio``.

    seed: which scene (``synth:<seed>``).
    cfg: preprocessing config; the scene's audio is rendered at cfg.rate_for(LIVE_RATE).
    realtime: frame i is shown at clock0 + i/fps (paced; when rendering falls more than a
        frame behind it skips ahead like a camera would); False: as fast as inference
        takes them.
    with_audio: write the scene's sound, up to each frame's time, before handing the frame
        out, so the ring always covers the window ending at the frame (same thread, so
        audio and video can never drift apart).
    synth_config: the SynthConfig of the scene (defaults: 256×256, 25 fps).
    """

    def __init__(self, seed: int, cfg: PreprocessConfig, realtime: bool = True, with_audio: bool = True,
                 synth_config=None):
        self.seed, self.cfg, self.realtime, self.with_audio = int(seed), cfg, realtime, with_audio
        self.synth_config = synth_config
        self.name = f"synth:{self.seed}"
        self.scene = None
        self.fps = 0.0
        self.size = (0, 0)
        self.rate: int | None = None

    def open(self) -> None:
        import dataclasses

        from hearflow.media.synth import SynthConfig, scene_from_config

        rate = self.cfg.rate_for(LIVE_RATE)
        base = self.synth_config or SynthConfig()
        try:
            scfg = dataclasses.replace(base, sample_rate=rate)
        except ValueError as exc:
            raise HearflowError(f"synth: {exc}") from None
        self.scene = scene_from_config(scfg, seed=self.seed)
        self.fps = float(self.scene.fps)
        self.size = (self.scene.width, self.scene.height)
        if self.with_audio:
            self.rate = rate

    def run(self, ctx: CaptureContext) -> None:
        scene, fps = self.scene, self.fps
        builder = FrameBuilder(self.cfg, ctx)
        i = 0
        audio_done = 0  # samples written so far (sample s is at s / rate)
        while not ctx.stop.is_set():
            if pace(ctx, i / fps, self.realtime) is None:
                return
            if self.realtime:
                due = math.floor((time.monotonic() - ctx.clock0) * fps + 1e-6)
                if due > i + 1:  # fell behind: skip to the current frame, no flow across the gap
                    i = due
                    builder.reset()
            t = i / fps
            if ctx.past_duration(t):
                return
            if self.with_audio:
                audio_done = self._write_audio(ctx, t, audio_done)
            rgb = scene.frame(i)
            if not ctx.deliver(builder.build(rgb, t, capture_time(ctx, t, self.realtime), fps)):
                return
            i += 1

    def _write_audio(self, ctx: CaptureContext, t: float, done: int) -> int:
        """Write the scene's sound from sample ``done`` up to time ``t``; the new ``done``."""
        rate = self.rate
        upto = int(round(t * rate))
        if upto > done:
            t_audio = done / rate
            ctx.emit_audio(self.scene.audio(done, upto - done), t_audio, capture_time(ctx, t_audio, self.realtime),
                           rate)
        return max(upto, done)


__all__ = ["SynthVideoSource"]
