"""Optical flow into a frame → model input, 2 × S × S float32 (S = cfg.image_size).

Channel 0 is the horizontal (x, positive = rightward) and channel 1 the vertical
(y, positive = downward) displacement from frame ``a`` to frame ``b``, where ``a`` is
always the earlier frame. The caller picks the pair according to ``cfg.flow_pair``:

* ``previous`` (default, causal): a = the previous source frame, b = this frame;
* ``next`` (HTF's released preprocessing): a = this frame, b = the next frame.

Encodings (``cfg.flow_encoding``):

* ``signed`` (hearflow's default): displacement in model-resolution pixels per
  1/cfg.flow_ref_fps s, clipped to ±cfg.flow_clip and divided by it, so values lie in
  [-1, 1] and leftward/upward motion stays negative.
* ``htf_uint8``: HTF wrote its flow as 8-bit JPEG images, so each component was rounded
  and saturated to 0..255: leftward and upward motion became 0 and only the rightward /
  downward part survived. This encoding reproduces that (without the JPEG loss) for the
  released checkpoints; hearflow's signed encoding does not discard the sign.

Providers (``cfg.flow``): OpenCV DIS, OpenCV Farneback, and ``torch_farneback``, the
same Farneback in torch ops (:mod:`hearflow.media.flow_torch`; here on the CPU, with
numbers equal to OpenCV's to float rounding). ``cfg.flow_max_side`` bounds the size flow
is computed at: frames are shrunk, and the field is resized back and rescaled to the
source's pixel scale, so everything downstream sees native-scale displacements.

:class:`FlowEstimator` builds the OpenCV estimator once; it keeps internal buffers, so
use one instance per thread.
"""

from __future__ import annotations

import cv2
import numpy as np

from hearflow.media.flow_params import FARNEBACK_PARAMS, working_size
from hearflow.media.frames import resize_frame, to_gray
from hearflow.media.preprocess import PreprocessConfig

__all__ = ["FARNEBACK_PARAMS", "FlowEstimator", "encode_flow", "working_size", "zero_flow"]


def zero_flow(cfg: PreprocessConfig) -> np.ndarray:
    """An all-zero 2×S×S float32 flow input (flow ``none``, or no frame pair yet)."""
    return np.zeros((2, cfg.image_size, cfg.image_size), dtype=np.float32)


def encode_flow(raw: np.ndarray, fps: float, cfg: PreprocessConfig) -> np.ndarray:
    """Raw displacement field → 2×S×S float32 model input in cfg.flow_encoding.

    raw: H×W×2 float32 displacement (x, y) in pixels of the resolution it was computed
        at, as returned by :meth:`FlowEstimator.raw`.
    fps: frame rate of the source the pair was taken from; the two frames are 1/fps s
        apart. Used by the signed encoding only.
    """
    if raw.ndim != 3 or raw.shape[2] != 2:
        raise ValueError(f"expected an H×W×2 flow field, got shape {raw.shape}")
    size = cfg.image_size
    height, width = raw.shape[:2]
    out = np.empty((2, size, size), dtype=np.float32)

    if cfg.flow_encoding == "htf_uint8":
        # cv2.imwrite converts float data with saturate_cast<uchar>: round to nearest
        # (half to even, like np.rint) then saturate, so negative motion becomes 0.
        # It happens at the computation resolution; the 8-bit image is then resized
        # like a frame.
        for c in range(2):
            comp = np.rint(raw[..., c])
            np.clip(comp, 0, 255, out=comp)
            out[c] = resize_frame(comp.astype(np.uint8), cfg)
        out /= np.float32(255.0)
        return out

    if cfg.flow_encoding != "signed":
        raise ValueError(f"unknown flow_encoding {cfg.flow_encoding!r}")
    if fps is None or not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if (height, width) != (size, size):
        # Area averaging gives each model pixel the mean displacement of the source
        # pixels it covers (no aliasing when shrinking a native-resolution field).
        raw = cv2.resize(raw, (size, size), interpolation=cv2.INTER_AREA)
    # Units: source pixels → model pixels (S/W, S/H), per frame → per 1/ref_fps s,
    # then clip(v, ±clip) / clip == clip(v / clip, ±1); one multiply and one clip.
    k = float(fps) / cfg.flow_ref_fps / cfg.flow_clip
    np.multiply(raw[..., 0], k * size / width, out=out[0])
    np.multiply(raw[..., 1], k * size / height, out=out[1])
    np.clip(out, -1.0, 1.0, out=out)
    return out



class FlowEstimator:
    """Optical flow with the provider of cfg.flow, built once and reused per frame pair.

    cfg: the preprocessing config (flow, flow_resolution, flow_max_side, flow_encoding,
        image_size, image_resize are used).

    Typical use (engine): ``g = est.gray(frame)`` once per captured frame, kept until the
    next one; then ``est(g_prev, g, fps)`` gives the flow input for the current frame
    (``flow_pair: previous``).
    """

    def __init__(self, cfg: PreprocessConfig, params: tuple = FARNEBACK_PARAMS, device: str = "cpu"):
        """params: Farneback's (pyr_scale, levels, winsize, iterations, poly_n,
        poly_sigma, flags), HTF's by default; device: where torch_farneback runs."""
        self.cfg = cfg
        self.params = tuple(params)
        self.device = device
        self._dis = None
        if cfg.flow == "dis":
            self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        elif cfg.flow not in ("farneback", "torch_farneback", "none"):
            raise ValueError(f"unknown flow provider {cfg.flow!r}")

    def gray(self, rgb: np.ndarray) -> np.ndarray:
        """Grayscale uint8 frame at the flow computation resolution.

        rgb: RGB uint8 H×W×3 source frame. With ``flow_resolution: model`` it is resized
            to S×S with the frame's filter first (an already resized S×S frame may be
            passed to skip that); with ``native`` it keeps the source size.
        """
        if self.cfg.flow_resolution == "model":
            rgb = resize_frame(rgb, self.cfg)
        return to_gray(rgb)

    def raw(self, gray_a: np.ndarray, gray_b: np.ndarray) -> np.ndarray:
        """H×W×2 float32 displacement from gray_a (earlier) to gray_b (later), in pixels.

        gray_a, gray_b: same-size grayscale uint8 frames from :meth:`gray`.
        A point at (x, y) in a is at (x + raw[y, x, 0], y + raw[y, x, 1]) in b.
        """
        if gray_a.shape != gray_b.shape or gray_a.ndim != 2:
            raise ValueError(
                "expected two grayscale frames of the same size, "
                f"got {gray_a.shape} and {gray_b.shape}"
            )
        if self.cfg.flow == "none":
            return np.zeros(gray_a.shape + (2,), dtype=np.float32)
        height, width = gray_a.shape
        size = working_size(width, height, self.cfg.flow_max_side)
        if size == (width, height):
            return self._compute(gray_a, gray_b)
        # Bounded working resolution: shrink, estimate, then back to native pixels.
        small = [cv2.resize(g, size, interpolation=cv2.INTER_AREA) for g in (gray_a, gray_b)]
        flow = cv2.resize(self._compute(*small), (width, height), interpolation=cv2.INTER_LINEAR)
        flow[..., 0] *= width / size[0]
        flow[..., 1] *= height / size[1]
        return flow

    def _compute(self, gray_a: np.ndarray, gray_b: np.ndarray) -> np.ndarray:
        """The provider's H×W×2 float32 field at the frames' own size."""
        if self._dis is not None:
            return self._dis.calc(gray_a, gray_b, None)
        if self.cfg.flow == "torch_farneback":
            import torch

            from hearflow.media.flow_torch import farneback

            a, b = (torch.from_numpy(np.ascontiguousarray(g)).to(self.device).float()
                    for g in (gray_a, gray_b))
            return farneback(a, b, self.params).cpu().numpy()
        return cv2.calcOpticalFlowFarneback(gray_a, gray_b, None, *self.params)

    def __call__(self, gray_a: np.ndarray, gray_b: np.ndarray, fps: float) -> np.ndarray:
        """Encoded 2×S×S float32 flow input from gray_a (earlier) to gray_b (later).

        fps: the source frame rate (the frames are 1/fps s apart); see :func:`encode_flow`.
        """
        if self.cfg.flow == "none":
            return zero_flow(self.cfg)
        return encode_flow(self.raw(gray_a, gray_b), fps, self.cfg)
