"""Training augmentation applied identically to a frame and its flow.

A random square crop (zoom) and a random horizontal flip. Both change what the flow
values mean, so the flow is corrected too:

* zoom: with the signed encoding the values are displacements in model-resolution
  pixels (/flow_clip); enlarging a crop of side ``side`` back to S multiplies every
  displacement by S/side, and the result is clipped back to [-1, 1].
* flip: mirroring the image reverses horizontal motion, so the x channel is negated.

With ``htf_uint8`` flow neither correction can be represented (the values are already
rounded and saturated, and leftward motion was stored as 0, so a flip cannot turn it
into rightward motion): the flow is cropped and flipped spatially and its values kept.
"""

from __future__ import annotations

import cv2
import numpy as np

from hearflow.media.frames import resize_frame
from hearflow.media.preprocess import PreprocessConfig


def augment_pair(
    frame_u8_hwc: np.ndarray,
    flow_chw: np.ndarray,
    rng: np.random.Generator,
    cfg: PreprocessConfig,
    scale: tuple[float, float] = (0.8, 1.0),
    flip_p: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Randomly crop-and-resize and flip a frame and its flow the same way.

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
    if frame_u8_hwc.shape != (size, size, 3):
        raise ValueError(f"expected a {size}×{size}×3 frame, got shape {frame_u8_hwc.shape}")
    if flow_chw.shape != (2, size, size):
        raise ValueError(f"expected a 2×{size}×{size} flow, got shape {flow_chw.shape}")
    signed = cfg.flow_encoding == "signed"

    side = int(round(rng.uniform(scale[0], scale[1]) * size))
    side = min(max(side, 1), size)
    frame, flow = frame_u8_hwc, flow_chw
    if side < size:
        x0 = int(rng.integers(0, size - side + 1))
        y0 = int(rng.integers(0, size - side + 1))
        frame = resize_frame(frame[y0 : y0 + side, x0 : x0 + side], cfg)
        # cv2 wants channels last; bilinear suits the smooth upscale of a flow field.
        crop = np.ascontiguousarray(flow[:, y0 : y0 + side, x0 : x0 + side].transpose(1, 2, 0))
        flow = cv2.resize(crop, (size, size), interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1)
        if signed:
            flow = flow * np.float32(size / side)
            np.clip(flow, -1.0, 1.0, out=flow)

    if rng.random() < flip_p:
        frame = frame[:, ::-1]
        flow = flow[:, :, ::-1]
        if signed:
            flow = np.stack([-flow[0], flow[1]])

    # Always hand back fresh contiguous arrays, never views of the caller's data.
    frame = np.array(frame, dtype=np.uint8, order="C", copy=True if frame is frame_u8_hwc else None)
    flow = np.array(flow, dtype=np.float32, order="C", copy=True if flow is flow_chw else None)
    return frame, flow
