"""Writing audio/video files with PyAV (synthetic clips, the engine's annotated video).

:class:`AVWriter` is a streaming writer: video frames and audio blocks are pushed as
they come and interleaved by the muxer; :meth:`AVWriter.close` flushes the encoders so
the file plays even when the producer stops early (Ctrl-C). :func:`write_clip` writes a
whole clip held in memory. :func:`remux` copies a file's video packets into another
container and re-encodes its audio (the engine's crash-safe Matroska recording → mp4).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# Codec names per container that hearflow writes; anything ffmpeg has can be asked for.
DEFAULT_CODECS = {
    ".mp4": ("libx264", "aac"),
    ".mov": ("libx264", "aac"),
    ".mkv": ("libx264", "aac"),
    ".webm": ("libvpx-vp9", "libopus"),
    ".avi": ("mpeg4", "pcm_s16le"),
}

_LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}
"""Channel count → the layout name encoders expect."""


class AVWriter:
    """Stream video frames (RGB uint8) and audio blocks (float32) into one file.

    path: output file; the container comes from its extension.
    fps: video frame rate (frames are numbered consecutively: frame i is at i/fps s),
        or the nominal rate when frames carry explicit times (``write_frame(rgb, t)``).
    size: (width, height) of the frames; None for an audio-only file.
    sample_rate: audio rate; None for a video-only file.
    channels: audio channels (1 = mono, 2 = stereo, 6 = 5.1).
    video_codec / audio_codec: ffmpeg encoder names; default by container.
    video_options: encoder options (for libx264: preset, crf, ...).
    threads: encoder threads; 1 keeps the output byte-identical across runs.
    video_time_base: time unit of the video timestamps; None = 1/fps (constant frame
        rate). Give a fine one (e.g. Fraction(1, 90000)) when frames are written with
        explicit times that are not on the 1/fps grid (variable frame rate).
    container_options: muxer and format options (e.g. Matroska's cluster_time_limit,
        flush_packets).
    """

    def __init__(
        self,
        path,
        fps: float = 25.0,
        size: tuple[int, int] | None = None,
        sample_rate: int | None = None,
        channels: int = 1,
        video_codec: str | None = None,
        audio_codec: str | None = None,
        video_options: dict | None = None,
        audio_bit_rate: int | None = None,
        threads: int = 1,
        video_time_base: Fraction | None = None,
        container_options: dict | None = None,
    ):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        default_v, default_a = DEFAULT_CODECS.get(self.path.suffix.lower(), ("libx264", "aac"))
        self.container = av.open(str(self.path), "w",
                                 container_options={k: str(v) for k, v in (container_options or {}).items()})
        self.video = None
        self.audio = None
        self._vframes = 0
        self._last_vpts = None
        self._asamples = 0
        if size is not None:
            codec = video_codec or default_v
            self.video = self.container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
            self.video.width, self.video.height = int(size[0]), int(size[1])
            self.video.pix_fmt = "yuv420p"
            self.video.thread_count = threads
            opts = {"preset": "veryfast", "crf": "18"} if codec == "libx264" else {}
            opts.update(video_options or {})
            self.video.options = {k: str(v) for k, v in opts.items()}
            self._vtb = Fraction(1, 1) / self.video.codec_context.framerate
            if video_time_base is not None:
                self._vtb = Fraction(video_time_base)
                self.video.codec_context.time_base = self._vtb
                self.video.time_base = self._vtb
        if sample_rate is not None:
            codec = audio_codec or default_a
            self.audio = self.container.add_stream(codec, rate=int(sample_rate))
            self.audio.layout = _LAYOUTS.get(channels, f"{channels}c")
            if audio_bit_rate:
                self.audio.bit_rate = audio_bit_rate
            self._audio_format = self.audio.format.name
            self._channels = channels

    def write_frame(self, rgb: np.ndarray, t: float | None = None) -> None:
        """Append one RGB uint8 frame of the configured size.

        t: presentation time in seconds; None = the next slot of the constant frame rate
            (frame i at i/fps). Times are rounded to the video time base, and a time at
            or before the previous frame's is moved one tick after it (encoders need
            strictly increasing timestamps).
        """
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        if t is None:
            pts = round(Fraction(self._vframes) / self.video.codec_context.framerate / self._vtb)
        else:
            pts = round(Fraction(t).limit_denominator(1_000_000_000) / self._vtb)
        if self._last_vpts is not None and pts <= self._last_vpts:
            pts = self._last_vpts + 1
        frame.pts = self._last_vpts = pts
        frame.time_base = self._vtb
        self._vframes += 1
        self.container.mux(self.video.encode(frame))

    def write_audio(self, samples: np.ndarray) -> None:
        """Append audio: float32 in [-1, 1], shape (n,) for mono or (channels, n)."""
        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim == 1:
            samples = samples[None, :]
        samples = np.clip(samples, -1.0, 1.0)
        if samples.shape[0] != self._channels:
            raise ValueError(f"expected {self._channels} audio channels, got {samples.shape[0]}")
        if self._audio_format.endswith("p"):  # planar: one row per channel
            data, fmt = samples, "fltp"
        else:  # packed: interleaved in one row
            data, fmt = samples.T.reshape(1, -1), "flt"
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=fmt, layout=self.audio.layout.name)
        frame.sample_rate = self.audio.rate
        frame.pts = self._asamples
        frame.time_base = Fraction(1, self.audio.rate)
        self._asamples += samples.shape[1]
        self.container.mux(self.audio.encode(frame))

    def close(self) -> None:
        """Flush the encoders and finalise the container (idempotent)."""
        if self.container is None:
            return
        try:
            if self.video is not None:
                self.container.mux(self.video.encode(None))
            if self.audio is not None:
                self.container.mux(self.audio.encode(None))
        finally:
            self.container.close()
            self.container = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
            return
        try:  # already failing: finalise what we can, keep the original error
            self.close()
        except av.FFmpegError:
            pass


def remux(src, dst, audio_codec: str = "aac", audio_bit_rate: int | None = None) -> Path:
    """Copy the first video stream of ``src`` into ``dst`` packet by packet (no re-encode)
    and encode its first audio stream with ``audio_codec``.

    The audio is re-timed by sample count from its first sample, so PCM whose container
    rounds timestamps (Matroska: 1 ms) comes out sample-exact. Raises av.FFmpegError
    (an OSError for I/O problems) when ``dst`` cannot be written.
    """
    dst = Path(dst)
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0] if inp.streams.video else None
        ain = inp.streams.audio[0] if inp.streams.audio else None
        vout = out.add_stream_from_template(vin) if vin is not None else None
        aout = None
        if ain is not None:
            aout = out.add_stream(audio_codec, rate=ain.rate)
            # Matroska PCM comes back as "N channels" (no order), which AAC refuses
            aout.layout = _LAYOUTS.get(ain.layout.nb_channels, ain.layout.name)
            if audio_bit_rate:
                aout.bit_rate = audio_bit_rate
        next_sample = None
        for packet in inp.demux(*[s for s in (vin, ain) if s is not None]):
            if packet.dts is None and packet.pts is None:
                continue  # the demuxer's end-of-stream marker
            if packet.stream is vin:
                packet.stream = vout
                out.mux(packet)
                continue
            for frame in packet.decode():
                if next_sample is None:
                    next_sample = round((frame.time or 0.0) * ain.rate)
                frame.pts, frame.time_base = next_sample, Fraction(1, ain.rate)
                next_sample += frame.samples
                out.mux(aout.encode(frame))
        if aout is not None:
            out.mux(aout.encode(None))
    return dst


def write_clip(
    path,
    frames: np.ndarray | None,
    fps: float = 25.0,
    audio: np.ndarray | None = None,
    sample_rate: int | None = None,
    **kwargs,
) -> Path:
    """Write a whole clip: frames (N, H, W, 3) uint8 and/or audio (n,) or (channels, n)."""
    size = None if frames is None else (frames.shape[2], frames.shape[1])
    channels = 1 if audio is None or np.ndim(audio) == 1 else np.shape(audio)[0]
    with AVWriter(path, fps=fps, size=size, sample_rate=sample_rate if audio is not None else None,
                  channels=channels, **kwargs) as w:
        if frames is not None:
            for f in frames:
                w.write_frame(f)
        if audio is not None:
            block = 4096  # several blocks, as a live producer would write them
            n = np.shape(audio)[-1]
            for s in range(0, n, block):
                w.write_audio(audio[..., s : s + block])
    return Path(path)
