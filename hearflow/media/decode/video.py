"""Decoding video frames as RGB arrays (seeking, time ranges, the frames around a time) and reading still images."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from hearflow.errors import CorruptMedia, EmptyMedia
from hearflow.media.decode.container import (
    AV_ERRORS,
    SLACK,
    check_path,
    clock_origin,
    declared_duration,
    frame_time,
    open_media,
    rel_start,
    stream_fps,
    video_stream,
)
from hearflow.media.decode.damage import DamageReport, decode_packet, demux, start_report, warn_if_damaged


@dataclass
class VideoFrame:
    """One decoded video frame.

    index: position in the stream (0 = first frame). Counted when decoding from the
        start; after a seek or a skipped (undecodable) frame it is estimated as
        round((t - first frame time) × fps), which is exact for constant frame rate video.
    t: presentation time in seconds on the container clock (PTS × time base).
    rgb: H × W × 3 uint8 image.
    """

    index: int
    t: float
    rgb: np.ndarray = field(repr=False)


def _decode_video(
    container, stream, origin: float, report: DamageReport, seek_to: float | None = None, threads: bool = True
):
    """Yield (index, t, av.VideoFrame) in presentation order, from a keyframe at or before ``seek_to``.

    The index is counted when decoding from the start and estimated from t after a seek
    or once a packet has been skipped. A seek that overshoots (bad index) or fails falls
    back to decoding from the start. Undecodable packets are skipped (noted in ``report``).
    """
    if threads:  # frame + slice threads: faster on large frames; the added latency is harmless for files
        stream.thread_type = "AUTO"
    fps = stream_fps(stream)
    first_t = rel_start(stream, origin)
    seeked = False
    if seek_to is not None and seek_to > first_t + SLACK:
        try:
            container.seek(int((seek_to + origin) / stream.time_base), stream=stream, backward=True)
            seeked = True
        except AV_ERRORS:
            seeked = False
    count = 0
    index = -1
    skips = report.video_packets_skipped
    for packet in demux(container, stream, report):
        for frame in decode_packet(packet, report, "video", origin):
            t = frame_time(frame, origin)
            if t is None:  # no timestamp (rare): continue from the previous one
                t = first_t + count / fps if fps else float(count)
            if seeked and count == 0 and t > seek_to + SLACK and t > first_t + SLACK:
                # landed after the wanted time: start again from the beginning
                container.seek(stream.start_time or 0, stream=stream, backward=True)
                yield from _decode_video(container, stream, origin, report, None, threads)
                return
            if (seeked or report.video_packets_skipped > skips) and fps:
                index = max(index + 1, round((t - first_t) * fps))  # lost frames keep their numbers
            else:
                index = count
            count += 1
            report.video_frames += 1
            yield index, t, frame
    if seeked and count == 0:
        # nothing at all after the seek point (file cut before it): decode from the start,
        # so the caller sees where the decodable media really ends
        container.seek(stream.start_time or 0, stream=stream, backward=True)
        yield from _decode_video(container, stream, origin, report, None, threads)


def no_frames_error(path, report: DamageReport, where: str = ""):
    """The error for a video stream that gave no frame: corrupt if packets failed, else empty."""
    if report.video_packets_skipped:
        return CorruptMedia(path, f"no decodable video frames{where}: {report.video_packets_skipped} packets "
                                  f"undecodable (ffmpeg: {report.errors[0] if report.errors else '?'})")
    return EmptyMedia(path, f"video stream has no decodable frames{where}" if not where
                      else f"no decodable video frames{where}")


def expected_frames(stream, origin: float) -> int | None:
    """Frames the header promises: its count, else declared duration × fps; None if neither."""
    if stream.frames:
        return int(stream.frames)
    duration, fps = declared_duration(stream, origin), stream_fps(stream)
    return round(duration * fps) if duration and fps else None


def frame_rgb(frame) -> np.ndarray:
    return frame.to_ndarray(format="rgb24")


def read_frames(
    path, start: float | None = None, end: float | None = None, report: DamageReport | None = None
) -> Iterator[VideoFrame]:
    """Decode video frames with start <= t < end (seconds, container clock), in order.

    path: media file with a video stream.
    start: first time wanted; the file is seeked to the keyframe before it, then frames
        before ``start`` are decoded and dropped. None: from the first frame.
    end: stop before this time (exclusive); None: to the end of the stream.
    report: filled with what was skipped (undecodable frames, a truncated end), readable
        once the iteration is over; without one, damage is a DamagedMediaWarning.
    Raises NoVideoStream, EmptyMedia (no frames), CorruptMedia (unreadable, or no frame
    decodable), MediaNotFound.
    """
    report, private = start_report(report, path)
    with open_media(path) as container:
        stream = video_stream(path, container)
        origin = clock_origin(container)
        last_t = None  # of the last decoded frame, wanted or not
        for index, t, frame in _decode_video(container, stream, origin, report, start):
            last_t = t
            if start is not None and t < start - SLACK:
                continue
            if end is not None and t >= end - SLACK:
                break
            yield VideoFrame(index, t, frame_rgb(frame))
        else:  # decoded to the end of the stream
            if last_t is None:
                raise no_frames_error(path, report)
            fps = stream_fps(stream) or 25.0
            report.check_end(last_t + 1 / fps, stream, origin, 1 / fps)
            if start is None:
                report.video_frames_expected = expected_frames(stream, origin)
    warn_if_damaged(report, private)


def frames_around(
    path, t: float, before: int = 1, after: int = 1, report: DamageReport | None = None
) -> tuple[list[VideoFrame], int, float]:
    """The frame nearest time ``t`` with up to ``before`` preceding and ``after`` following frames.

    path: media file with a video stream.
    t: time in seconds on the container clock; before the first frame gives the first
        frame, after the last frame gives the last one. Ties go to the earlier frame.
    before / after: number of neighbouring source frames wanted (fewer at the ends, or
        where damage lost them: neighbours are the nearest decodable frames).
    report: filled with the damage met on the way; without one, a DamagedMediaWarning.
    Returns (frames in order, position of the target frame in that list, fps). Seeks to
    the keyframe before the wanted span, so it costs at most one GOP of decoding.
    Raises NoVideoStream, EmptyMedia, CorruptMedia (also when the frame at ``t`` itself
    is undecodable or past the cut of a truncated file), MediaNotFound.
    """
    report, private = start_report(report, path)
    skips = report.video_packets_skipped
    with open_media(path) as container:
        stream = video_stream(path, container)
        origin = clock_origin(container)
        fps = stream_fps(stream) or 25.0
        buf = deque(maxlen=before + 2)  # candidates: `before` frames, target, one after
        target = None  # the chosen (index, t, frame)
        following = []
        for item in _decode_video(container, stream, origin, report, t - (before + 1.5) / fps, threads=False):
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
            raise no_frames_error(path, report, f" at or before {t:.3f} s")
        if target is None:  # t is past the last frame
            target = buf[-1]
            if report.check_end(target[1] + 1 / fps, stream, origin, 1 / fps):
                raise CorruptMedia(path, f"no video frame at {t:.3f} s: the file is truncated "
                                         f"(decodes up to {report.decoded_end:.3f} s of {report.declared_end:.3f} s)")
        if report.video_packets_skipped > skips and abs(target[1] - t) > 0.5 / fps + SLACK:  # nearest frame lost
            raise CorruptMedia(path, f"the video frame at {t:.3f} s is undecodable (nearest decodable frame "
                                     f"at {target[1]:.3f} s; ffmpeg: {report.errors[0] if report.errors else '?'})")
        preceding = [item for item in buf if item[1] < target[1]][-before:] if before else []
        items = preceding + [target] + following[:after]
        frames = [VideoFrame(index, ft, frame_rgb(frame)) for index, ft, frame in items]
    warn_if_damaged(report, private)
    return frames, len(preceding), fps


def read_image(path) -> np.ndarray:
    """Read a still image (jpg, png, ...) as H × W × 3 RGB uint8.

    path: image file. Raises MediaNotFound (missing, a directory), EmptyMedia
    (zero-length) or CorruptMedia (not decodable as an image).
    """
    import cv2  # here, not at the top: `hearflow probe` should not pay for importing OpenCV

    check_path(path)
    try:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise CorruptMedia(path, f"cannot decode image ({exc})") from exc
    if bgr is None:
        raise CorruptMedia(path, "cannot decode image: corrupt, truncated or not an image format OpenCV reads")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
