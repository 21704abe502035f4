"""Opening media files with PyAV: typed errors, the chosen streams, and the container clock.

Every time here is in seconds on hearflow's clock (see :mod:`hearflow.media.decode`):
relative to the earliest start of the file's chosen video and audio streams.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path

import av

from hearflow.errors import CorruptMedia, EmptyMedia, MediaError, MediaNotFound, NoAudioStream, NoVideoStream

# Frames whose time is within this of a bound count as on it (Matroska/WebM store
# timestamps in whole milliseconds, so 30 fps frame times are off by up to 0.5 ms).
SLACK = 5e-4
# A jump in audio timestamps larger than this is a real gap, filled with silence;
# smaller ones are timestamp rounding (again whole milliseconds in Matroska).
AUDIO_GAP = 0.010
# Decoded media ending earlier than the declared stream duration by more than this
# (or two frames, if longer) is reported as truncated (DamageReport.check_end).
TRUNCATION_SLACK = 0.1

# What PyAV raises for bad data: ffmpeg errors (also ValueError/OSError subclasses),
# EOFError from its filter graphs, ValueError from frame conversions.
AV_ERRORS = (av.FFmpegError, OSError, EOFError, ValueError)


def is_url(path) -> bool:
    return "://" in str(path)


def check_path(path) -> None:
    """Fail early, with a clear message, for what ffmpeg would report obscurely."""
    if is_url(path):
        return
    p = Path(path)
    if p.is_dir():
        raise MediaNotFound(path, "is a directory, not a media file")
    if not p.exists():
        raise MediaNotFound(path, "no such file")
    if p.stat().st_size == 0:
        raise EmptyMedia(path, "zero-length file")


def _problem(exc: Exception) -> str:
    """ffmpeg's own words for an error, without the file name PyAV appends."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.strip().rstrip(".")


@contextmanager
def _decoding(path):
    """Turn any PyAV/ffmpeg failure inside the block into CorruptMedia naming ``path``."""
    try:
        yield
    except MediaError:
        raise
    except AV_ERRORS as exc:
        raise CorruptMedia(path, f"cannot decode: corrupt or truncated data (ffmpeg: {_problem(exc)})") from exc


@contextmanager
def open_media(path):
    """Open ``path`` with PyAV; yields the container and closes it afterwards."""
    check_path(path)
    try:
        container = av.open(str(path), "r")
    except av.error.InvalidDataError as exc:
        raise CorruptMedia(
            path, f"not a readable media file: corrupt, truncated or not audio/video (ffmpeg: {_problem(exc)})"
        ) from exc
    except OSError as exc:  # not found, permission denied, ... (av's own errors subclass these)
        raise MediaNotFound(path, f"cannot open ({_problem(exc)})") from exc
    except AV_ERRORS as exc:
        raise CorruptMedia(path, f"cannot open (ffmpeg: {_problem(exc)})") from exc
    try:
        with _decoding(path):
            if not container.streams.video and not container.streams.audio:
                raise CorruptMedia(path, "no audio or video stream")
            yield container
    finally:
        try:
            container.close()
        except AV_ERRORS:
            pass


def video_stream(path, container, required: bool = True):
    stream = container.streams.best("video") if container.streams.video else None
    if stream is None and required:
        raise NoVideoStream(path, "no video stream")
    return stream


def audio_stream(path, container, required: bool = True):
    stream = container.streams.best("audio") if container.streams.audio else None
    if stream is None and required:
        raise NoAudioStream(path, "no audio stream")
    return stream


def _stream_start(stream) -> float | None:
    if stream is None or stream.start_time is None or stream.time_base is None:
        return None
    return float(stream.start_time * stream.time_base)


def rel_start(stream, origin: float) -> float:
    """Stream start on the container clock (0 when the header gives none)."""
    start = _stream_start(stream)
    return 0.0 if start is None else start - origin


def clock_origin(container) -> float:
    """Time 0 of hearflow's clock in stream seconds: the earliest chosen stream start."""
    starts = [
        _stream_start(s)
        for s in (video_stream(None, container, False), audio_stream(None, container, False))
    ]
    starts = [s for s in starts if s is not None]
    if starts:
        return min(starts)
    return container.start_time / 1e6 if container.start_time is not None else 0.0


_HMS = re.compile(r"^(\d+):(\d+):(\d+(?:\.\d*)?)$")


def declared_end(stream, origin: float) -> float | None:
    """Where the header says the stream ends, on the container clock; None if it doesn't.

    MP4/MOV/AVI give a duration from the stream start. Matroska/WebM only have a
    DURATION tag, which ffmpeg's muxer writes as the end timestamp of the track (equal
    to the duration when the track starts at 0).
    """
    if stream.duration and stream.time_base:
        return rel_start(stream, origin) + float(stream.duration * stream.time_base)
    for key, value in stream.metadata.items():
        if key.upper() == "DURATION":
            m = _HMS.match(value.strip())
            if m:
                return int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3]) - origin
    return None


def declared_duration(stream, origin: float) -> float | None:
    end = declared_end(stream, origin)
    return None if end is None else end - rel_start(stream, origin)


def stream_fps(stream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return float(rate)
    return 0.0


def frame_time(frame, origin: float) -> float | None:
    if frame.pts is None or frame.time_base is None:
        return None
    return float(frame.pts * frame.time_base) - origin
