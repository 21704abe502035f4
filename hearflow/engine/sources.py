"""Video and audio sources of the engine: spec parsing, opening, capture thread bodies.

``--video``: ``0``/``1``/… (camera index) · a file path or ``rtsp://``/``http(s)://`` URL
· ``gst:<pipeline ending in appsink>`` · ``synth[:<seed>]``.
``--audio``: ``same`` (the video's own track) · ``mic`` / ``mic:<device>`` · an audio
file · ``gst:<pipeline ending in appsink>`` · ``synth`` (with ``--video synth``) · ``none``.

:func:`open_sources` parses, validates and opens both; a failure raises a
:class:`~hearflow.errors.HearflowError` with one line saying what is wrong. Every source
has ``open()``, ``close()`` and ``run(ctx)`` — the capture thread body, returning at the
end of the stream or when ``ctx.stop`` is set (it does not close ``ctx.mailbox``: the
engine does, once the thread has ended). Video sources have ``fps`` and ``size``
(width, height); audio sources have ``rate``. When the video source also provides the
audio (``--audio same``, synth + synth), :func:`open_sources` returns the same object
twice and the engine starts one thread for it. Offline file audio is exposed whole as
``full_audio`` (wave, rate) so the engine can use centred windows; it is None otherwise.

Timestamps per source (t_capture on the engine clock, t_media on the source timeline):

* files (FileSource, AudioFileSource): t_media = PTS on the container clock; realtime:
  paced so t_capture = clock0 + t_media; offline: t_capture = when it was decoded.
* synth: t_media = frame index / fps (sample index / rate); t_capture as for files.
* camera, mic, GStreamer (realtime): t_capture = the device/pipeline capture time mapped
  to the engine clock, t_media = t_capture - clock0. Offline GStreamer: t_media = the
  buffer's running time.
"""

from __future__ import annotations

import math
import re
import threading
import time
from pathlib import Path

import numpy as np

# CaptureContext and CaptureCounters are re-exported: the engine imports them from here
from hearflow.engine.capture import CaptureContext, CaptureCounters, FrameBuilder
from hearflow.errors import HearflowError, MediaNotFound, NoAudioStream, NoVideoStream
from hearflow.media.preprocess import PreprocessConfig

LIVE_RATE = 22050
"""Audio rate for live devices (and synth) when the config says ``sample_rate: native``."""
AUDIO_PIECE = 0.05
"""Paced file audio is written in pieces of at most this many seconds (mic-like blocks)."""
URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
"""Network streams opened with PyAV like files."""

_VIDEO_HELP = ("use a camera index (0, 1, ...), a video file, an rtsp:// or http(s):// URL, "
               "gst:<pipeline ending in appsink> or synth")
_AUDIO_HELP = "use same, mic, mic:<device>, an audio file, gst:<pipeline ending in appsink>, synth or none"


# ------------------------------------------------------------------------- spec parsing
def _is_url(spec: str) -> bool:
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", spec)
    return bool(m) and m.group(1).lower() in URL_SCHEMES


def _looks_like_scheme(spec: str) -> bool:
    """'foo:bar' or 'foo://bar' that is not a path on disk (Windows drive letters aside)."""
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:", spec)) and not Path(spec).exists()


def parse_video_spec(spec: str) -> tuple[str, object]:
    """``--video`` → (kind, argument): ('camera', index), ('file', path or URL),
    ('gst', pipeline) or ('synth', seed). Raises HearflowError for what is none of these."""
    spec = str(spec).strip()
    if not spec:
        raise HearflowError(f"empty --video: {_VIDEO_HELP}")
    if spec.isdigit():
        return "camera", int(spec)
    if spec.startswith("gst:"):
        pipeline = spec[4:].strip()
        if not pipeline:
            raise HearflowError("--video gst: needs a pipeline ending in appsink")
        return "gst", pipeline
    if spec == "synth" or spec.startswith("synth:"):
        return "synth", _synth_seed(spec)
    if _is_url(spec):
        return "file", spec
    if _looks_like_scheme(spec):
        raise HearflowError(f"unknown video source {spec!r}: {_VIDEO_HELP}")
    return "file", spec


def parse_audio_spec(spec: str) -> tuple[str, object]:
    """``--audio`` → (kind, argument): ('same', None), ('none', None), ('mic', device or
    None), ('file', path), ('gst', pipeline) or ('synth', None)."""
    spec = str(spec).strip()
    if spec in ("same", "none", "synth"):
        return spec, None
    if spec == "mic":
        return "mic", None
    if spec.startswith("mic:"):
        device = spec[4:].strip()
        if not device:
            raise HearflowError("--audio mic: needs a device index or name (or plain 'mic' for the default)")
        return "mic", int(device) if device.isdigit() else device
    if spec.startswith("gst:"):
        pipeline = spec[4:].strip()
        if not pipeline:
            raise HearflowError("--audio gst: needs a pipeline ending in appsink")
        return "gst", pipeline
    if not spec or spec.isdigit() or _looks_like_scheme(spec) and not _is_url(spec):
        raise HearflowError(f"unknown audio source {spec!r}: {_AUDIO_HELP}")
    return "file", spec


def _synth_seed(spec: str) -> int:
    arg = spec[len("synth:"):].strip() if spec.startswith("synth:") else ""
    if not arg:
        return 0
    try:
        return int(arg)
    except ValueError:
        raise HearflowError(f"--video {spec}: expected synth or synth:<integer seed>") from None


def _check_file(path: str, what: str) -> None:
    """A clear one-line error for a missing local file (URLs are checked by opening them)."""
    if _is_url(path):
        return
    p = Path(path)
    if not p.exists():
        raise MediaNotFound(path, f"no such file (--{what}: {_VIDEO_HELP if what == 'video' else _AUDIO_HELP})")
    if p.is_dir():
        raise MediaNotFound(path, "is a directory, not a media file")


# --------------------------------------------------------------------------- file video
class FileSource:
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
        self._full = None
        self._full_lock = threading.Lock()

    def open(self) -> None:
        from hearflow.media.decode import probe

        _check_file(self.path, "video")
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

    def close(self) -> None:
        pass  # the container is opened and closed inside run()

    @property
    def full_audio(self) -> tuple[np.ndarray, int] | None:
        """The whole audio track (wave, rate) for offline runs with audio; else None.
        Decoded on first use (a separate pass over the audio stream only)."""
        if self.realtime or not self.with_audio:
            return None
        with self._full_lock:
            if self._full is None:
                from hearflow.media.decode import read_audio

                self._full = read_audio(self.path, self.rate)
            return self._full

    def run(self, ctx: CaptureContext) -> None:
        from hearflow.media.decode import AudioBlock, iter_media

        builder = FrameBuilder(self.cfg)
        rate = self.rate
        for item in iter_media(self.path, rate, video=True, audio=self.with_audio):
            t = item.t
            if ctx.stop.is_set() or ctx.past_duration(t):
                return
            if self.realtime:
                # like a camera: nothing is handed out before its time; late items go at once
                if not ctx.wait_until(ctx.clock0 + t):
                    return
                t_capture = ctx.clock0 + t
            else:
                t_capture = time.monotonic()
            if isinstance(item, AudioBlock):
                ctx.emit_audio(item.samples, t, t_capture, rate)
            elif not ctx.deliver(builder.build(item.rgb, t, t_capture, self.fps)):
                return


# --------------------------------------------------------------------------- file audio
class AudioFileSource:
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
        self._full = None
        self._full_lock = threading.Lock()

    def open(self) -> None:
        from hearflow.media.decode import probe

        _check_file(self.path, "audio")
        info = probe(self.path, decode=False)
        if info.audio is None:
            raise NoAudioStream(self.path, "no audio stream (--audio needs a file with sound)")
        self.rate = self.cfg.rate_for(info.audio.sample_rate)

    def close(self) -> None:
        pass

    @property
    def full_audio(self) -> tuple[np.ndarray, int] | None:
        """The whole track (wave, rate) in offline runs; None in realtime runs."""
        if self.realtime:
            return None
        with self._full_lock:
            if self._full is None:
                from hearflow.media.decode import read_audio

                self._full = read_audio(self.path, self.rate)
            return self._full

    def run(self, ctx: CaptureContext) -> None:
        from hearflow.media.decode import iter_media

        rate = self.rate
        piece = max(1, int(AUDIO_PIECE * rate))
        for block in iter_media(self.path, rate, video=False, audio=True):
            for start in range(0, len(block.samples), piece):
                t = block.t + start / rate
                if ctx.stop.is_set() or ctx.past_duration(t):
                    return
                if self.realtime:
                    if not ctx.wait_until(ctx.clock0 + t):
                        return
                    t_capture = ctx.clock0 + t
                else:
                    t_capture = time.monotonic()
                ctx.emit_audio(block.samples[start : start + piece], t, t_capture, rate)


# --------------------------------------------------------------------------- synth
class SynthVideoSource:
    """A live synthetic scene (hearflow.media.synth), endless; also its audio if ``with_audio``.

    seed: which scene (``synth:<seed>``).
    cfg: preprocessing config; the scene's audio is rendered at cfg.rate_for(22050).
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
        self.full_audio = None  # endless: there is no whole track

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

    def close(self) -> None:
        pass

    def run(self, ctx: CaptureContext) -> None:
        scene, fps, rate = self.scene, self.fps, self.rate
        builder = FrameBuilder(self.cfg)
        i = 0
        audio_done = 0  # samples written so far (sample s is at s / rate)
        while not ctx.stop.is_set():
            if self.realtime:
                if not ctx.wait_until(ctx.clock0 + i / fps):
                    return
                due = math.floor((time.monotonic() - ctx.clock0) * fps + 1e-6)
                if due > i + 1:  # fell behind: skip to the current frame, no flow across the gap
                    i = due
                    builder.reset()
            t = i / fps
            if ctx.past_duration(t):
                return
            if self.with_audio:
                upto = int(round(t * rate))
                if upto > audio_done:
                    t_audio = audio_done / rate
                    t_cap = ctx.clock0 + t_audio if self.realtime else time.monotonic()
                    ctx.emit_audio(scene.audio(audio_done, upto - audio_done), t_audio, t_cap, rate)
                    audio_done = upto
            rgb = scene.frame(i)
            t_capture = ctx.clock0 + t if self.realtime else time.monotonic()
            if not ctx.deliver(builder.build(rgb, t, t_capture, fps)):
                return
            i += 1


# --------------------------------------------------------------------------- opening
def open_sources(video_spec: str, audio_spec: str, cfg: PreprocessConfig, realtime: bool = True,
                 *, camera_factory=None):
    """Parse, validate and open the sources: returns (video_source, audio_source or None).

    video_spec / audio_spec: the ``--video`` / ``--audio`` strings (module docstring).
    cfg: the model's PreprocessConfig (frame size, flow, audio rate).
    realtime: pace sources like live devices (True) or process files losslessly as fast
        as possible (False; needs a file, gst or synth video and no microphone).
    camera_factory: the cv2.VideoCapture-like constructor CameraSource uses (tests).

    When the video source provides the audio too (``same``; synth + synth) the same
    object is returned twice. Raises HearflowError (one line) on any problem; nothing
    stays open then.
    """
    vkind, varg = parse_video_spec(video_spec)
    akind, aarg = parse_audio_spec(audio_spec)

    if not realtime:
        for kind, arg, flag in ((vkind, varg, "video"), (akind, aarg, "audio")):
            if kind in ("camera", "mic"):
                raise HearflowError(
                    f"--no-realtime processes files as fast as possible, but --{flag} "
                    f"{video_spec if flag == 'video' else audio_spec} is a live {kind}: use --realtime"
                )
    if akind == "same" and vkind not in ("file", "synth"):
        where = f"camera {varg}" if vkind == "camera" else "a gst: pipeline"
        raise HearflowError(
            f"--audio same needs a video file or URL with sound, but the video is {where}: "
            "use --audio mic, gst:<pipeline>, an audio file or none"
        )
    if akind == "synth" and vkind != "synth":
        raise HearflowError("--audio synth is the synthetic scene's own sound: it needs --video synth")

    embedded = akind in ("same", "synth")  # the video source writes the audio itself
    if vkind == "camera":
        from hearflow.engine.devices import CameraSource

        video = CameraSource(varg, cfg, capture_factory=camera_factory)
    elif vkind == "gst":
        from hearflow.engine.gst import GstVideoSource

        video = GstVideoSource(varg, cfg, realtime)
    elif vkind == "synth":
        video = SynthVideoSource(varg, cfg, realtime, with_audio=embedded)
    else:
        video = FileSource(varg, cfg, realtime, with_audio=embedded)

    audio = None
    if akind == "mic":
        from hearflow.engine.devices import MicSource

        audio = MicSource(aarg, cfg)
    elif akind == "gst":
        from hearflow.engine.gst import GstAudioSource

        audio = GstAudioSource(aarg, cfg, realtime)
    elif akind == "file":
        audio = AudioFileSource(aarg, cfg, realtime)

    opened = []
    try:
        video.open()
        opened.append(video)
        if audio is not None:
            audio.open()
            opened.append(audio)
    except BaseException:
        for source in opened:
            source.close()
        raise
    if embedded:
        audio = video
    return video, audio


__all__ = [
    "AudioFileSource",
    "CaptureContext",
    "CaptureCounters",
    "FileSource",
    "FrameBuilder",
    "SynthVideoSource",
    "open_sources",
    "parse_audio_spec",
    "parse_video_spec",
]
