"""One training/evaluation sample from a media file: the frame at time t, the optical flow
into it, and the audio window around it — built only from the media layer's functions,
as the :class:`PreprocessConfig` says.

Used by ``hearflow prepare`` (and so by the trainer and the evaluator). The live engine
uses the same pieces frame by frame (FlowEstimator, audio_window).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hearflow.errors import CorruptMedia
from hearflow.media.audio import audio_window
from hearflow.media.decode import DamageReport, frames_around, read_audio, read_image
from hearflow.media.flow import FlowEstimator, zero_flow
from hearflow.media.frames import resize_frame
from hearflow.media.preprocess import PreprocessConfig


@dataclass
class Sample:
    frame: np.ndarray
    """uint8 S×S×3 RGB, resized as the config says (normalised later, per batch)."""
    flow: np.ndarray
    """float32 2×S×S encoded flow (zeros when the config has no flow or it cannot be computed)."""
    audio: np.ndarray
    """float32 audio window (cfg.audio_seconds at ``rate``), clipped to ±1, padded as configured."""
    rate: int
    """Sample rate of ``audio``."""
    t: float
    """Time of the frame actually used (nearest source frame to the requested time)."""
    fps: float
    """Source frame rate (0 for still images)."""
    flow_note: str = ""
    """Why the flow is zeros or uses another pair than configured (empty when all is normal)."""
    aspect: float = 1.0
    """The source frame's width / height (the frame above is squashed to S×S); the
    ``short_side_crop`` augmentation restores it."""


def _flow_for(frames, pos: int, fps: float, cfg: PreprocessConfig, estimator: FlowEstimator) -> tuple[np.ndarray, str]:
    """Flow for frames[pos] with the configured pair; falls back to the other pair at a clip edge."""
    if not cfg.uses_flow:
        return zero_flow(cfg), ""
    prev_ok, next_ok = pos > 0, pos + 1 < len(frames)
    note = ""
    if cfg.flow_pair == "previous":
        pair = (pos - 1, pos) if prev_ok else (pos, pos + 1) if next_ok else None
        if not prev_ok and next_ok:
            note = "first frame: flow to the next frame used instead of from the previous one"
    else:
        pair = (pos, pos + 1) if next_ok else (pos - 1, pos) if prev_ok else None
        if not next_ok and prev_ok:
            note = "last frame: flow from the previous frame used instead of to the next one"
    if pair is None:
        return zero_flow(cfg), "single frame: no flow can be computed (zeros)"
    a, b = (estimator.gray(frames[i].rgb) for i in pair)
    return estimator(a, b, fps), note


def video_sample(
    path,
    t: float | None,
    cfg: PreprocessConfig,
    estimator: FlowEstimator | None = None,
    audio_path=None,
) -> Sample:
    """The sample at time ``t`` (None = the middle of the video) of a video file.

    path: a video with an audio track (or give ``audio_path`` for separate audio).
    estimator: reuse one FlowEstimator across calls (creating one costs a little).
    A damaged file is usable when the frame at ``t`` and the audio window decode (damage
    elsewhere is ignored); else CorruptMedia says what is missing.
    Raises the media layer's typed errors (no audio, no video, corrupt ...).
    """
    from hearflow.media.decode import probe

    estimator = estimator or FlowEstimator(cfg)
    if t is None:
        info = probe(path, decode=False)
        t = (info.duration or 0.0) / 2
    frames, pos, fps = frames_around(path, t, before=1, after=1, report=DamageReport())
    frame = frames[pos]
    flow, note = _flow_for(frames, pos, fps, cfg, estimator)
    wave, rate, _ = _read_audio_for(audio_path or path, frame.t, cfg)
    audio = audio_window(wave, rate, frame.t, cfg)
    height, width = frame.rgb.shape[:2]
    return Sample(resize_frame(frame.rgb, cfg), flow, audio, rate, frame.t, fps, note, width / height)


def _read_audio_for(path, t: float | None, cfg: PreprocessConfig) -> tuple[np.ndarray, int, float]:
    """The whole track and the frame time, refused (CorruptMedia) only when damage lost audio
    inside the window of the frame at ``t`` (None: the middle of the intact track)."""
    report = DamageReport()
    wave, rate = read_audio(path, None if cfg.sample_rate == "native" else int(cfg.sample_rate), report=report)
    end = report.declared_end if report.truncated else len(wave) / rate
    if t is None:
        t = end / 2
    if report.damaged:
        d = cfg.audio_seconds
        # the window as audio_window would place it in the intact track
        if cfg.audio_window == "centered":
            t0 = min(max(0.0, t - d / 2), max(0.0, end - d))  # shifted to stay inside the track
            t1 = min(t0 + d, end)
        else:
            t0, t1 = max(0.0, t - d), t
        lost = report.audio_lost_between(t0, t1)
        if lost > 0:
            raise CorruptMedia(path, f"audio window {t0:.2f}..{t1:.2f} s is damaged ({lost:.3f} s lost): "
                                     f"{report.describe().removeprefix(f'{path}: ')}")
    return wave, rate, t


def still_sample(image_path, audio_path, cfg: PreprocessConfig) -> Sample:
    """A sample from a single still frame and an audio file (the Flickr-SoundNet test layout).

    There is no second frame, so the flow is zeros. The frame's time is not known; it is
    taken as the middle of the audio file (as the Flickr protocol's centred crop does) and
    the window is placed around it as the config says.
    """
    rgb = read_image(image_path)
    wave, rate, t = _read_audio_for(audio_path, None, cfg)
    audio = audio_window(wave, rate, t, cfg)
    note = "still frame: no flow can be computed (zeros)" if cfg.uses_flow else ""
    return Sample(resize_frame(rgb, cfg), zero_flow(cfg), audio, rate, t, 0.0, note, rgb.shape[1] / rgb.shape[0])
