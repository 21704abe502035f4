"""Media files and network streams (anything ffmpeg opens) as engine sources.

t_media is the PTS on the container clock. Realtime: paced so t_capture = clock0 +
t_media (frames inference is too slow for are dropped by the latest-wins mailbox);
offline: every frame as fast as inference takes them, t_capture = when it was decoded,
and the whole audio track is available as ``full_audio`` for centred windows.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from hearflow.engine.capture import CaptureContext, FrameBuilder
from hearflow.engine.sources.base import AudioSource, VideoSource, WholeTrack, pace
from hearflow.errors import MediaNotFound, NoAudioStream, NoVideoStream
from hearflow.media.decode.damage import DamageReport
from hearflow.media.preprocess import PreprocessConfig

AUDIO_PIECE = 0.05
"""Paced file audio is written in pieces of at most this many seconds (mic-like blocks)."""
URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
"""Network streams opened with PyAV like files."""

VIDEO_HELP = ("use a camera index (0, 1, ...), a video file, an rtsp:// or http(s):// URL, "
              "gst:<pipeline ending in appsink> or synth")
AUDIO_HELP = "use same, mic, mic:<device>, an audio file, gst:<pipeline ending in appsink>, synth or none"


def is_url(spec: str) -> bool:
    """True for a network stream URL PyAV opens (rtsp://, http://, ...)."""
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", spec)
    return bool(m) and m.group(1).lower() in URL_SCHEMES


def check_file(path: str, what: str) -> None:
    """A clear one-line error for a missing or unreadable local file (URLs are checked by opening them)."""
    if is_url(path):
        return
    p = Path(path)
    if not p.exists():
        raise MediaNotFound(path, f"no such file (--{what}: {VIDEO_HELP if what == 'video' else AUDIO_HELP})")
    if p.is_dir():
        raise MediaNotFound(path, "is a directory, not a media file")
    if not os.access(p, os.R_OK):
        raise MediaNotFound(path, "cannot be read (permission denied)")


class FileSource(VideoSource):
    """A video file or network stream, with its own audio track when ``with_audio``.

    path: file path or URL (anything ffmpeg opens).
    cfg: preprocessing config (frames; the audio rate via cfg.rate_for).
    realtime: True paces frames to their timestamps from ctx.clock0 (frames inference is
        too slow for are dropped by the latest-wins mailbox); False decodes every frame
        as fast as inference takes them (lossless mailbox).
    with_audio: also decode the audio track (``--audio same``) into ctx.ring / taps;
        video and audio come from one demuxer, interleaved in time order.
    """

    def __init__(self, path: str, cfg: PreprocessConfig, realtime: bool = True, with_audio: bool = False):
        self.path, self.cfg, self.realtime, self.with_audio = str(path), cfg, realtime, with_audio
        self.name = self.path
        self.fps = 0.0
        self.size = (0, 0)
        self.rate: int | None = None
        self._track = WholeTrack(self.path)
        self._report = DamageReport(self.path)

    def open(self) -> None:
        from hearflow.media.decode import probe

        check_file(self.path, "video")
        info = probe(self.path, decode=False)
        if info.video is None:
            raise NoVideoStream(self.path, "no video stream (--video needs one)")
        if self.with_audio and info.audio is None:
            raise NoAudioStream(
                self.path, "no audio stream, so --audio same has nothing to use (try --audio none, mic or an audio file)"
            )
        self.fps = info.video.fps or 25.0
        self.size = (info.video.width, info.video.height)
        if self.with_audio:
            self.rate = self.cfg.rate_for(info.audio.sample_rate)

    # the container is opened and closed inside run(): close() has nothing to do

    @property
    def full_audio(self) -> tuple[np.ndarray, int] | None:
        """The whole audio track (wave, rate) for offline runs with audio; else None.
        Decoded on first use (a separate pass over the audio stream only)."""
        if self.realtime or not self.with_audio:
            return None
        return self._track.get(self.rate)

    def damage(self) -> list[DamageReport]:
        # the stream pass decodes the audio too, so the whole-track pass can only repeat it
        return [next(r for r in (self._report, self._track.report) if r.damaged)] if self._damaged() else []

    def _damaged(self) -> bool:
        return self._report.damaged or self._track.report.damaged

    def run(self, ctx: CaptureContext) -> None:
        from hearflow.media.decode import AudioBlock, iter_media

        builder = FrameBuilder(self.cfg, ctx)
        rate = self.rate
        # damage is skipped as ffmpeg does; what was lost goes into the run's summary
        for item in iter_media(self.path, rate, video=True, audio=self.with_audio, report=self._report):
            t = item.t
            if ctx.stop.is_set() or ctx.past_duration(t):
                return
            t_capture = pace(ctx, t, self.realtime)
            if t_capture is None:
                return
            if isinstance(item, AudioBlock):
                ctx.emit_audio(item.samples, t, t_capture, rate)
            elif not ctx.deliver(builder.build(item.rgb, t, t_capture, self.fps)):
                return


class AudioFileSource(AudioSource):
    """The audio of a media file (wav, mp3, or a video's track) as the engine's audio.

    path: file path or URL.
    cfg: preprocessing config (the rate: cfg.rate_for the file's own rate).
    realtime: True writes each piece when its time comes (t_capture = clock0 + t); False
        writes as fast as it decodes (the engine then uses :attr:`full_audio`, since a
        ring cannot hold a whole file).
    """

    def __init__(self, path: str, cfg: PreprocessConfig, realtime: bool = True):
        self.path, self.cfg, self.realtime = str(path), cfg, realtime
        self.name = self.path
        self.rate: int | None = None
        self._track = WholeTrack(self.path)
        self._report = DamageReport(self.path)

    def open(self) -> None:
        from hearflow.media.decode import probe

        check_file(self.path, "audio")
        info = probe(self.path, decode=False)
        if info.audio is None:
            raise NoAudioStream(self.path, "no audio stream (--audio needs a file with sound)")
        self.rate = self.cfg.rate_for(info.audio.sample_rate)

    @property
    def full_audio(self) -> tuple[np.ndarray, int] | None:
        """The whole track (wave, rate) in offline runs; None in realtime runs."""
        if self.realtime:
            return None
        return self._track.get(self.rate)

    def damage(self) -> list[DamageReport]:
        # the stream pass decodes the audio too, so the whole-track pass can only repeat it
        return [next(r for r in (self._report, self._track.report) if r.damaged)] if self._damaged() else []

    def _damaged(self) -> bool:
        return self._report.damaged or self._track.report.damaged

    def run(self, ctx: CaptureContext) -> None:
        from hearflow.media.decode import iter_media

        rate = self.rate
        piece = max(1, int(AUDIO_PIECE * rate))
        for block in iter_media(self.path, rate, video=False, audio=True, report=self._report):
            for start in range(0, len(block.samples), piece):
                t = block.t + start / rate
                if ctx.stop.is_set() or ctx.past_duration(t):
                    return
                t_capture = pace(ctx, t, self.realtime)
                if t_capture is None:
                    return
                ctx.emit_audio(block.samples[start : start + piece], t, t_capture, rate)


__all__ = ["AUDIO_PIECE", "URL_SCHEMES", "AudioFileSource", "FileSource", "check_file", "is_url"]
