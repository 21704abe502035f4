"""``--video`` / ``--audio``: parsing the specs and opening the sources they name.

``--video``: ``0``/``1``/… (camera index) · a file path or ``rtsp://``/``http(s)://`` URL
· ``gst:<pipeline ending in appsink>`` · ``synth[:<seed>]``.
``--audio``: ``same`` (the video's own track) · ``mic`` / ``mic:<device>`` · an audio
file · ``gst:<pipeline ending in appsink>`` · ``synth`` (with ``--video synth``) · ``none``.

:func:`open_sources` parses, validates and opens both; a failure raises a
:class:`~hearflow.errors.HearflowError` with one line saying what is wrong. When the
video source also provides the audio (``--audio same``, synth + synth), it returns the
same object twice and the engine starts one thread for it.

Timestamps per source (t_capture on the engine clock, t_media on the source timeline):

* files (FileSource, AudioFileSource): t_media = PTS on the container clock; realtime:
  paced so t_capture = clock0 + t_media; offline: t_capture = when it was decoded.
* synth: t_media = frame index / fps (sample index / rate); t_capture as for files.
* camera, mic, GStreamer (realtime): t_capture = the device/pipeline capture time mapped
  to the engine clock, t_media = t_capture - clock0. Offline GStreamer: t_media = the
  buffer's running time.
"""

from __future__ import annotations

import re
from pathlib import Path

from hearflow.engine.sources.base import AudioSource, Source, VideoSource
from hearflow.engine.sources.camera import CameraSource
from hearflow.engine.sources.file import AUDIO_HELP, VIDEO_HELP, AudioFileSource, FileSource, check_file, is_url
from hearflow.engine.sources.gstreamer import GstAudioSource, GstVideoSource
from hearflow.engine.sources.microphone import MicSource
from hearflow.engine.sources.synthetic import SynthVideoSource
from hearflow.errors import HearflowError
from hearflow.media.preprocess import PreprocessConfig


# ------------------------------------------------------------------------- spec parsing
def _looks_like_scheme(spec: str) -> bool:
    """'foo:bar' or 'foo://bar' that is not a path on disk (Windows drive letters aside)."""
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:", spec)) and not Path(spec).exists()


def parse_video_spec(spec: str) -> tuple[str, object]:
    """``--video`` → (kind, argument): ('camera', index), ('file', path or URL),
    ('gst', pipeline) or ('synth', seed). Raises HearflowError for what is none of these."""
    spec = str(spec).strip()
    if not spec:
        raise HearflowError(f"empty --video: {VIDEO_HELP}")
    if spec.isdigit():
        return "camera", int(spec)
    if spec.startswith("gst:"):
        pipeline = spec[4:].strip()
        if not pipeline:
            raise HearflowError("--video gst: needs a pipeline ending in appsink")
        return "gst", pipeline
    if spec == "synth" or spec.startswith("synth:"):
        return "synth", _synth_seed(spec)
    if is_url(spec):
        return "file", spec
    if _looks_like_scheme(spec):
        raise HearflowError(f"unknown video source {spec!r}: {VIDEO_HELP}")
    return "file", spec


def default_realtime(video: str) -> bool:
    """Whether a ``--video`` is paced like a live source when the user did not say: files
    on disk are processed offline (every frame), devices, URLs and generators live."""
    kind, arg = parse_video_spec(video)
    return not (kind == "file" and "://" not in str(arg))


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
    if not spec or spec.isdigit() or _looks_like_scheme(spec) and not is_url(spec):
        raise HearflowError(f"unknown audio source {spec!r}: {AUDIO_HELP}")
    return "file", spec


def _synth_seed(spec: str) -> int:
    arg = spec[len("synth:"):].strip() if spec.startswith("synth:") else ""
    if not arg:
        return 0
    try:
        return int(arg)
    except ValueError:
        raise HearflowError(f"--video {spec}: expected synth or synth:<integer seed>") from None


def check_specs(video_spec: str, audio_spec: str, realtime: bool = True) -> None:
    """What open_sources checks that needs no model: the specs, their combination, and that
    named files exist and are readable. Fast, so bad input fails before the model loads."""
    vkind, varg = parse_video_spec(video_spec)
    akind, aarg = parse_audio_spec(audio_spec)
    _check_combination(vkind, varg, akind, video_spec, audio_spec, realtime)
    for kind, arg, what in ((vkind, varg, "video"), (akind, aarg, "audio")):
        if kind == "file":
            check_file(arg, what)


# --------------------------------------------------------------------------- opening
def open_sources(video_spec: str, audio_spec: str, cfg: PreprocessConfig, realtime: bool = True,
                 *, camera_factory=None) -> tuple[VideoSource, Source | None]:
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
    _check_combination(vkind, varg, akind, video_spec, audio_spec, realtime)
    embedded = akind in ("same", "synth")  # the video source writes the audio itself
    video = _video_source(vkind, varg, cfg, realtime, embedded, camera_factory)
    audio = _audio_source(akind, aarg, cfg, realtime)
    _open_all([video] if audio is None else [video, audio])
    return video, video if embedded else audio


def _check_combination(vkind: str, varg, akind: str, video_spec: str, audio_spec: str, realtime: bool) -> None:
    """Reject pairs of specs that cannot work together, in one line.

    ``realtime`` False may be the user's --no-realtime or the CLI's default for a video
    file, so the messages state the rule rather than blame a flag.
    """
    if not realtime and vkind == "camera":
        raise HearflowError(
            f"--video {video_spec} is a live camera, which cannot be processed offline (--no-realtime "
            "reads every frame as fast as possible): drop --no-realtime"
        )
    if not realtime and akind == "mic":
        # the CLI runs a local video file offline unless --realtime; anything else only with --no-realtime
        by_default = vkind == "file" and not is_url(str(varg))
        what = {"gst": "a gst: pipeline", "synth": "the synthetic scene"}.get(
            vkind, "a video file" if by_default else "a stream URL")
        how = "by default" if by_default else "with --no-realtime"
        instead = "--audio same (its own sound), an audio file or none" if vkind != "gst" else \
            "--audio gst:<pipeline>, an audio file or none"
        pace = "add --realtime to play it at its own pace" if by_default else "drop --no-realtime to pace it"
        raise HearflowError(
            f"--audio {audio_spec} is a live microphone, but --video {video_spec} is {what}, processed offline "
            f"{how} (every frame, as fast as it decodes), so live sound cannot be lined up with its frames: "
            f"use {instead}, or {pace} alongside the microphone"
        )
    if akind == "same" and vkind not in ("file", "synth"):
        where = f"camera {varg}" if vkind == "camera" else "a gst: pipeline"
        raise HearflowError(
            f"--audio same needs a video file or URL with sound, but the video is {where}: "
            "use --audio mic, gst:<pipeline>, an audio file or none"
        )
    if akind == "synth" and vkind != "synth":
        raise HearflowError("--audio synth is the synthetic scene's own sound: it needs --video synth")


def _video_source(kind: str, arg, cfg: PreprocessConfig, realtime: bool, embedded: bool,
                  camera_factory) -> VideoSource:
    """The (unopened) video source for a parsed ``--video``; ``embedded``: it writes the audio too."""
    if kind == "camera":
        return CameraSource(arg, cfg, capture_factory=camera_factory)
    if kind == "gst":
        return GstVideoSource(arg, cfg, realtime)
    if kind == "synth":
        return SynthVideoSource(arg, cfg, realtime, with_audio=embedded)
    return FileSource(arg, cfg, realtime, with_audio=embedded)


def _audio_source(kind: str, arg, cfg: PreprocessConfig, realtime: bool) -> AudioSource | None:
    """The (unopened) separate audio source for a parsed ``--audio``; None for none/same/synth."""
    if kind == "mic":
        return MicSource(arg, cfg)
    if kind == "gst":
        return GstAudioSource(arg, cfg, realtime)
    if kind == "file":
        return AudioFileSource(arg, cfg, realtime)
    return None


def _open_all(sources: list[Source]) -> None:
    """Open each in turn; when one fails, close those already opened and re-raise."""
    opened = []
    try:
        for source in sources:
            source.open()
            opened.append(source)
    except BaseException:
        for source in opened:
            source.close()
        raise


__all__ = ["check_specs", "open_sources", "parse_audio_spec", "parse_video_spec"]
