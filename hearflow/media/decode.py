"""Reading audio, video and still images (PyAV for media, OpenCV for images).

Every function here speaks one clock: seconds relative to the **container start**, the
earliest start time of the file's chosen video and audio streams (0 in nearly every
file). A video frame's ``t`` and an audio sample's position ``i / rate`` are on that
clock, so the audio window of a frame is found by time alone.

Audio is always float32 mono in [-1, 1]. The downmix is ffmpeg's resampler
(libswresample) with ``rematrix_maxval=1``: its default matrix for float output gives
each stereo channel a gain of 1/√2 (so L = R = 0.9 would come out as 1.27); normalised,
stereo becomes (L + R) / 2, 5.1 becomes 0.207·(FL+FR) + 0.293·FC + 0.146·(BL+BR) (LFE
dropped). libswresample normalises like this by itself whenever it writes integer
samples, so this is also what ``ffmpeg -i clip.mp4 -ac 1 clip.wav`` (16-bit) gives.

Alignment of audio with time 0: ffmpeg's decoders drop the encoder's priming samples
when the container says how many there are (MP4/MOV edit lists, Opus pre-skip), so the
first decoded AAC sample is the first real one. Audio that starts after the container
start (a gap at the beginning or in the middle of the stream) is filled with silence,
audio that starts before it is cut, and the end is trimmed to the duration the
container declares for the stream (this removes AAC's end padding in MP4/MOV). What no
decoder can fix: AAC in a container without an edit list keeps its ~1024 priming
samples (a constant ~23 ms delay at 44.1 kHz); Matroska does not store AAC's end
padding, so up to one codec frame of silence remains at the end there.

Errors are the typed :mod:`hearflow.errors`: every public function raises a
:class:`~hearflow.errors.MediaError` subclass whose message names the file and the
problem in one line; no PyAV/ffmpeg exception escapes.
"""

from __future__ import annotations

import os
import re
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from hearflow.errors import CorruptMedia, EmptyMedia, MediaError, MediaNotFound, NoAudioStream, NoVideoStream

# Frames whose time is within this of a bound count as on it (Matroska/WebM store
# timestamps in whole milliseconds, so 30 fps frame times are off by up to 0.5 ms).
SLACK = 5e-4
# A jump in audio timestamps larger than this is a real gap, filled with silence;
# smaller ones are timestamp rounding (again whole milliseconds in Matroska).
AUDIO_GAP = 0.010
# Decoded media ending earlier than the declared stream duration by more than this
# (or two frames, if longer) is reported as truncated.
TRUNCATION_SLACK = 0.1

# What PyAV raises for bad data: ffmpeg errors (also ValueError/OSError subclasses),
# EOFError from its filter graphs, ValueError from frame conversions.
_AV_ERRORS = (av.FFmpegError, OSError, EOFError, ValueError)


# ----------------------------------------------------------------------------- types
@dataclass
class VideoFrame:
    """One decoded video frame.

    index: position in the stream (0 = first frame). Counted when decoding from the
        start; after a seek it is estimated as round((t - first frame time) × fps),
        which is exact for constant frame rate video.
    t: presentation time in seconds on the container clock (PTS × time base).
    rgb: H × W × 3 uint8 image.
    """

    index: int
    t: float
    rgb: np.ndarray = field(repr=False)


@dataclass
class AudioBlock:
    """A run of decoded audio: float32 mono ``samples`` at ``rate`` Hz starting at ``t`` s."""

    t: float
    samples: np.ndarray = field(repr=False)
    rate: int


@dataclass
class VideoStreamInfo:
    """What the container header says about the video stream (times in seconds)."""

    codec: str
    width: int
    height: int
    fps: float
    frames: int | None  # frame count, when the container stores it
    start: float  # on the container clock
    duration: float | None
    pix_fmt: str | None = None


@dataclass
class AudioStreamInfo:
    """What the container header says about the audio stream (times in seconds)."""

    codec: str
    sample_rate: int
    channels: int
    layout: str
    start: float
    duration: float | None


@dataclass
class DecodeStats:
    """What decoding the whole file found (filled by :func:`probe` with ``decode=True``)."""

    video_frames: int = 0
    first_frame_t: float | None = None
    last_frame_t: float | None = None
    audio_samples: int = 0  # after mono downmix and resampling to audio_rate
    audio_rate: int | None = None

    @property
    def audio_seconds(self) -> float:
        return self.audio_samples / self.audio_rate if self.audio_rate else 0.0


@dataclass
class MediaInfo:
    """Result of :func:`probe`: container, streams and (optionally) decode statistics."""

    path: str
    format: str
    duration: float | None
    size_bytes: int | None
    video: VideoStreamInfo | None
    audio: AudioStreamInfo | None
    decoded: DecodeStats | None = None

    def describe(self) -> str:
        """Readable multi-line summary (what ``hearflow probe FILE`` prints)."""
        size = f", {self.size_bytes / 1e3:.1f} kB" if self.size_bytes is not None else ""
        lines = [self.path, f"  container: {self.format}, duration {_secs(self.duration)}{size}"]
        v = self.video
        if v:
            frames = f", {v.frames} frames" if v.frames else ""
            lines.append(
                f"  video: {v.codec} {v.width}x{v.height} {v.pix_fmt or '?'}, {v.fps:.3f} fps{frames}, "
                f"start {v.start:.3f} s, duration {_secs(v.duration)}"
            )
        else:
            lines.append("  video: none")
        a = self.audio
        if a:
            layout = "" if a.layout.endswith("channels") else f" ({a.layout})"  # "2 channels": no named layout
            lines.append(
                f"  audio: {a.codec} {a.sample_rate} Hz, {a.channels} channel{'s' * (a.channels != 1)}{layout}, "
                f"start {a.start:.3f} s, duration {_secs(a.duration)}"
            )
        else:
            lines.append("  audio: none")
        d = self.decoded
        if d:
            if v:
                span = f" at {d.first_frame_t:.3f}..{d.last_frame_t:.3f} s" if d.video_frames else ""
                lines.append(f"  decoded video: {d.video_frames} frames{span}")
            if a:
                lines.append(
                    f"  decoded audio: {d.audio_seconds:.3f} s mono at {d.audio_rate} Hz ({d.audio_samples} samples)"
                )
        return "\n".join(lines)


def _secs(x: float | None) -> str:
    return "unknown" if x is None else f"{x:.3f} s"


# ------------------------------------------------------------------ opening, errors
def _is_url(path) -> bool:
    return "://" in str(path)


def _check_path(path) -> None:
    """Fail early, with a clear message, for what ffmpeg would report obscurely."""
    if _is_url(path):
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
    except _AV_ERRORS as exc:
        raise CorruptMedia(path, f"cannot decode: corrupt or truncated data (ffmpeg: {_problem(exc)})") from exc


@contextmanager
def _open(path):
    """Open ``path`` with PyAV; yields the container and closes it afterwards."""
    _check_path(path)
    try:
        container = av.open(str(path), "r")
    except av.error.InvalidDataError as exc:
        raise CorruptMedia(
            path, f"not a readable media file: corrupt, truncated or not audio/video (ffmpeg: {_problem(exc)})"
        ) from exc
    except OSError as exc:  # not found, permission denied, ... (av's own errors subclass these)
        raise MediaNotFound(path, f"cannot open ({_problem(exc)})") from exc
    except _AV_ERRORS as exc:
        raise CorruptMedia(path, f"cannot open (ffmpeg: {_problem(exc)})") from exc
    try:
        with _decoding(path):
            if not container.streams.video and not container.streams.audio:
                raise CorruptMedia(path, "no audio or video stream")
            yield container
    finally:
        try:
            container.close()
        except _AV_ERRORS:
            pass


def _video_stream(path, container, required: bool = True):
    stream = container.streams.best("video") if container.streams.video else None
    if stream is None and required:
        raise NoVideoStream(path, "no video stream")
    return stream


def _audio_stream(path, container, required: bool = True):
    stream = container.streams.best("audio") if container.streams.audio else None
    if stream is None and required:
        raise NoAudioStream(path, "no audio stream")
    return stream


def _stream_start(stream) -> float | None:
    if stream is None or stream.start_time is None or stream.time_base is None:
        return None
    return float(stream.start_time * stream.time_base)


def _rel_start(stream, origin: float) -> float:
    """Stream start on the container clock (0 when the header gives none)."""
    start = _stream_start(stream)
    return 0.0 if start is None else start - origin


def _origin(container) -> float:
    """Time 0 of hearflow's clock in stream seconds: the earliest chosen stream start."""
    starts = [
        _stream_start(s)
        for s in (_video_stream(None, container, False), _audio_stream(None, container, False))
    ]
    starts = [s for s in starts if s is not None]
    if starts:
        return min(starts)
    return container.start_time / 1e6 if container.start_time is not None else 0.0


_HMS = re.compile(r"^(\d+):(\d+):(\d+(?:\.\d*)?)$")


def _declared_end(stream, origin: float) -> float | None:
    """Where the header says the stream ends, on the container clock; None if it doesn't.

    MP4/MOV/AVI give a duration from the stream start. Matroska/WebM only have a
    DURATION tag, which ffmpeg's muxer writes as the end timestamp of the track (equal
    to the duration when the track starts at 0).
    """
    if stream.duration and stream.time_base:
        return _rel_start(stream, origin) + float(stream.duration * stream.time_base)
    for key, value in stream.metadata.items():
        if key.upper() == "DURATION":
            m = _HMS.match(value.strip())
            if m:
                return int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3]) - origin
    return None


def _declared_duration(stream, origin: float) -> float | None:
    end = _declared_end(stream, origin)
    return None if end is None else end - _rel_start(stream, origin)


def _fps(stream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return float(rate)
    return 0.0


def _check_complete(path, what: str, decoded_end: float, stream, origin: float, frame_dur: float) -> None:
    """Raise CorruptMedia when decoding ended well before the stream's declared end."""
    declared_end = _declared_end(stream, origin)
    if declared_end is None:
        return
    if declared_end - decoded_end > max(TRUNCATION_SLACK, 2 * frame_dur):
        raise CorruptMedia(
            path, f"truncated {what}: decoded up to {decoded_end:.3f} s of {declared_end:.3f} s declared"
        )


# --------------------------------------------------------------------------- audio
class _AudioConverter:
    """Decoded audio frames in, float32 mono at ``rate`` out, aligned with clock time 0.

    Sample i of the concatenated output is at time i / rate on the container clock:
    leading and inner timestamp gaps are filled with silence (fed through the resampler,
    so its filter delay stays consistent), audio before time 0 is cut, and the output
    stops at the stream's declared end.
    """

    def __init__(self, stream, rate: int | None, origin: float):
        self.stream = stream
        self.rate = int(rate or stream.codec_context.sample_rate or 0) or None  # else: first frame's
        self.origin = origin
        self.resampler = None
        self.key = None
        self.fed = 0  # input samples fed, incl. silence (clock time = fed / in_rate + offset)
        self.in_rate = None
        self.drop = 0  # output samples still to cut (audio starting before time 0)
        self.emitted = 0  # output samples returned so far
        self.end = _declared_end(stream, origin)
        self.frame_size = stream.codec_context.frame_size or 1024

    def _new_resampler(self, frame):
        self.key = (frame.format.name, frame.layout.name, frame.sample_rate)
        self.in_rate = frame.sample_rate
        if self.rate is None:
            self.rate = frame.sample_rate
        # rematrix_maxval=1 normalises the downmix matrix: see the module docstring.
        return av.AudioResampler(format="flt", layout="mono", rate=self.rate, options={"rematrix_maxval": "1.0"})

    def _silence(self, like, n: int):
        frame = av.AudioFrame(format=like.format.name, layout=like.layout.name, samples=n)
        fill = 0x80 if like.format.name.startswith("u8") else 0  # unsigned 8-bit silence is 128
        for plane in frame.planes:
            plane.update(bytes([fill]) * plane.buffer_size)
        frame.sample_rate = like.sample_rate
        return frame

    def _run(self, frame) -> list[np.ndarray]:
        return [f.to_ndarray().reshape(-1) for f in self.resampler.resample(frame)]

    def push(self, frame) -> np.ndarray:
        """Convert one decoded frame; returns the samples ready so far (maybe none)."""
        out = []
        if self.resampler is None or (frame.format.name, frame.layout.name, frame.sample_rate) != self.key:
            if self.resampler is not None:  # the stream changed format mid-way: drain, restart
                out += self._run(None)
                self.fed = round(self.fed / self.in_rate * frame.sample_rate)
            first = self.resampler is None
            self.resampler = self._new_resampler(frame)
        else:
            first = False
        if frame.pts is not None and frame.time_base is not None:
            t = float(frame.pts * frame.time_base) - self.origin
            gap = t - self.fed / self.in_rate
            if first and gap < 0:  # starts before time 0: cut the part before it
                self.drop = round(-gap * self.rate)
                self.fed = round(t * self.in_rate)
            elif gap > (0.5 / self.in_rate if first else AUDIO_GAP):
                n = round(gap * self.in_rate)
                out += self._run(self._silence(frame, n))
                self.fed += n
        out += self._run(frame)
        self.fed += frame.samples
        return self._take(out)

    def flush(self) -> np.ndarray:
        """Drain the resampler at the end of the stream."""
        return self._take(self._run(None) if self.resampler is not None else [])

    def _take(self, chunks: list[np.ndarray]) -> np.ndarray:
        x = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        if self.drop:
            cut = min(self.drop, len(x))
            x, self.drop = x[cut:], self.drop - cut
        if self.end is not None and self.rate:
            x = x[: max(0, round(self.end * self.rate) - self.emitted)]
        self.emitted += len(x)
        return np.clip(x, -1.0, 1.0).astype(np.float32, copy=False)

    def check_complete(self, path) -> None:
        if self.emitted == 0:
            raise EmptyMedia(path, "audio stream has no samples")
        _check_complete(path, "audio", self.emitted / self.rate, self.stream, self.origin,
                        self.frame_size / (self.in_rate or self.rate))


def read_audio(path, sample_rate: int | None) -> tuple[np.ndarray, int]:
    """Decode the whole audio track as float32 mono in [-1, 1].

    path: media file (any container/codec ffmpeg reads: mp4, mkv, webm, avi, mov, wav, mp3, ogg, ...).
    sample_rate: rate to resample to; None keeps the stream's native rate.
    Returns (samples, rate); sample i is at time i / rate on the container clock.
    Raises NoAudioStream, EmptyMedia (no samples), CorruptMedia, MediaNotFound.
    """
    with _open(path) as container:
        stream = _audio_stream(path, container)
        conv = _AudioConverter(stream, sample_rate, _origin(container))
        chunks = [conv.push(frame) for frame in container.decode(stream)]
        chunks.append(conv.flush())
        conv.check_complete(path)
        return np.concatenate(chunks), conv.rate


# --------------------------------------------------------------------------- video
def _frame_time(frame, origin: float) -> float | None:
    if frame.pts is None or frame.time_base is None:
        return None
    return float(frame.pts * frame.time_base) - origin


def _decode_video(container, stream, origin: float, seek_to: float | None = None, threads: bool = True):
    """Yield (index, t, av.VideoFrame) in presentation order, from a keyframe at or before ``seek_to``.

    The index is counted when decoding from the start and estimated from t after a seek.
    A seek that overshoots (bad index) or fails falls back to decoding from the start.
    """
    if threads:  # frame + slice threads: faster on large frames; the added latency is harmless for files
        stream.thread_type = "AUTO"
    fps = _fps(stream)
    first_t = _rel_start(stream, origin)
    seeked = False
    if seek_to is not None and seek_to > first_t + SLACK:
        try:
            container.seek(int((seek_to + origin) / stream.time_base), stream=stream, backward=True)
            seeked = True
        except _AV_ERRORS:
            seeked = False
    count = 0
    for frame in container.decode(stream):
        t = _frame_time(frame, origin)
        if t is None:  # no timestamp (rare): continue from the previous one
            t = first_t + count / fps if fps else float(count)
        if seeked and count == 0 and t > seek_to + SLACK and t > first_t + SLACK:
            # landed after the wanted time: start again from the beginning
            container.seek(stream.start_time or 0, stream=stream, backward=True)
            yield from _decode_video(container, stream, origin, None, threads)
            return
        index = round((t - first_t) * fps) if seeked and fps else count
        count += 1
        yield index, t, frame


def _rgb(frame) -> np.ndarray:
    return frame.to_ndarray(format="rgb24")


def read_frames(path, start: float | None = None, end: float | None = None) -> Iterator[VideoFrame]:
    """Decode video frames with start <= t < end (seconds, container clock), in order.

    path: media file with a video stream.
    start: first time wanted; the file is seeked to the keyframe before it, then frames
        before ``start`` are decoded and dropped. None: from the first frame.
    end: stop before this time (exclusive); None: to the end of the stream, where a
        stream much shorter than its declared duration raises CorruptMedia.
    Raises NoVideoStream, EmptyMedia (no frames), CorruptMedia, MediaNotFound.
    """
    with _open(path) as container:
        stream = _video_stream(path, container)
        origin = _origin(container)
        last_t = None  # of the last decoded frame, wanted or not
        for index, t, frame in _decode_video(container, stream, origin, start):
            last_t = t
            if start is not None and t < start - SLACK:
                continue
            if end is not None and t >= end - SLACK:
                break
            yield VideoFrame(index, t, _rgb(frame))
        else:  # decoded to the end of the stream
            if last_t is None:
                raise EmptyMedia(path, "video stream has no decodable frames")
            fps = _fps(stream) or 25.0
            _check_complete(path, "video", last_t + 1 / fps, stream, origin, 1 / fps)


def video_fps(info_or_path) -> float:
    """Average frame rate of the video stream.

    info_or_path: a :class:`MediaInfo` from :func:`probe`, or a media file path.
    Raises NoVideoStream when there is none.
    """
    info = info_or_path if isinstance(info_or_path, MediaInfo) else probe(info_or_path, decode=False)
    if info.video is None:
        raise NoVideoStream(info.path, "no video stream")
    return info.video.fps


def frames_around(path, t: float, before: int = 1, after: int = 1) -> tuple[list[VideoFrame], int, float]:
    """The frame nearest time ``t`` with up to ``before`` preceding and ``after`` following frames.

    path: media file with a video stream.
    t: time in seconds on the container clock; before the first frame gives the first
        frame, after the last frame gives the last one. Ties go to the earlier frame.
    before / after: number of neighbouring source frames wanted (fewer at the ends).
    Returns (frames in order, position of the target frame in that list, fps). Seeks to
    the keyframe before the wanted span, so it costs at most one GOP of decoding.
    Raises NoVideoStream, EmptyMedia, CorruptMedia, MediaNotFound.
    """
    with _open(path) as container:
        stream = _video_stream(path, container)
        origin = _origin(container)
        fps = _fps(stream) or 25.0
        buf = deque(maxlen=before + 2)  # candidates: `before` frames, target, one after
        target = None  # the chosen (index, t, frame)
        following = []
        for item in _decode_video(container, stream, origin, t - (before + 1.5) / fps, threads=False):
            if target is not None:
                following.append(item)
            else:
                buf.append(item)
                if item[1] >= t - SLACK:  # first frame at/after t: it or its predecessor is nearest
                    if len(buf) >= 2 and t - buf[-2][1] <= item[1] - t:
                        target = buf[-2]
                        following.append(item)
                    else:
                        target = item
            if target is not None and len(following) >= after:
                break
        if not buf:
            raise EmptyMedia(path, f"no decodable video frames at or before {t:.3f} s")
        if target is None:  # t is past the last frame
            target = buf[-1]
            _check_complete(path, "video", target[1] + 1 / fps, stream, origin, 1 / fps)
        preceding = [item for item in buf if item[1] < target[1]][-before:] if before else []
        items = preceding + [target] + following[:after]
        frames = [VideoFrame(index, ft, _rgb(frame)) for index, ft, frame in items]
        return frames, len(preceding), fps


# ---------------------------------------------------------------------- both streams
def iter_media(
    path, sample_rate: int | None, video: bool = True, audio: bool = True
) -> Iterator[VideoFrame | AudioBlock]:
    """Decode video frames and audio blocks of one file interleaved in time order.

    path: media file.
    sample_rate: audio rate to resample to; None keeps the native rate.
    video / audio: which streams to decode; a requested stream that is missing raises
        NoVideoStream / NoAudioStream.
    Yields VideoFrame and AudioBlock items sorted by start time on the container clock
    (AudioBlock t = first sample's time, samples contiguous across blocks). Items are
    held back until the other stream has caught up, at most one second of media time.
    """
    if not (video or audio):
        raise ValueError("iter_media needs video=True or audio=True")
    with _open(path) as container:
        vstream = _video_stream(path, container) if video else None
        astream = _audio_stream(path, container) if audio else None
        origin = _origin(container)
        if vstream is not None:
            vstream.thread_type = "AUTO"
        conv = _AudioConverter(astream, sample_rate, origin) if astream is not None else None
        queues = {"v": deque(), "a": deque()}
        live = {"v": vstream is not None, "a": astream is not None}  # stream not finished
        vcount = 0
        last_t = None

        def ready():
            # emit while the head is safe: the other queue is non-empty, finished,
            # or behind by more than a second of media time
            while queues["v"] or queues["a"]:
                v, a = queues["v"], queues["a"]
                if v and a:
                    q = v if v[0].t <= a[0].t else a
                elif v:
                    q = v if not live["a"] or v[-1].t - v[0].t > 1.0 else None
                else:
                    q = a if not live["v"] or a[-1].t - a[0].t > 1.0 else None
                if q is None:
                    return
                yield q.popleft()

        def push_audio(x):
            if len(x):
                queues["a"].append(AudioBlock((conv.emitted - len(x)) / conv.rate, x, conv.rate))

        streams = [s for s in (vstream, astream) if s is not None]
        for packet in container.demux(streams):
            for frame in packet.decode():
                if packet.stream is vstream:
                    t = _frame_time(frame, origin)
                    if t is None:
                        t = vcount / (_fps(vstream) or 25.0)
                    queues["v"].append(VideoFrame(vcount, t, _rgb(frame)))
                    vcount += 1
                    last_t = t
                else:
                    push_audio(conv.push(frame))
            yield from ready()
        live["v"] = live["a"] = False
        if conv is not None:
            push_audio(conv.flush())
        yield from ready()
        if vstream is not None:
            if vcount == 0:
                raise EmptyMedia(path, "video stream has no decodable frames")
            fps = _fps(vstream) or 25.0
            _check_complete(path, "video", last_t + 1 / fps, vstream, origin, 1 / fps)
        if conv is not None:
            conv.check_complete(path)


# --------------------------------------------------------------------------- probe
def probe(path, decode: bool = True, sample_rate: int | None = 22050) -> MediaInfo:
    """Describe a media file; with ``decode`` also decode it fully to find bad data.

    path: media file; one with only audio or only video is fine.
    decode: decode every video frame and the whole audio track as hearflow would
        (mono downmix, resampling), filling ``MediaInfo.decoded``; raises CorruptMedia
        for undecodable or truncated data and EmptyMedia for streams with nothing in them.
    sample_rate: audio rate for the decode check; None keeps the native rate.
    Raises MediaNotFound, EmptyMedia, CorruptMedia.
    """
    with _open(path) as container:
        origin = _origin(container)
        vs, as_ = _video_stream(path, container, False), _audio_stream(path, container, False)
        vinfo = ainfo = None
        if vs is not None:
            cc = vs.codec_context
            vinfo = VideoStreamInfo(
                codec=cc.name, width=cc.width, height=cc.height, fps=_fps(vs),
                frames=vs.frames or None, start=_rel_start(vs, origin),
                duration=_declared_duration(vs, origin), pix_fmt=cc.pix_fmt,
            )
        if as_ is not None:
            cc = as_.codec_context
            ainfo = AudioStreamInfo(
                codec=cc.name, sample_rate=cc.sample_rate, channels=cc.channels,
                layout=cc.layout.name if cc.layout else "unknown",
                start=_rel_start(as_, origin), duration=_declared_duration(as_, origin),
            )
        duration = container.duration / 1e6 if container.duration is not None else None
        size = None if _is_url(path) else os.path.getsize(path)
        info = MediaInfo(str(path), container.format.name, duration, size, vinfo, ainfo)
        if not decode:
            return info

        stats = DecodeStats()
        conv = _AudioConverter(as_, sample_rate, origin) if as_ is not None else None
        if vs is not None:
            vs.thread_type = "AUTO"
        for packet in container.demux([s for s in (vs, as_) if s is not None]):
            for frame in packet.decode():
                if packet.stream is vs:
                    t = _frame_time(frame, origin)
                    if stats.first_frame_t is None:
                        stats.first_frame_t = t
                    stats.last_frame_t = t if t is not None else stats.last_frame_t
                    stats.video_frames += 1
                else:
                    conv.push(frame)
        if vs is not None:
            if stats.video_frames == 0:
                raise EmptyMedia(path, "video stream has no decodable frames")
            fps = vinfo.fps or 25.0
            _check_complete(path, "video", (stats.last_frame_t or 0.0) + 1 / fps, vs, origin, 1 / fps)
        if conv is not None:
            conv.flush()
            conv.check_complete(path)
            stats.audio_samples, stats.audio_rate = conv.emitted, conv.rate
        info.decoded = stats
        return info


# --------------------------------------------------------------------------- images
def read_image(path) -> np.ndarray:
    """Read a still image (jpg, png, ...) as H × W × 3 RGB uint8.

    path: image file. Raises MediaNotFound (missing, a directory), EmptyMedia
    (zero-length) or CorruptMedia (not decodable as an image).
    """
    import cv2  # here, not at the top: `hearflow probe` should not pay for importing OpenCV

    _check_path(path)
    try:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise CorruptMedia(path, f"cannot decode image ({exc})") from exc
    if bgr is None:
        raise CorruptMedia(path, "cannot decode image: corrupt, truncated or not an image format OpenCV reads")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
