"""Decoding video and audio of one file together, interleaved in time order (what a file source streams)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from hearflow.media.decode.audio import AudioConverter
from hearflow.media.decode.container import (
    audio_stream,
    clock_origin,
    frame_time,
    open_media,
    rel_start,
    stream_fps,
    video_stream,
)
from hearflow.media.decode.damage import DamageReport, decode_packet, demux, start_report, warn_if_damaged
from hearflow.media.decode.video import VideoFrame, no_frames_error, expected_frames, frame_rgb


@dataclass
class AudioBlock:
    """A run of decoded audio: float32 mono ``samples`` at ``rate`` Hz starting at ``t`` s."""

    t: float
    samples: np.ndarray = field(repr=False)
    rate: int


def iter_media(
    path, sample_rate: int | None, video: bool = True, audio: bool = True, report: DamageReport | None = None
) -> Iterator[VideoFrame | AudioBlock]:
    """Decode video frames and audio blocks of one file interleaved in time order.

    path: media file.
    sample_rate: audio rate to resample to; None keeps the native rate.
    video / audio: which streams to decode; a requested stream that is missing raises
        NoVideoStream / NoAudioStream.
    Yields VideoFrame and AudioBlock items sorted by start time on the container clock
    (AudioBlock t = first sample's time, samples contiguous across blocks). Items are
    held back until the other stream has caught up, at most one second of media time.

    Damage is decoded past (see :mod:`~hearflow.media.decode.damage`): an undecodable
    packet is skipped (a lost frame leaves a gap in the frame times and indices; lost
    audio becomes silence of its length, so blocks stay contiguous and in sync), and a
    truncated file ends at the cut. ``report`` is filled as it goes and complete once
    the iteration is over; without one, damage is a DamagedMediaWarning at the end.
    Raises (also mid-iteration) NoVideoStream, NoAudioStream, EmptyMedia, CorruptMedia
    (unreadable, or a requested stream with nothing decodable), MediaNotFound.
    """
    if not (video or audio):
        raise ValueError("iter_media needs video=True or audio=True")
    report, private = start_report(report, path)
    with open_media(path) as container:
        vstream = video_stream(path, container) if video else None
        astream = audio_stream(path, container) if audio else None
        origin = clock_origin(container)
        if vstream is not None:
            vstream.thread_type = "AUTO"
        conv = AudioConverter(astream, sample_rate, origin, report) if astream is not None else None
        merge = _Merge(video=vstream is not None, audio=astream is not None)
        numbering = _Numbering(vstream, origin, report) if vstream is not None else None
        streams = [s for s in (vstream, astream) if s is not None]
        for packet in demux(container, streams, report):
            is_video = packet.stream is vstream
            for frame in decode_packet(packet, report, "video" if is_video else "audio", origin):
                if is_video:
                    merge.video.append(numbering.frame(frame))
                else:
                    merge.push_audio(conv, conv.push(frame))
            yield from merge.ready()
        merge.live_video = merge.live_audio = False
        if conv is not None:
            merge.push_audio(conv, conv.flush())
        yield from merge.ready()
        if numbering is not None:
            numbering.finish(path)
        if conv is not None:
            conv.finish(path, report)
    warn_if_damaged(report, private)


class _Numbering:
    """Times and indices of one video stream's decoded frames, and its end-of-stream checks."""

    def __init__(self, stream, origin: float, report: DamageReport):
        self.stream, self.origin, self.report = stream, origin, report
        self.fps = stream_fps(stream)
        self.first_t = rel_start(stream, origin)
        self.skips = report.video_packets_skipped
        self.count, self.index, self.last_t = 0, -1, None

    def frame(self, frame) -> VideoFrame:
        t = frame_time(frame, self.origin)
        if t is None:
            t = self.count / (self.fps or 25.0)
        if self.report.video_packets_skipped > self.skips and self.fps:
            # after a lost frame the index comes from t, so it still says the frame's place
            self.index = max(self.index + 1, round((t - self.first_t) * self.fps))
        else:
            self.index = self.count
        self.count += 1
        self.report.video_frames += 1
        self.last_t = t
        return VideoFrame(self.index, t, frame_rgb(frame))

    def finish(self, path) -> None:
        """After the last packet: nothing decoded is an error; a cut-short stream is reported."""
        if self.count == 0:
            raise no_frames_error(path, self.report)
        step = 1 / (self.fps or 25.0)
        self.report.check_end(self.last_t + step, self.stream, self.origin, step)
        self.report.video_frames_expected = expected_frames(self.stream, self.origin)


class _Merge:
    """The decoded video frames and audio blocks not yet yielded, and which streams are still going."""

    def __init__(self, video: bool, audio: bool):
        self.video: deque[VideoFrame] = deque()
        self.audio: deque[AudioBlock] = deque()
        self.live_video, self.live_audio = video, audio  # stream not finished

    def push_audio(self, conv: AudioConverter, x: np.ndarray) -> None:
        """Queue the samples the converter just returned (they end at ``conv.emitted``)."""
        if len(x):
            self.audio.append(AudioBlock((conv.emitted - len(x)) / conv.rate, x, conv.rate))

    def ready(self) -> Iterator[VideoFrame | AudioBlock]:
        """Pop the items that are safe to emit, earliest first."""
        # the head is safe when the other queue is non-empty, finished, or behind by
        # more than a second of media time
        while self.video or self.audio:
            v, a = self.video, self.audio
            if v and a:
                q = v if v[0].t <= a[0].t else a
            elif v:
                q = v if not self.live_audio or v[-1].t - v[0].t > 1.0 else None
            else:
                q = a if not self.live_video or a[-1].t - a[0].t > 1.0 else None
            if q is None:
                return
            yield q.popleft()
