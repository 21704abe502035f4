"""Video and audio sources of the engine: the contract, one module per kind, spec parsing.

``base`` (the :class:`Source` contract and realtime pacing), ``file``, ``synthetic``,
``camera``, ``microphone``, ``gstreamer``, and ``spec`` (``--video`` / ``--audio``
parsing and :func:`open_sources`). The names other code uses are re-exported here.
"""

from hearflow.engine.capture import CaptureContext, CaptureCounters, FrameBuilder
from hearflow.engine.sources.base import LIVE_RATE, AudioSource, Source, VideoSource
from hearflow.engine.sources.camera import CameraSource
from hearflow.engine.sources.file import AUDIO_PIECE, URL_SCHEMES, AudioFileSource, FileSource
from hearflow.engine.sources.gstreamer import GstAudioSource, GstVideoSource, import_gst
from hearflow.engine.sources.microphone import MicSource, import_sounddevice
from hearflow.engine.sources.spec import check_specs, default_realtime, open_sources, parse_audio_spec, parse_video_spec
from hearflow.engine.sources.synthetic import SynthVideoSource

__all__ = [
    "AUDIO_PIECE",
    "LIVE_RATE",
    "URL_SCHEMES",
    "AudioFileSource",
    "AudioSource",
    "CameraSource",
    "CaptureContext",
    "CaptureCounters",
    "FileSource",
    "FrameBuilder",
    "GstAudioSource",
    "GstVideoSource",
    "MicSource",
    "Source",
    "SynthVideoSource",
    "VideoSource",
    "check_specs",
    "import_gst",
    "import_sounddevice",
    "open_sources",
    "parse_audio_spec",
    "default_realtime",
    "parse_video_spec",
]
