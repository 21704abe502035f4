"""``--sink video:FILE.mp4``: the annotated video (H.264 + AAC) with the original audio,
recorded crash-safe (a Matroska file while running, the requested container at the end)."""

from __future__ import annotations

import contextlib
import os
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from hearflow.engine import draw
from hearflow.engine.packets import AudioChunk, Result
from hearflow.engine.sinks.base import Sink, SinkOptions, StreamInfo, check_writable
from hearflow.engine.sinks.registry import register_sink
from hearflow.errors import HearflowError

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv")

PARTIAL_SUFFIX = ".partial.mkv"
"""Appended to the output's name for the recording made while running: out.mp4 → out.mp4.partial.mkv."""

# Matroska written this way survives SIGKILL or power loss up to the last cluster: each
# cluster (≤ 1 s) is handed to the OS as soon as it is complete, and the format needs no
# index at the end to be read. mp4 keeps its index (moov) for close(), so an interrupted
# mp4 does not open at all.
LIVE_MKV_OPTIONS = {"cluster_time_limit": 1000, "flush_packets": 1}


def partial_path(path) -> Path:
    """Where ``--sink video:PATH`` records while the run goes on."""
    path = Path(path)
    return path.with_name(path.name + PARTIAL_SUFFIX)


@register_sink("video", "video:FILE.mp4")
class VideoSink(Sink):
    """Annotated video (H.264 + AAC) of the processed frames, with the original audio.

    path: output file (.mp4, .mov or .mkv; parent folders are created).
    alpha: heatmap blend weight at full confidence (see hearflow.engine.draw).
    crf / preset: libx264 quality (lower crf = better) and speed.
    max_audio_lead: seconds of audio held while waiting for the first frame.

    Time: the file's t = 0 is the *time origin*, the earliest t_media among the first
    processed frame and the audio received before it. Each frame is placed at its own
    t_media (variable frame rate: when frames were dropped, the previous frame stays on
    screen longer, and the duration and lip sync stay right). Audio is written
    contiguously from its first block; a block that starts more than 20 ms after the
    written audio ends (blocks were dropped) is preceded by silence, one that overlaps
    is trimmed, so audio never drifts from the picture. Audio before the origin is cut.
    A run that processed no frame leaves no file. The frames are drawn with
    hearflow.engine.draw.overlay.

    Crash safety: while running, the sink records to ``PATH.partial.mkv`` (H.264 and
    16-bit PCM audio, which has no encoder delay to hide, in Matroska clusters of ≤ 1 s
    flushed to the OS as they complete), so a killed run (SIGKILL, power loss, OOM)
    leaves a playable file missing at most the last ~1.5 s. close() remuxes it into PATH:
    the H.264 packets are copied unchanged and the PCM is encoded to AAC (.mp4/.mov),
    then the partial file is deleted; for a .mkv PATH the partial file is renamed and
    keeps its PCM audio. If finishing fails (a full disk), close() raises, PATH is not
    left half-written and the partial file is kept. A partial file left by an earlier
    crash is renamed ``PATH.crashed-<time>.mkv`` at open, never overwritten.
    """

    wants_frames = True
    wants_audio = True
    SYNC_TOLERANCE = 0.020
    """Seconds of audio timing jitter absorbed before silence is inserted or audio trimmed."""

    def __init__(self, path, alpha: float = 0.45, crf: int = 20, preset: str = "veryfast",
                 max_audio_lead: float = 10.0):
        self.path = Path(path)
        self.alpha = alpha
        self.video_options = {"crf": str(crf), "preset": preset}
        self.max_audio_lead = max_audio_lead
        self.name = f"video:{path}"
        self.partial = partial_path(self.path)
        """The Matroska recording while the run goes on."""
        self._writer = None
        self._info: StreamInfo | None = None
        self._t0: float | None = None
        self._pending: list[AudioChunk] = []  # audio held until the first frame
        self._next_sample = 0  # audio samples written so far
        self._size: tuple[int, int] | None = None
        self._closed = False

    @classmethod
    def from_spec(cls, arg: str, options: SinkOptions) -> VideoSink:
        if not arg:
            raise ValueError("give the output file, e.g. video:out/run.mp4")
        if Path(arg).suffix.lower() not in VIDEO_SUFFIXES:
            raise ValueError(f"the video file must end in {', '.join(VIDEO_SUFFIXES)}")
        return cls(arg, alpha=options.alpha)

    def spec_key(self) -> str:
        return str(self.path.resolve())

    def check(self) -> None:
        check_writable(self.path, self.name)

    def open(self, info: StreamInfo) -> None:
        try:  # fail now on a bad path, not at the first frame
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.is_dir():
                raise IsADirectoryError(21, "is a directory")
            if self.partial.exists():  # an earlier run crashed: its recording is all that is left of it
                stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(self.partial.stat().st_mtime))
                kept = self.path.with_name(f"{self.path.name}.crashed-{stamp}.mkv")
                os.replace(self.partial, kept)
                info.log(f"{self.name}: kept an interrupted run's recording as {kept}")
            with open(self.partial, "wb"):
                pass
        except OSError as exc:
            raise HearflowError(f"{self.name}: cannot write {self.path}: {exc.strerror or exc}") from None
        self._info = info  # opened: close() now owns the partial file
        info.log(f"{self.name}: recording to {self.partial} while running (a crash leaves a playable .mkv there); "
                 f"{self.path} is written at the end")

    @property
    def time_origin(self) -> float | None:
        """The t_media that is t = 0 in the file (None before the first frame)."""
        return self._t0

    def _start(self, rgb: np.ndarray, t_media: float) -> None:
        """Create the writer at the first frame: its size and the time origin are known now."""
        from hearflow.media.encode import AVWriter

        h, w = rgb.shape[:2]
        self._size = (w - w % 2, h - h % 2)  # yuv420p needs even sizes
        info = self._info
        fps = info.fps if info.fps and info.fps > 0 else 25.0
        self._t0 = min([t_media] + [c.t_media for c in self._pending])
        self._writer = AVWriter(self.partial, fps=fps, size=self._size, sample_rate=info.audio_rate,
                                audio_codec="pcm_s16le", video_options=self.video_options,
                                video_time_base=Fraction(1, 90000), container_options=LIVE_MKV_OPTIONS)
        pending, self._pending = self._pending, []
        for chunk in pending:
            self._write_audio(chunk)

    def write(self, result: Result) -> None:
        if result.rgb is None:
            raise ValueError("the video sink needs Result.rgb (the engine dropped the frame)")
        if self._writer is None:
            self._start(result.rgb, result.t_media)
        lines = draw.status_lines(result, latency_ms=(result.t_result - result.t_capture) * 1000.0)
        img = draw.overlay(result.rgb, result.map, result.peak, lines, self.alpha, result.confidence)
        w, h = self._size
        if img.shape[1] != w or img.shape[0] != h:
            import cv2

            img = img[:h, :w] if img.shape[1] - w in (0, 1) and img.shape[0] - h in (0, 1) else \
                cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
        with self._recording():
            self._writer.write_frame(img, t=max(0.0, result.t_media - self._t0))

    def write_audio(self, chunk: AudioChunk) -> None:
        if self._info.audio_rate is None:
            return  # the stream was opened without audio
        if int(chunk.rate) != int(self._info.audio_rate):
            raise ValueError(f"audio block at {chunk.rate} Hz, the stream is {self._info.audio_rate} Hz")
        if self._writer is None:
            self._pending.append(chunk)
            # no frame for a long time: hold the newest max_audio_lead seconds only
            while len(self._pending) > 1 and \
                    sum(len(c.samples) for c in self._pending[1:]) >= self.max_audio_lead * chunk.rate:
                self._pending.pop(0)
            return
        self._write_audio(chunk)

    def _write_audio(self, chunk: AudioChunk) -> None:
        rate = int(self._info.audio_rate)
        x = np.asarray(chunk.samples, dtype=np.float32).reshape(-1)
        start = int(round((chunk.t_media - self._t0) * rate))
        gap = start - self._next_sample
        tol = int(self.SYNC_TOLERANCE * rate)
        with self._recording():
            if gap > tol:  # blocks went missing: silence keeps what follows in sync
                self._writer.write_audio(np.zeros(gap, np.float32))
                self._next_sample += gap
            elif gap < -tol or start < 0:  # overlap (or before the origin): cut what is already written
                x = x[self._next_sample - start:]
            if x.size:
                self._writer.write_audio(x)
                self._next_sample += x.size

    @contextlib.contextmanager
    def _recording(self):
        """An I/O error while recording says where what was recorded is."""
        try:
            yield
        except OSError as exc:
            raise HearflowError(f"{self.name}: writing {self.partial} failed ({_why(exc)}); "
                                "what reached the disk plays from there") from None

    def close(self) -> None:
        """Finish the recording and move it to PATH; raise HearflowError (one line) when
        that fails, saying where the recording is."""
        if self._closed:
            return
        self._closed = True
        writer, self._writer = self._writer, None
        if writer is None:
            if self._info is not None:
                self.partial.unlink(missing_ok=True)  # no frame ever came: leave no empty file behind
            return
        from hearflow.media.encode import remux

        try:
            writer.close()
        except OSError as exc:
            raise HearflowError(f"{self.name}: could not finish {self.partial} ({_why(exc)}); "
                                f"what reached the disk plays from there") from None
        try:
            if self.path.suffix.lower() == ".mkv":
                os.replace(self.partial, self.path)
                return
            remux(self.partial, self.path)
        except OSError as exc:
            if self.path.is_file():  # a half-written mp4 does not play: leave none
                self.path.unlink()
            raise HearflowError(f"{self.name}: could not write {self.path} ({_why(exc)}); "
                                f"the recording is kept in {self.partial}") from None
        self.partial.unlink()


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


__all__ = ["PARTIAL_SUFFIX", "VIDEO_SUFFIXES", "VideoSink", "partial_path"]
