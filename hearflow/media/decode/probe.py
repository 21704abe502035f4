"""Describing a media file: container and stream headers, and optionally a full decode to find bad data."""

from __future__ import annotations

import os
from dataclasses import dataclass

from hearflow.errors import CorruptMedia, NoVideoStream
from hearflow.media.decode.audio import AudioConverter
from hearflow.media.decode.container import (
    audio_stream,
    clock_origin,
    declared_duration,
    frame_time,
    is_url,
    open_media,
    rel_start,
    stream_fps,
    video_stream,
)
from hearflow.media.decode.damage import DamageReport, decode_packet, demux
from hearflow.media.decode.video import expected_frames, no_frames_error


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


def probe(path, decode: bool = True, sample_rate: int | None = 22050) -> MediaInfo:
    """Describe a media file; with ``decode`` also decode it fully to find bad data.

    path: media file; one with only audio or only video is fine.
    decode: decode every video frame and the whole audio track as hearflow would
        (mono downmix, resampling), filling ``MediaInfo.decoded``. This is the strict
        check: any damage the other functions would decode past (undecodable packets, a
        truncated end) raises CorruptMedia with the damage report's line; a stream with
        nothing in it raises EmptyMedia.
    sample_rate: audio rate for the decode check; None keeps the native rate.
    Raises MediaNotFound, EmptyMedia, CorruptMedia.
    """
    with open_media(path) as container:
        origin = clock_origin(container)
        vs, as_ = video_stream(path, container, False), audio_stream(path, container, False)
        duration = container.duration / 1e6 if container.duration is not None else None
        size = None if is_url(path) else os.path.getsize(path)
        info = MediaInfo(
            str(path), container.format.name, duration, size, _video_info(vs, origin), _audio_info(as_, origin)
        )
        if decode:
            info.decoded = _decode_all(path, container, vs, as_, origin, sample_rate)
        return info


def _video_info(vs, origin: float) -> VideoStreamInfo | None:
    if vs is None:
        return None
    cc = vs.codec_context
    return VideoStreamInfo(
        codec=cc.name, width=cc.width, height=cc.height, fps=stream_fps(vs),
        frames=vs.frames or None, start=rel_start(vs, origin),
        duration=declared_duration(vs, origin), pix_fmt=cc.pix_fmt,
    )


def _audio_info(as_, origin: float) -> AudioStreamInfo | None:
    if as_ is None:
        return None
    cc = as_.codec_context
    return AudioStreamInfo(
        codec=cc.name, sample_rate=cc.sample_rate, channels=cc.channels,
        layout=cc.layout.name if cc.layout else "unknown",
        start=rel_start(as_, origin), duration=declared_duration(as_, origin),
    )


def _decode_all(path, container, vs, as_, origin: float, sample_rate: int | None) -> DecodeStats:
    """Decode both streams to the end as hearflow would; raise for damaged or empty ones."""
    stats = DecodeStats()
    report = DamageReport(str(path))
    conv = AudioConverter(as_, sample_rate, origin, report) if as_ is not None else None
    if vs is not None:
        vs.thread_type = "AUTO"
    for packet in demux(container, [s for s in (vs, as_) if s is not None], report):
        kind = "video" if packet.stream is vs else "audio"
        for frame in decode_packet(packet, report, kind, origin):
            if packet.stream is vs:
                t = frame_time(frame, origin)
                if stats.first_frame_t is None:
                    stats.first_frame_t = t
                stats.last_frame_t = t if t is not None else stats.last_frame_t
                stats.video_frames += 1
                report.video_frames += 1
            else:
                conv.push(frame)
    if vs is not None:
        if stats.video_frames == 0:
            raise no_frames_error(path, report)
        fps = stream_fps(vs) or 25.0
        report.check_end((stats.last_frame_t or 0.0) + 1 / fps, vs, origin, 1 / fps)
        report.video_frames_expected = expected_frames(vs, origin)
    if conv is not None:
        conv.flush()
        conv.finish(path, report)
        stats.audio_samples, stats.audio_rate = conv.emitted, conv.rate
    if report.damaged:
        raise CorruptMedia(path, report.describe().removeprefix(f"{path}: "))
    return stats


def video_fps(info_or_path) -> float:
    """Average frame rate of the video stream.

    info_or_path: a :class:`MediaInfo` from :func:`probe`, or a media file path.
    Raises NoVideoStream when there is none.
    """
    info = info_or_path if isinstance(info_or_path, MediaInfo) else probe(info_or_path, decode=False)
    if info.video is None:
        raise NoVideoStream(info.path, "no video stream")
    return info.video.fps
