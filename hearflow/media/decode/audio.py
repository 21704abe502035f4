"""Decoding an audio stream to float32 mono, aligned with the container clock (see :mod:`hearflow.media.decode`)."""

from __future__ import annotations

import av
import numpy as np

from hearflow.errors import CorruptMedia, EmptyMedia
from hearflow.media.decode.container import (
    AUDIO_GAP,
    audio_stream,
    clock_origin,
    declared_end,
    open_media,
)
from hearflow.media.decode.damage import DamageReport, decode_packet, demux, start_report, warn_if_damaged


class AudioConverter:
    """Decoded audio frames in, float32 mono at ``rate`` out, aligned with clock time 0.

    Sample i of the concatenated output is at time i / rate on the container clock:
    leading and inner timestamp gaps are filled with silence (fed through the resampler,
    so its filter delay stays consistent), audio before time 0 is cut, and the output
    stops at the stream's declared end. With a ``report``, the gap after a skipped
    (undecodable) packet is filled however short it is and recorded as lost audio.
    """

    def __init__(self, stream, rate: int | None, origin: float, report: DamageReport | None = None):
        self.stream = stream
        self.rate = int(rate or stream.codec_context.sample_rate or 0) or None  # else: first frame's
        self.origin = origin
        self.resampler = None
        self.key = None
        self.fed = 0  # input samples fed, incl. silence (clock time = fed / in_rate + offset)
        self.in_rate = None
        self.drop = 0  # output samples still to cut (audio starting before time 0)
        self.emitted = 0  # output samples returned so far
        self.end = declared_end(stream, origin)
        self.frame_size = stream.codec_context.frame_size or 1024
        self.report = report
        self._skips_seen = report.audio_packets_skipped if report is not None else 0  # as of the last frame

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
        after_skip = self.report is not None and self.report.audio_packets_skipped > self._skips_seen
        if self.report is not None:
            self._skips_seen = self.report.audio_packets_skipped
        if frame.pts is not None and frame.time_base is not None:
            t = float(frame.pts * frame.time_base) - self.origin
            gap = t - self.fed / self.in_rate
            if first and gap < 0:  # starts before time 0: cut the part before it
                self.drop = round(-gap * self.rate)
                self.fed = round(t * self.in_rate)
            elif gap > (0.5 / self.in_rate if first or after_skip else AUDIO_GAP):
                n = round(gap * self.in_rate)
                if after_skip:  # lost data, not a gap the file has
                    self.report.audio_gap(self.fed / self.in_rate, n / self.in_rate)
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

    def finish(self, path, report: DamageReport) -> None:
        """Raise when the stream gave no samples at all; else note a truncated end in ``report``."""
        if self.emitted == 0:
            if report.audio_packets_skipped:
                raise CorruptMedia(path, f"audio stream has no decodable samples "
                                         f"({report.audio_packets_skipped} packets undecodable)")
            raise EmptyMedia(path, "audio stream has no samples")
        report.check_end(self.emitted / self.rate, self.stream, self.origin,
                         self.frame_size / (self.in_rate or self.rate))


def read_audio(path, sample_rate: int | None, report: DamageReport | None = None) -> tuple[np.ndarray, int]:
    """Decode the whole audio track as float32 mono in [-1, 1].

    path: media file (any container/codec ffmpeg reads: mp4, mkv, webm, avi, mov, wav, mp3, ogg, ...).
    sample_rate: rate to resample to; None keeps the stream's native rate.
    report: filled with what damage made it skip (see :mod:`~hearflow.media.decode.damage`):
        undecodable packets become silence of their length, so the timing holds; a
        truncated track ends at the cut. Without one, damage is a DamagedMediaWarning.
    Returns (samples, rate); sample i is at time i / rate on the container clock.
    Raises NoAudioStream, EmptyMedia (no samples), CorruptMedia (unreadable, or nothing
    decodable), MediaNotFound.
    """
    report, private = start_report(report, path)
    with open_media(path) as container:
        stream = audio_stream(path, container)
        origin = clock_origin(container)
        conv = AudioConverter(stream, sample_rate, origin, report)
        chunks = [
            conv.push(frame)
            for packet in demux(container, stream, report)
            for frame in decode_packet(packet, report, "audio", origin)
        ]
        chunks.append(conv.flush())
        conv.finish(path, report)
    warn_if_damaged(report, private)
    return np.concatenate(chunks), conv.rate
