"""Farneback dense optical flow written with torch ops: batched, any device, float32.

It follows ``cv2.calcOpticalFlowFarneback`` (Farnebäck 2003, as OpenCV implements it)
step for step, so a model trained with OpenCV's flow on CPUs can be served with this one
on a GPU (or the other way round) and see the same numbers, to within float rounding:

1. Pyramid: every level is made from the full-resolution frame, blurred with a Gaussian
   of sigma (1/scale - 1)/2 (reflect-101 border; level 0 gets OpenCV's fixed 3-tap
   [1/4, 1/2, 1/4] blur) and resized bilinearly to round(size × scale).
2. Polynomial expansion: separable Gaussian-weighted least squares (half-size poly_n,
   sigma poly_sigma, replicated border) gives 5 coefficients per pixel and frame.
3. Update matrices: the second frame's coefficients sampled bilinearly at the displaced
   position, averaged with the first's; values within 5 pixels of the edge attenuated.
4. Flow update: the matrices are box-filtered (or Gaussian-filtered with
   OPTFLOW_FARNEBACK_GAUSSIAN) over winsize × winsize, a 2 × 2 system solved per pixel;
   repeated ``iterations`` times, then the flow is upsampled to the next finer level.

Tensors are (N, C, H, W) inside; :func:`farneback` takes (N, H, W) or (H, W) frames.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from hearflow.media.flow_params import FARNEBACK_PARAMS, OPTFLOW_FARNEBACK_GAUSSIAN, working_size
from hearflow.media.preprocess import PreprocessConfig
from hearflow.media.preprocess_torch import resample

__all__ = ["FARNEBACK_PARAMS", "OPTFLOW_FARNEBACK_GAUSSIAN", "farneback", "raw_flow"]
MIN_LEVEL_SIZE = 32  # OpenCV stops the pyramid before a side would drop below this
CPU_SHIFTED_SUMS = True  # filter by shifted sums on CPUs (faster there); False: convolutions
BORDER = (0.14, 0.14, 0.4472, 0.4472, 0.4472)  # OpenCV's edge attenuation, outermost first


def farneback(prev: torch.Tensor, curr: torch.Tensor, params=FARNEBACK_PARAMS,
              init_flow: torch.Tensor | None = None) -> torch.Tensor:
    """Dense flow from ``prev`` to ``curr``, as ``cv2.calcOpticalFlowFarneback``.

    prev, curr: float32 grayscale frames with values 0..255, (N, H, W) or (H, W), on any
        device (uint8 is converted).
    params: (pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, flags) in
        OpenCV's order; flags may hold OPTFLOW_FARNEBACK_GAUSSIAN.
    init_flow: optional (N, H, W, 2) or (H, W, 2) first guess (OpenCV's
        OPTFLOW_USE_INITIAL_FLOW); used whenever given.
    Returns (N, H, W, 2) float32 (or (H, W, 2) for 2-D input) displacement (x, y) in
    pixels: a point (x, y) in prev is at (x + fx, y + fy) in curr.
    """
    pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, flags = params
    if not 0 < pyr_scale < 1:
        raise ValueError(f"pyr_scale must be in (0, 1), got {pyr_scale}")
    single = prev.dim() == 2
    prev, curr = _batch(prev), _batch(curr)
    if prev.shape != curr.shape:
        raise ValueError(f"frames differ in shape: {tuple(prev.shape)} and {tuple(curr.shape)}")
    n, height, width = prev.shape
    frames = torch.cat([prev, curr]).unsqueeze(1)  # (2N, 1, H, W)
    expand = _poly_kernels(int(poly_n), float(poly_sigma), frames.device)
    flow = None
    for k in range(_num_levels(width, height, pyr_scale, levels), -1, -1):
        scale = _level_scale(pyr_scale, k)
        size = (_round(height * scale), _round(width * scale))
        if flow is not None:
            flow = _resize_bilinear(flow, size) * (1.0 / pyr_scale)
        elif init_flow is not None:
            flow = _initial_flow(init_flow, n, (height, width), size, scale, frames.device)
        else:
            flow = frames.new_zeros((n, 2) + size)
        coeffs = _poly_expand(_pyramid_level(frames, scale, size), expand)
        flow = _refine(coeffs[:n], coeffs[n:], flow, int(winsize), int(iterations), flags)
    flow = flow.permute(0, 2, 3, 1).contiguous()
    return flow[0] if single else flow


def _batch(frames: torch.Tensor) -> torch.Tensor:
    """(H, W) or (N, H, W) frames → (N, H, W) float32."""
    if frames.dim() == 2:
        frames = frames.unsqueeze(0)
    if frames.dim() != 3:
        raise ValueError(f"expected (N, H, W) or (H, W) frames, got shape {tuple(frames.shape)}")
    return frames.to(torch.float32)


def _round(value: float) -> int:
    """cvRound: nearest integer, halves to even (lrint)."""
    return int(np.rint(value))


def _level_scale(pyr_scale: float, k: int) -> float:
    """pyr_scale ** k by repeated multiplication, as OpenCV computes it."""
    scale = 1.0
    for _ in range(k):
        scale *= pyr_scale
    return scale


def _num_levels(width: int, height: int, pyr_scale: float, levels: int) -> int:
    """Index of the coarsest level: the first ``levels`` whose sides stay ≥ 32."""
    scale, k = 1.0, 0
    while k < levels:
        scale *= pyr_scale
        if width * scale < MIN_LEVEL_SIZE or height * scale < MIN_LEVEL_SIZE:
            break
        k += 1
    return k


# --------------------------------------------------------------------------- 1. pyramid
def _gaussian_kernel(ksize: int, sigma: float) -> np.ndarray:
    """cv2.getGaussianKernel(ksize, sigma) as float32 (sigma ≤ 0: OpenCV's fixed 3-tap)."""
    if sigma <= 0 and ksize == 3:
        return np.array([0.25, 0.5, 0.25], dtype=np.float32)
    if sigma <= 0:
        sigma = 0.3 * ((ksize - 1) * 0.5 - 1) + 0.8
    x = np.arange(ksize, dtype=np.float64) - (ksize - 1) / 2
    g = np.exp(-x * x / (2 * sigma * sigma))
    return (g / g.sum()).astype(np.float32)


def _correlate(img: torch.Tensor, taps: torch.Tensor, dim: int, mode: str) -> torch.Tensor:
    """Correlate (B, C, H, W) along dim (2: vertical, 3: horizontal) with taps (K,), the
    same for every channel, or (C, K), one row per channel; border by ``mode`` padding."""
    c, r = img.shape[1], taps.shape[-1] // 2
    taps = taps.expand(c, -1)
    pad = (0, 0, r, r) if dim == 2 else (r, r, 0, 0)
    img = F.pad(img, pad, mode=mode)
    if img.device.type != "cpu" or not CPU_SHIFTED_SUMS:
        shape = (c, 1, -1, 1) if dim == 2 else (c, 1, 1, -1)
        return F.conv2d(img, taps.reshape(shape), groups=c)
    # CPUs: a sum of shifted slices beats a depthwise convolution there.
    length = img.shape[dim] - 2 * r
    w = taps.T.reshape(-1, 1, c, 1, 1)
    out = img.narrow(dim, 0, length) * w[0]
    for i in range(1, 2 * r + 1):
        out.addcmul_(img.narrow(dim, i, length), w[i])
    return out


def _separable(img: torch.Tensor, kx: torch.Tensor, ky: torch.Tensor, mode: str) -> torch.Tensor:
    """Correlate every channel of (B, C, H, W) with ky vertically, then kx horizontally."""
    return _correlate(_correlate(img, ky, 2, mode), kx, 3, mode)


def _pyramid_level(frames: torch.Tensor, scale: float, size: tuple[int, int]) -> torch.Tensor:
    """The frames blurred (sigma from scale, reflect-101 border) and resized to ``size``."""
    sigma = (1.0 / scale - 1) * 0.5
    ksize = max(_round(sigma * 5) | 1, 3)
    k = torch.from_numpy(_gaussian_kernel(ksize, sigma)).to(frames.device)
    blurred = _separable(frames, k, k, "reflect")
    if tuple(blurred.shape[-2:]) == size:
        return blurred
    return _resize_bilinear(blurred, size)


def _resize_bilinear(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """cv2.resize INTER_LINEAR (half-pixel centres, edge clamped, no antialiasing)."""
    return F.interpolate(img, size=size, mode="bilinear", align_corners=False, antialias=False)


def _initial_flow(init_flow, n, full, size, scale, device) -> torch.Tensor:
    """The caller's first guess at the coarsest level: area-resized and scaled (OpenCV)."""
    init = init_flow.to(device=device, dtype=torch.float32)
    if init.dim() == 3:
        init = init.unsqueeze(0)
    if tuple(init.shape) != (n,) + full + (2,):
        raise ValueError(f"init_flow must have shape {(n,) + full + (2,)}, got {tuple(init.shape)}")
    return resample(init.permute(0, 3, 1, 2), size, "area", quantize=False) * scale


# --------------------------------------------------------------------------- 2. polynomial expansion
def _poly_kernels(n: int, sigma: float, device) -> dict:
    """Gaussian, x·Gaussian and x²·Gaussian taps over -n..n and the inverse-Gram factors."""
    if sigma < np.finfo(np.float32).eps:
        sigma = n * 0.3
    x = np.arange(-n, n + 1, dtype=np.float64)
    g = np.exp(-x * x / (2 * sigma * sigma)).astype(np.float32).astype(np.float64)
    g = (g / g.sum()).astype(np.float32)
    xg, xxg = (x * g).astype(np.float32), (x * x * g).astype(np.float32)
    gd, xd = g.astype(np.float64), x
    # Gram matrix of the basis (1, x, y, x², y², xy) under the separable weights.
    gram = np.zeros((6, 6))
    w2 = np.outer(gd, gd)
    xx, yy = np.meshgrid(xd, xd)
    gram[0, 0] = w2.sum()
    gram[1, 1] = (w2 * xx**2).sum()
    gram[3, 3] = (w2 * xx**4).sum()
    gram[5, 5] = (w2 * xx**2 * yy**2).sum()
    gram[2, 2] = gram[0, 3] = gram[0, 4] = gram[3, 0] = gram[4, 0] = gram[1, 1]
    gram[4, 4] = gram[3, 3]
    gram[3, 4] = gram[4, 3] = gram[5, 5]
    inv = np.linalg.inv(gram)
    taps = torch.from_numpy(np.stack([g, xg, xxg])).to(device)  # (3, 2n+1)
    return {"taps": taps, "ig": (inv[1, 1], inv[0, 3], inv[3, 3], inv[5, 5])}


def _poly_expand(img: torch.Tensor, expand: dict) -> torch.Tensor:
    """(B, 1, H, W) image → (B, 5, H, W) coefficients in OpenCV's channel order:
    y, x (linear terms), yy, xx (quadratic terms) and xy."""
    taps = expand["taps"]
    # Vertical pass: 1, y and y² moments of each column (replicated border).
    col = _correlate(img.expand(-1, 3, -1, -1), taps, 2, "replicate")
    # Horizontal pass: b1 = g·1, b2 = xg·1, b4 = xxg·1, b3 = g·y, b6 = xg·y, b5 = g·y².
    rows = col[:, [0, 0, 0, 1, 1, 2]]
    b1, b2, b4, b3, b6, b5 = _correlate(rows, taps[[0, 1, 2, 0, 1, 0]], 3, "replicate").unbind(1)
    ig11, ig03, ig33, ig55 = (float(v) for v in expand["ig"])
    return torch.stack([b3 * ig11, b2 * ig11, b1 * ig03 + b5 * ig33,
                        b1 * ig03 + b4 * ig33, b6 * ig55], dim=1)


# --------------------------------------------------------------------------- 3. update matrices
def _border_scale(height: int, width: int, device) -> torch.Tensor:
    """(H, W) attenuation: OpenCV's BORDER weights within 5 pixels of each edge, else 1."""
    def axis(size: int) -> torch.Tensor:
        w = torch.ones(size, dtype=torch.float32)
        border = torch.tensor(BORDER, dtype=torch.float32)
        i = torch.arange(size)
        near_lo, near_hi = i < len(BORDER), i >= size - len(BORDER)
        w[near_lo] *= border[i[near_lo]]
        w[near_hi] *= border[size - 1 - i[near_hi]]
        return w
    return (axis(height).unsqueeze(1) * axis(width).unsqueeze(0)).to(device)


def _sample(r1: torch.Tensor, fx: torch.Tensor, fy: torch.Tensor):
    """Bilinear sample of (N, 5, H, W) r1 at (fx, fy); also the mask where all four
    neighbours lie inside (OpenCV uses the sample only there)."""
    n, c, h, w = r1.shape
    x0, y0 = torch.floor(fx), torch.floor(fy)
    ax, ay = fx - x0, fy - y0
    inside = (x0 >= 0) & (x0 < w - 1) & (y0 >= 0) & (y0 < h - 1)
    xi = x0.clamp(0, w - 2).long()
    yi = y0.clamp(0, h - 2).long()
    flat = r1.reshape(n, c, h * w)

    def at(dy: int, dx: int) -> torch.Tensor:
        idx = ((yi + dy) * w + (xi + dx)).reshape(n, 1, h * w).expand(n, c, h * w)
        return flat.gather(2, idx).reshape(n, c, h, w)

    a00, a01 = ((1 - ax) * (1 - ay)).unsqueeze(1), (ax * (1 - ay)).unsqueeze(1)
    a10, a11 = ((1 - ax) * ay).unsqueeze(1), (ax * ay).unsqueeze(1)
    out = a00 * at(0, 0) + a01 * at(0, 1) + a10 * at(1, 0) + a11 * at(1, 1)
    return out, inside.unsqueeze(1)


def _update_matrices(r0: torch.Tensor, r1: torch.Tensor, flow: torch.Tensor,
                     border: torch.Tensor) -> torch.Tensor:
    """(N, 5, H, W) per-pixel terms G11, G12, G22, h1, h2 of the flow equations."""
    _, _, h, w = flow.shape
    dx, dy = flow[:, 0], flow[:, 1]
    gx = torch.arange(w, device=flow.device, dtype=torch.float32)
    gy = torch.arange(h, device=flow.device, dtype=torch.float32).unsqueeze(1)
    s, inside = _sample(r1, gx + dx, gy + dy)
    # Inside: average both frames' quadratic terms; outside: the first frame's alone.
    zero = torch.zeros_like(s[:, :2])
    inner = torch.cat([s[:, :2], (r0[:, 2:4] + s[:, 2:4]) * 0.5, (r0[:, 4:] + s[:, 4:]) * 0.25], 1)
    outer = torch.cat([zero, r0[:, 2:4], r0[:, 4:] * 0.5], 1)
    s = torch.where(inside, inner, outer)
    r2 = (r0[:, 0] - s[:, 0]) * 0.5 + s[:, 2] * dy + s[:, 4] * dx
    r3 = (r0[:, 1] - s[:, 1]) * 0.5 + s[:, 4] * dy + s[:, 3] * dx
    r2, r3, r4, r5, r6 = r2 * border, r3 * border, s[:, 2] * border, s[:, 3] * border, s[:, 4] * border
    return torch.stack([r4 * r4 + r6 * r6, (r4 + r5) * r6, r5 * r5 + r6 * r6,
                        r4 * r2 + r6 * r3, r6 * r2 + r5 * r3], dim=1)


# --------------------------------------------------------------------------- 4. flow update
def _window(winsize: int, gaussian: bool, device) -> torch.Tensor:
    """1-D taps of the winsize window: box (1/winsize each) or OpenCV's Gaussian (σ = 0.3·m)."""
    m = winsize // 2
    if not gaussian:
        return torch.full((2 * m + 1,), 1.0 / winsize, dtype=torch.float32, device=device)
    sigma = m * 0.3
    i = np.arange(1, m + 1, dtype=np.float64)
    tail = np.exp(-i * i / (2 * sigma * sigma)).astype(np.float32).astype(np.float64)
    k = np.concatenate([tail[::-1], [1.0], tail])
    return torch.from_numpy((k / (1 + 2 * tail.sum())).astype(np.float32)).to(device)


def _solve(matrices: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Filter the terms over the window (replicated border) and solve G·d = h per pixel.

    float32 throughout (every device has it); OpenCV sums the window in double, which
    moves the result by about a millionth of a pixel."""
    g11, g12, g22, h1, h2 = _separable(matrices, window, window, "replicate").unbind(1)
    idet = 1.0 / (g11 * g22 - g12 * g12 + 1e-3)
    return torch.stack([(g11 * h2 - g12 * h1) * idet, (g22 * h1 - g12 * h2) * idet], 1).float()


def _refine(r0, r1, flow, winsize: int, iterations: int, flags: int) -> torch.Tensor:
    """``iterations`` flow updates at one pyramid level, starting from ``flow``."""
    border = _border_scale(flow.shape[2], flow.shape[3], flow.device)
    window = _window(winsize, bool(flags & OPTFLOW_FARNEBACK_GAUSSIAN), flow.device)
    matrices = _update_matrices(r0, r1, flow, border)
    for i in range(iterations):
        flow = _solve(matrices, window)
        if i < iterations - 1:
            matrices = _update_matrices(r0, r1, flow, border)
    return flow


# --------------------------------------------------------------------------- with a PreprocessConfig
def raw_flow(gray_a: torch.Tensor, gray_b: torch.Tensor, cfg: PreprocessConfig) -> torch.Tensor:
    """(N, H, W, 2) displacement in pixels from gray_a (earlier) to gray_b, (N, H, W) float
    0..255 grays, as :meth:`hearflow.media.flow.FlowEstimator.raw` computes it: with
    cfg.flow_max_side the grays are shrunk (area) to the bounded working size and the field
    is resized back (bilinear) and rescaled to the grays' pixel scale."""
    h, w = gray_a.shape[-2:]
    sw, sh = working_size(w, h, cfg.flow_max_side)
    if (sw, sh) == (w, h):
        return farneback(gray_a, gray_b, FARNEBACK_PARAMS)
    small = [resample(g, (sh, sw), "area") for g in (gray_a, gray_b)]
    field = resample(farneback(small[0], small[1], FARNEBACK_PARAMS).permute(0, 3, 1, 2), (h, w), "bilinear",
                     quantize=False)
    field = torch.cat([field[:, :1] * (w / sw), field[:, 1:] * (h / sh)], 1)
    return field.permute(0, 2, 3, 1)
