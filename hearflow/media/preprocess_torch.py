"""The preprocessing of :mod:`hearflow.media` in torch, for inputs built on a GPU (or CPU).

Same steps, same parameters (every one read from :class:`PreprocessConfig` or from the
numpy modules' constants), same results within rounding:

* :func:`resize` — the four ``image_resize`` filters as separable tap tables computed the
  way OpenCV (INTER_AREA, INTER_LINEAR, INTER_CUBIC with a = -0.75) and PIL (BICUBIC,
  a = -0.5, kernel widened by the scale when shrinking) compute theirs; results are
  rounded and saturated like the libraries' uint8 output (PIL also rounds between its
  horizontal and vertical passes). Within 1/255 of :func:`hearflow.media.frames.resize_frame`:
  the libraries use fixed-point weights, this uses float32.
* :func:`to_gray` — OpenCV's fixed-point BT.601 weights, exactly.
* :func:`normalize` — ``(x / 255 - mean) / std`` in float32, in the same order.
* :func:`encode_flow` — both flow encodings of :func:`hearflow.media.flow.encode_flow`.
* :func:`log_spectrogram` — ``torch.stft`` with scipy's window, detrending and density
  scaling, as :func:`hearflow.media.audio.log_spectrogram` (≤ 1e-4 apart in the log domain).

Images here are float32 tensors holding 0..255 values, channels first (..., C, H, W).
Tap tables are made once per (input size, output size, filter, device) and cached as
matrices (sparse on a CPU, dense on a GPU): a resize is two matrix products.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache

import numpy as np
import torch

from hearflow.media.audio import spectrogram_window
from hearflow.media.frames import CUBIC_A, GRAY_WEIGHTS_Q15
from hearflow.media.preprocess import PreprocessConfig

FILTERS = ("area", "bilinear", "bicubic", "pil_bicubic")


# --- tap tables (numpy, float64): out[j] = sum_k w[j, k] * in[idx[j, k]] -------------------
def _table(rows: list[list[tuple[int, float]]], n_in: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-output lists of (input index, weight) → padded (idx, w) arrays; indices are
    clamped to the image (OpenCV's and PIL's border: replicate the edge pixel)."""
    k = max(len(r) for r in rows)
    idx = np.zeros((len(rows), k), np.int64)
    w = np.zeros((len(rows), k), np.float64)
    for j, row in enumerate(rows):
        for i, (src, weight) in enumerate(row):
            idx[j, i] = min(max(src, 0), n_in - 1)
            w[j, i] = weight
    return idx, w


def _cv_cubic(x: float, a: float) -> list[float]:
    """OpenCV's interpolateCubic: the 4 weights for taps sx-1..sx+2 at fraction x."""
    c0 = ((a * (x + 1) - 5 * a) * (x + 1) + 8 * a) * (x + 1) - 4 * a
    c1 = ((a + 2) * x - (a + 3)) * x * x + 1
    c2 = ((a + 2) * (1 - x) - (a + 3)) * (1 - x) * (1 - x) + 1
    return [c0, c1, c2, 1.0 - c0 - c1 - c2]


def _cv_taps(n_in: int, n_out: int, mode: str, area_linear: bool) -> list[list[tuple[int, float]]]:
    """OpenCV's resize coefficients (imgproc/resize.cpp) for INTER_LINEAR, INTER_CUBIC and
    INTER_AREA when it enlarges (``area_linear``: any axis grows, then both axes use the
    area variant of linear interpolation)."""
    inv = n_out / n_in
    scale = 1.0 / inv  # as OpenCV: 84 · (72/224) is 27 + 4e-15 but 84 · (1 / (224/72)) is 27 - 4e-15
    rows = []
    for dx in range(n_out):
        if area_linear:
            # 1. area "upscale": the fraction of the next source pixel inside this cell
            sx = math.floor(dx * scale)
            fx = float(np.float32((dx + 1) - (sx + 1) * inv))
            fx = 0.0 if fx <= 0 else fx - math.floor(fx)
        else:
            # 1. pixel centres aligned: source coordinate of this output centre
            fx = float(np.float32((dx + 0.5) * scale - 0.5))
            sx = math.floor(fx)
            fx -= sx
        if mode == "bicubic":
            rows.append(list(zip(range(sx - 1, sx + 3), _cv_cubic(fx, CUBIC_A["bicubic"]))))
        else:  # 2. linear between sx and sx + 1 (edges clamp in _table)
            rows.append([(sx, 1.0 - fx), (sx + 1, fx)])
    return rows


def _cv_area_taps(n_in: int, n_out: int) -> list[list[tuple[int, float]]]:
    """OpenCV's INTER_AREA when shrinking (computeResizeAreaTab): each output pixel is
    the mean of the source interval [dx·s, (dx+1)·s), partial pixels weighted by overlap."""
    scale = 1.0 / (n_out / n_in)
    rows = []
    for dx in range(n_out):
        f1 = dx * scale
        f2 = f1 + scale
        cell = min(scale, n_in - f1)
        s1, s2 = math.ceil(f1), math.floor(f2)
        s2 = min(s2, n_in - 1)
        s1 = min(s1, s2)
        row = []
        if s1 - f1 > 1e-3:
            row.append((s1 - 1, (s1 - f1) / cell))
        row += [(sx, 1.0 / cell) for sx in range(s1, s2)]
        if f2 - s2 > 1e-3:
            row.append((s2, min(min(f2 - s2, 1.0), cell) / cell))
        rows.append(row)
    return rows


def _pil_bicubic(x: float, a: float) -> float:
    x = abs(x)
    if x < 1:
        return ((a + 2) * x - (a + 3)) * x * x + 1
    if x < 2:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


def _pil_taps(n_in: int, n_out: int) -> list[list[tuple[int, float]]]:
    """PIL's precompute_coeffs for BICUBIC: support 2·max(scale, 1), weights normalised."""
    a = CUBIC_A["pil_bicubic"]
    scale = n_in / n_out
    filterscale = max(scale, 1.0)
    support = 2.0 * filterscale
    rows = []
    for xx in range(n_out):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)  # int(): C's truncation, as PIL
        xmax = min(int(center + support + 0.5), n_in)
        ws = [_pil_bicubic((x - center + 0.5) / filterscale, a) for x in range(xmin, xmax)]
        total = sum(ws)
        rows.append([(x, w / total if total else 0.0) for x, w in zip(range(xmin, xmax), ws)])
    return rows


@lru_cache(maxsize=64)
def tap_table(n_in: int, n_out: int, mode: str, shrinking: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(idx, w), each (n_out, K): one axis of ``mode`` from n_in to n_out pixels.

    shrinking: whether the image shrinks (or keeps its size) along both axes; OpenCV's
    INTER_AREA averages then, and interpolates on both axes otherwise.
    """
    if mode == "area":
        rows = _cv_area_taps(n_in, n_out) if shrinking else _cv_taps(n_in, n_out, mode, area_linear=True)
    elif mode in ("bilinear", "bicubic"):
        rows = _cv_taps(n_in, n_out, mode, area_linear=False)
    elif mode == "pil_bicubic":
        rows = _pil_taps(n_in, n_out)
    else:
        raise ValueError(f"unknown image_resize {mode!r}")
    return _table(rows, n_in)


_DEVICE_TABLES: dict = {}


def _remember(store: dict, key, make):
    """``store[key]``, made by ``make()`` on first use. Tensors made while a graph is being
    exported (torch.export's fake tensors, not plain ones) are used but never kept: the
    next eager call would otherwise get a tensor without data."""
    value = store.get(key)
    if value is None:
        value = make()
        first = value[0] if isinstance(value, tuple) else value
        if type(first) is torch.Tensor:
            store[key] = value
    return value


def _device_table(n_in: int, n_out: int, mode: str, shrinking: bool, device) -> torch.Tensor:
    """tap_table on ``device`` as an (n_out, n_in) float32 matrix, made once per key.

    On a CPU a sparse CSR matrix: a row has K ≤ ~13 non-zeros of n_in, and the sparse
    product is ~4× faster than a dense one or a gather on a CPU core (640×480 → 224: 3 ms
    against 13 ms). On a GPU a dense one: a product of this size takes microseconds there,
    and dense matmul is the best-trodden path (torch keeps TF32 off for it by default).
    """
    device = torch.device(device)
    sparse = device.type == "cpu" and not torch.onnx.is_in_onnx_export()  # an exported graph holds dense
    key = (n_in, n_out, mode, shrinking, str(device), sparse)

    def make():
        idx, w = tap_table(n_in, n_out, mode, shrinking)
        dense = np.zeros((n_out, n_in), np.float64)
        np.add.at(dense, (np.arange(n_out)[:, None], idx), w)  # clamped edge taps add up
        t = torch.from_numpy(dense).float()
        if sparse:
            with warnings.catch_warnings():  # "sparse CSR support is in beta": the product used here is not
                warnings.simplefilter("ignore", UserWarning)
                t = t.to_sparse_csr()
        return t.to(device)

    return _remember(_DEVICE_TABLES, key, make)


# --- frames --------------------------------------------------------------------------------
def _contract(x: torch.Tensor, m: torch.Tensor, axis: int) -> torch.Tensor:
    """Resample ``x`` along ``axis`` with the (n_out, n_in) matrix m: a view with n_out there.

    The axis is moved to the front by one copy into a contiguous float32 buffer, which is
    also the uint8 → float conversion (a single pass over the frame however it is laid out:
    5× faster on a CPU than converting, then transposing for the product).
    """
    moved = x.movedim(axis, 0)
    flat = torch.empty(moved.shape, dtype=torch.float32, device=x.device)
    flat.copy_(moved)
    out = m @ flat.view(moved.shape[0], -1)  # (n_out, rest)
    return out.view((m.shape[0],) + moved.shape[1:]).movedim(0, axis)


def _along_width(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return _contract(x, m, x.dim() - 1)


def _along_height(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return _contract(x, m, x.dim() - 2)


def resample(x: torch.Tensor, size, mode: str, quantize: bool = True) -> torch.Tensor:
    """(..., H, W) (uint8 or float, any strides) → float32 (..., OH, OW) with filter ``mode``
    (see the module docstring).

    size: S for S × S, or (OH, OW).
    quantize: round and saturate to 0..255 as the libraries' uint8 output is (and, for PIL,
        between the passes); False for float data (flow fields: OpenCV keeps float).
    An image already at that size is returned as is (as float32).
    """
    oh, ow = (size, size) if isinstance(size, int) else size
    h, w = x.shape[-2:]
    if (h, w) == (oh, ow):
        return x if x.dtype == torch.float32 else x.float()
    shrinking = h >= oh and w >= ow
    wx = _device_table(w, ow, mode, shrinking, x.device)
    wy = _device_table(h, oh, mode, shrinking, x.device)
    if mode != "pil_bicubic":  # OpenCV: horizontal, then vertical, in one float computation
        x = _along_height(_along_width(x, wx), wy)
        return x.round_().clamp_(0, 255) if quantize else x
    # PIL keeps the first pass as 8-bit, so the order counts: it runs first the pass that
    # leaves the smaller intermediate image (to a square: vertical first when taller than wide)
    vertical_first = oh * w < h * ow
    first, second = ((_along_height, wy), (_along_width, wx)) if vertical_first else ((_along_width, wx), (_along_height, wy))
    # PIL's fixed point rounds halves up (ties are common when enlarging: 4/7 scales)
    x = first[0](x, first[1])
    if quantize:
        x = x.add_(0.5).floor_().clamp_(0, 255)
    x = second[0](x, second[1])
    return x.add_(0.5).floor_().clamp_(0, 255) if quantize else x


def resize(x: torch.Tensor, cfg: PreprocessConfig) -> torch.Tensor:
    """The frame filter of cfg: (..., H, W) 0..255 → float32 (..., S, S), S = cfg.image_size.
    A channels-last frame may be passed as ``rgb.movedim(-1, -3)`` (uint8, no copy)."""
    return resample(x, cfg.image_size, cfg.image_resize, quantize=True)


def to_chw(rgb: torch.Tensor) -> torch.Tensor:
    """uint8 (..., H, W, 3) → float32 (..., 3, H, W), values 0..255."""
    return rgb.movedim(-1, -3).float()


def to_gray(x: torch.Tensor) -> torch.Tensor:
    """float (..., 3, H, W) RGB 0..255 → (..., H, W) gray, as cv2.cvtColor(RGB2GRAY) on uint8.

    Integer arithmetic in float32 is exact here (sums stay below 2**24), so the result
    equals OpenCV's fixed-point ``(9798 R + 19235 G + 3735 B + 2**14) >> 15``.
    """
    r, g, b = GRAY_WEIGHTS_Q15
    x = x.float()  # a uint8 view is fine too (the sums need more than 8 bits)
    y = x[..., 0, :, :] * r + x[..., 1, :, :] * g + x[..., 2, :, :] * b
    return torch.floor_divide(y + (1 << 14), 1 << 15)


_STATS: dict = {}


def _stats(cfg: PreprocessConfig, device) -> tuple[torch.Tensor, torch.Tensor]:
    """cfg.mean and cfg.std as (3, 1, 1) tensors on ``device``, made once (no upload per frame)."""
    return _remember(_STATS, (cfg.mean, cfg.std, str(device)), lambda: tuple(
        torch.tensor(v, dtype=torch.float32).view(3, 1, 1).to(device) for v in (cfg.mean, cfg.std)))


def normalize(x: torch.Tensor, cfg: PreprocessConfig) -> torch.Tensor:
    """float (..., 3, S, S) 0..255 → ``(x / 255 - mean) / std`` (media.frames.normalize_frame)."""
    mean, std = _stats(cfg, x.device)
    return (x / 255.0 - mean) / std


# --- flow ----------------------------------------------------------------------------------
def encode_flow(raw: torch.Tensor, fps: float, cfg: PreprocessConfig) -> torch.Tensor:
    """(N, H, W, 2) (or (H, W, 2)) displacement in pixels → (N, 2, S, S) model input in
    cfg.flow_encoding, as :func:`hearflow.media.flow.encode_flow` (see there)."""
    if raw.dim() == 3:
        raw = raw[None]
    if raw.dim() != 4 or raw.shape[-1] != 2:
        raise ValueError(f"expected an (N,) H×W×2 flow field, got shape {tuple(raw.shape)}")
    size = cfg.image_size
    height, width = raw.shape[1:3]
    x = raw.permute(0, 3, 1, 2).float()
    if cfg.flow_encoding == "htf_uint8":
        # the 8-bit image HTF wrote (round, saturate: negative motion is 0), resized like a frame
        x = resize(x.round().clamp_(0, 255), cfg)
        return x / 255.0
    if cfg.flow_encoding != "signed":
        raise ValueError(f"unknown flow_encoding {cfg.flow_encoding!r}")
    if not torch.is_tensor(fps) and (fps is None or not fps > 0):  # a tensor: an exported graph's input
        raise ValueError(f"fps must be positive, got {fps}")
    x = resample(x, size, "area", quantize=False)  # float field: OpenCV INTER_AREA, no rounding
    k = (fps if torch.is_tensor(fps) else float(fps)) / cfg.flow_ref_fps / cfg.flow_clip
    # out of place: never scales the caller's field, and traces into an exported graph
    x = torch.cat([x[:, :1] * (k * size / width), x[:, 1:] * (k * size / height)], 1)
    return x.clamp_(-1.0, 1.0)


# --- audio ---------------------------------------------------------------------------------
_WINDOWS: dict = {}


def _window(nperseg: int, device) -> tuple[torch.Tensor, torch.Tensor, float]:
    """scipy's spectrogram window on ``device``, its rfft (for detrending) and its power."""
    def make():
        win, power = spectrogram_window(nperseg)
        w = torch.from_numpy(np.array(win)).to(device)
        return w, torch.fft.rfft(w.double()).to(torch.complex64), power

    return _remember(_WINDOWS, (nperseg, str(device)), make)


def log_spectrogram(wave: torch.Tensor, rate: int, cfg: PreprocessConfig) -> torch.Tensor:
    """float (..., n) samples → float32 (..., F, T), as :func:`hearflow.media.audio.log_spectrogram`.

    1. torch.stft of the raw segments with scipy's Tukey(0.25) window (no centring);
    2. scipy's detrend='constant' by linearity: rfft(w·(x - m)) = rfft(w·x) - m·rfft(w),
       m the mean of each segment;
    3. one-sided density scaling, log(S + eps) / divisor from cfg.
    """
    nperseg, hop = cfg.nperseg, cfg.nperseg - cfg.noverlap
    x = wave.float()
    if x.dim() == 0 or x.shape[-1] < nperseg:
        raise ValueError(f"need at least nperseg={nperseg} samples, got shape {tuple(x.shape)}")
    lead = x.shape[:-1]
    x = x.reshape(-1, x.shape[-1])
    win, win_fft, win_power = _window(nperseg, x.device)
    spec = torch.stft(x, n_fft=nperseg, hop_length=hop, window=win, center=False, onesided=True,
                      return_complex=True)  # (B, F, T)
    means = x.unfold(-1, nperseg, hop).mean(-1)  # (B, T)
    spec = spec - win_fft[:, None] * means[:, None, :]
    power = spec.real.square() + spec.imag.square()
    power *= 1.0 / (rate * win_power)
    power[:, 1 : None if nperseg % 2 else -1] *= 2.0  # fold negative frequencies (not DC/Nyquist)
    out = torch.log(power + cfg.log_eps) / cfg.log_divisor
    return out.reshape(lead + out.shape[-2:])
