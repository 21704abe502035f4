"""Decoding past damage as ffmpeg does, and the report of what was lost.

A packet whose decode fails (corrupt bytes) is skipped and the decoder goes on with the
next one; a demuxer that stops with an error (data cut mid-packet, garbage where a
header should be) ends the stream there, like the end of the file. What was lost is
recorded in a :class:`DamageReport`, which the decode functions fill when given one
(``report=``); without one they warn once per call with :class:`DamagedMediaWarning`,
so damage is never silent.

Lost audio inside the stream is replaced by silence of the same length at the same time
(the converter fills timestamp gaps), so sample i stays at time i / rate and audio stays
in sync with video; a truncated stream simply ends early (nothing is invented past the cut).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

from hearflow.media.decode.container import AV_ERRORS, TRUNCATION_SLACK, declared_end

# Skipped-packet times kept for the report (the counts are always complete).
MAX_WHERE = 50


class DamagedMediaWarning(UserWarning):
    """A media file decoded only in part (see :class:`DamageReport`)."""


@dataclass
class DamageReport:
    """What decoding one file skipped. Times are seconds on the container clock.

    Fill one by passing it as ``report=`` to iter_media, read_frames, frames_around or
    read_audio; read it after the call (for iter_media: after iterating to the end).
    Use a new report per call: counts add up across calls, but video_frames_expected
    and the truncation fields describe one stream.
    """

    path: str = ""
    video_packets_skipped: int = 0
    """Video packets whose decode failed (each is normally one lost frame)."""
    audio_packets_skipped: int = 0
    video_frames: int = 0
    """Video frames decoded."""
    video_frames_expected: int | None = None
    """Frames the stream should have had (header count or duration × fps), when a call
    decoded the whole stream and the header says; None otherwise."""
    audio_gaps: list[tuple[float, float]] = field(default_factory=list)
    """(start, seconds) of each span of lost audio that was filled with silence."""
    where: list[float] = field(default_factory=list)
    """Times of the skipped packets (first MAX_WHERE), in decode order."""
    truncated: bool = False
    """A stream ended well before its declared end (file cut short, or demuxing stopped)."""
    decoded_end: float | None = None
    """Where the truncated stream's decoded media ends."""
    declared_end: float | None = None
    """Where the header says the truncated stream ends."""
    errors: list[str] = field(default_factory=list)
    """ffmpeg's words for the first few failures."""

    @property
    def audio_seconds_lost(self) -> float:
        """Seconds of audio replaced by silence inside the stream (the cut-off tail of a
        truncated file is not included: see decoded_end / declared_end)."""
        return sum(d for _, d in self.audio_gaps)

    @property
    def video_frames_lost(self) -> int:
        """Frames missing: expected - decoded when known, else the skipped video packets."""
        if self.video_frames_expected is not None:
            return max(self.video_frames_expected - self.video_frames, self.video_packets_skipped, 0)
        return self.video_packets_skipped

    @property
    def damaged(self) -> bool:
        return bool(self.video_packets_skipped or self.audio_packets_skipped or self.audio_gaps or self.truncated)

    def audio_lost_between(self, t0: float, t1: float) -> float:
        """Seconds of [t0, t1) whose audio was lost: silence-filled gaps, and past the cut
        of a truncated file."""
        lost = sum(max(0.0, min(t1, s + d) - max(t0, s)) for s, d in self.audio_gaps)
        if self.truncated and self.decoded_end is not None:
            lost += max(0.0, t1 - max(t0, self.decoded_end))
        return lost

    def describe(self) -> str:
        """One line for a warning: what was skipped, where, and whether the file was cut."""
        parts = []
        packets = self.video_packets_skipped + self.audio_packets_skipped
        if packets:
            kinds = [f"{n} {k}" for n, k in ((self.video_packets_skipped, "video"),
                                             (self.audio_packets_skipped, "audio")) if n]
            at = ", ".join(f"{t:.2f}" for t in sorted(self.where)[:5]) + (", ..." if len(self.where) > 5 else "")
            parts.append(f"skipped {' + '.join(kinds)} undecodable packet{'s' * (packets != 1)}"
                         + (f" at {at} s" if at else ""))
        if self.video_frames_lost:
            of = f" of {self.video_frames_expected}" if self.video_frames_expected is not None else ""
            parts.append(f"{self.video_frames_lost}{of} video frames lost")
        if self.audio_gaps:
            parts.append(f"{self.audio_seconds_lost:.3f} s of audio replaced by silence")
        if self.truncated:
            parts.append(f"truncated: media ends at {self.decoded_end:.2f} s of {self.declared_end:.2f} s"
                         if self.decoded_end is not None and self.declared_end is not None else "truncated")
        if not parts:
            return f"{self.path}: no damage found"
        why = f" (ffmpeg: {self.errors[0]})" if self.errors else ""
        return f"{self.path}: damaged media, decoded what could be: " + "; ".join(parts) + why

    # ------------------------------------------------------------ filled by the decoders
    def skipped(self, kind: str, t: float | None, exc: Exception) -> None:
        if kind == "video":
            self.video_packets_skipped += 1
        else:
            self.audio_packets_skipped += 1
        if t is not None and len(self.where) < MAX_WHERE:
            self.where.append(t)
        self._error(exc)

    def _error(self, exc: Exception) -> None:
        if len(self.errors) < 3:
            text = (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__).strip().rstrip(".")
            if text not in self.errors:
                self.errors.append(text)

    def audio_gap(self, t: float, seconds: float) -> None:
        self.audio_gaps.append((t, seconds))

    def check_end(self, decoded_end: float, stream, origin: float, frame_dur: float) -> bool:
        """Mark the file truncated when decoding ended well before the stream's declared
        end (same tolerance as before: TRUNCATION_SLACK or two frames). Returns truncated."""
        end = declared_end(stream, origin)
        if end is None or end - decoded_end <= max(TRUNCATION_SLACK, 2 * frame_dur):
            return False
        if not self.truncated or decoded_end < self.decoded_end:
            self.decoded_end, self.declared_end = decoded_end, end
        self.truncated = True
        return True


def packet_time(packet, origin: float) -> float | None:
    ts = packet.pts if packet.pts is not None else packet.dts
    if ts is None or packet.time_base is None:
        return None
    return float(ts * packet.time_base) - origin


def decode_packet(packet, report: DamageReport, kind: str, origin: float) -> list:
    """The frames a packet decodes to; [] (and a note in the report) when its data is bad."""
    try:
        return packet.decode()
    except AV_ERRORS as exc:
        report.skipped(kind, packet_time(packet, origin), exc)
        return []


def demux(container, streams, report: DamageReport):
    """container.demux(streams), ending quietly (noted in the report) where the demuxer fails,
    as ffmpeg treats a read error as the end of the input."""
    packets = container.demux(streams)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except AV_ERRORS as exc:
            report._error(exc)  # the caller's end check marks the file truncated
            return
        yield packet


def start_report(report: DamageReport | None, path) -> tuple[DamageReport, bool]:
    """The report to fill (a private one when the caller gave none) and whether it is private."""
    if report is None:
        return DamageReport(str(path)), True
    if not report.path:
        report.path = str(path)
    return report, False


def warn_if_damaged(report: DamageReport, private: bool) -> None:
    """Without a caller's report, damage is said as a warning (never silently dropped)."""
    if private and report.damaged:
        warnings.warn(report.describe(), DamagedMediaWarning, stacklevel=3)
