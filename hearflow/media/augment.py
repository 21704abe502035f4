"""Training augmentation applied identically to a frame and its flow.

Two modes (``train.crop`` in the experiment config), both ending in a random horizontal
flip:

* ``zoom`` (hearflow's default): a random square crop of 80–100 % of the S×S frame,
  resized back to S×S.
* ``short_side_crop`` (the HTF authors' training transform): resize so the short side
  is 246 (for S = 224; S·246/224 in general) keeping the source's aspect ratio, then a
  random S×S crop. The prepared frame is already squashed to S×S, so the aspect ratio
  is restored from the source's (recorded in the cache; 1 when unknown): for a square
  source this is exactly the authors' transform up to one extra resampling.

Both change what the flow values mean, so the flow is corrected too:

* resize: with the signed encoding the values are displacements in model-resolution
  pixels (/flow_clip); resizing by a factor f along an axis multiplies that axis's
  displacements by f, and the result is clipped back to [-1, 1].
* flip: mirroring the image reverses horizontal motion, so the x channel is negated.

With ``htf_uint8`` flow neither correction can be represented (the values are already
rounded and saturated, and leftward motion was stored as 0, so a flip cannot turn it
into rightward motion): the flow is cropped and flipped spatially and its values kept.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from hearflow.media.frames import resize_frame
from hearflow.media.preprocess import PreprocessConfig

CROP_MODES = ("zoom", "short_side_crop")
PAPER_SHORT_SIDE = 246
"""The authors' training resize: short side 246 ..."""
PAPER_CROP = 224
"""... then a random 224 crop (torchvision Resize(246) + RandomCrop(224) + RandomHorizontalFlip)."""


def augment(
    frame_u8_hwc: np.ndarray,
    flow_chw: np.ndarray,
    rng: np.random.Generator,
    cfg: PreprocessConfig,
    mode: Literal["zoom", "short_side_crop"] = "zoom",
    scale: tuple[float, float] = (0.8, 1.0),
    aspect: float = 1.0,
    flip_p: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """The training augmentation ``mode`` (see the module docstring) of a frame and its flow.

    scale: zoom's crop side range as a fraction of S; aspect: the source's width / height
    (short_side_crop). Other arguments as :func:`augment_pair`.
    """
    if mode == "zoom":
        return augment_pair(frame_u8_hwc, flow_chw, rng, cfg, scale=scale, flip_p=flip_p)
    if mode == "short_side_crop":
        return short_side_crop_pair(frame_u8_hwc, flow_chw, rng, cfg, aspect=aspect, flip_p=flip_p)
    raise ValueError(f"unknown crop mode {mode!r} (known: {', '.join(CROP_MODES)})")


def _check(frame: np.ndarray, flow: np.ndarray, size: int) -> None:
    if frame.shape != (size, size, 3):
        raise ValueError(f"expected a {size}×{size}×3 frame, got shape {frame.shape}")
    if flow.shape != (2, size, size):
        raise ValueError(f"expected a 2×{size}×{size} flow, got shape {flow.shape}")


def _resize_flow(flow: np.ndarray, width: int, height: int, cfg: PreprocessConfig) -> np.ndarray:
    """Flow 2×h×w resized to 2×height×width, its values rescaled per axis (signed encoding)."""
    h, w = flow.shape[1:]
    # cv2 wants channels last; bilinear suits the smooth upscale of a flow field.
    out = cv2.resize(np.ascontiguousarray(flow.transpose(1, 2, 0)), (width, height), interpolation=cv2.INTER_LINEAR)
    out = out.transpose(2, 0, 1)
    if cfg.flow_encoding == "signed":
        out = out * np.array([width / w, height / h], np.float32)[:, None, None]
        np.clip(out, -1.0, 1.0, out=out)
    return out


def _flip_and_copy(frame, flow, frame_in, flow_in, rng, cfg: PreprocessConfig, flip_p: float):
    """Flip both with probability flip_p (negating the x flow when signed); fresh contiguous arrays."""
    if rng.random() < flip_p:
        frame = frame[:, ::-1]
        flow = flow[:, :, ::-1]
        if cfg.flow_encoding == "signed":
            flow = np.stack([-flow[0], flow[1]])
    # Always hand back fresh contiguous arrays, never views of the caller's data.
    frame = np.array(frame, dtype=np.uint8, order="C", copy=True if frame is frame_in else None)
    flow = np.array(flow, dtype=np.float32, order="C", copy=True if flow is flow_in else None)
    return frame, flow


def augment_pair(
    frame_u8_hwc: np.ndarray,
    flow_chw: np.ndarray,
    rng: np.random.Generator,
    cfg: PreprocessConfig,
    scale: tuple[float, float] = (0.8, 1.0),
    flip_p: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """``zoom``: randomly crop-and-resize and flip a frame and its flow the same way.

    frame_u8_hwc: resized RGB frame, uint8 S×S×3 (S = cfg.image_size).
    flow_chw: its encoded flow input, float32 2×S×S.
    rng: the random generator (the caller seeds it; nothing global is used).
    cfg: the preprocessing config: image_resize is the frame's resize filter,
        flow_encoding decides how flow values are corrected.
    scale: (min, max) crop side as a fraction of S, drawn uniformly; (1, 1) disables it.
    flip_p: probability of a horizontal flip.
    Returns new arrays (frame uint8 S×S×3, flow float32 2×S×S); the inputs are unchanged.
    """
    size = cfg.image_size
    _check(frame_u8_hwc, flow_chw, size)
    side = int(round(rng.uniform(scale[0], scale[1]) * size))
    side = min(max(side, 1), size)
    frame, flow = frame_u8_hwc, flow_chw
    if side < size:
        x0 = int(rng.integers(0, size - side + 1))
        y0 = int(rng.integers(0, size - side + 1))
        frame = resize_frame(frame[y0 : y0 + side, x0 : x0 + side], cfg)
        flow = _resize_flow(flow[:, y0 : y0 + side, x0 : x0 + side], size, size, cfg)
    return _flip_and_copy(frame, flow, frame_u8_hwc, flow_chw, rng, cfg, flip_p)


def short_side_crop_pair(
    frame_u8_hwc: np.ndarray,
    flow_chw: np.ndarray,
    rng: np.random.Generator,
    cfg: PreprocessConfig,
    aspect: float = 1.0,
    flip_p: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """``short_side_crop``: the authors' resize-short-side, random crop and flip.

    aspect: the source's width / height, restored before cropping (the prepared frame
    is squashed to S×S). Returns new arrays (frame uint8 S×S×3, flow float32 2×S×S).
    """
    size = cfg.image_size
    _check(frame_u8_hwc, flow_chw, size)
    if not aspect > 0:
        aspect = 1.0
    short = int(round(size * PAPER_SHORT_SIDE / PAPER_CROP))
    width, height = (round(short * aspect), short) if aspect >= 1 else (short, round(short / aspect))
    frame = resize_frame(frame_u8_hwc, cfg, size=(width, height))
    flow = _resize_flow(flow_chw, width, height, cfg)
    x0 = int(rng.integers(0, width - size + 1))
    y0 = int(rng.integers(0, height - size + 1))
    frame, flow = frame[y0 : y0 + size, x0 : x0 + size], flow[:, y0 : y0 + size, x0 : x0 + size]
    return _flip_and_copy(frame, flow, frame_u8_hwc, flow_chw, rng, cfg, flip_p)
