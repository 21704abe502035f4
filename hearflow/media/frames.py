"""Video frames → model input: resize to image_size × image_size, normalise, and back.

The trainer, the evaluator and the engine all build frame inputs with these functions,
so a frame is preprocessed the same way everywhere (see :class:`PreprocessConfig`).
Frames are RGB uint8, height × width × 3.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from hearflow.media.preprocess import PreprocessConfig

_CV2_FILTERS = {
    "area": cv2.INTER_AREA,
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
}

CUBIC_A = {"bicubic": -0.75, "pil_bicubic": -0.5}
"""The cubic kernel's parameter a in each library's bicubic filter (OpenCV's INTER_CUBIC;
PIL's BICUBIC, which also widens the kernel by the scale when shrinking, i.e. antialiases).
The torch resize (hearflow.media.preprocess_torch) builds its weights from these."""

GRAY_WEIGHTS_Q15 = (9798, 19235, 3735)
"""OpenCV's RGB → gray weights for uint8 (BT.601 0.299, 0.587, 0.114 in 15-bit fixed
point, summing to 2**15): gray = (9798 R + 19235 G + 3735 B + 2**14) >> 15. What
:func:`to_gray` gets from cv2.cvtColor, written out for the torch grayscale."""


def resize_frame(image: np.ndarray, cfg: PreprocessConfig, size: tuple[int, int] | None = None) -> np.ndarray:
    """Resize to cfg.image_size × cfg.image_size (or ``size`` = (width, height)) with the filter cfg.image_resize.

    image: uint8 H×W×3 (RGB) or H×W (grayscale).
    The aspect ratio is not kept (HTF and LVS squash the frame the same way).
    ``pil_bicubic`` goes through PIL's ``Image.resize(BICUBIC)``, which is what
    torchvision's ``Resize((224, 224), BICUBIC)`` does on PIL images (HTF/EZ-VSL presets).
    An image already at the target size is returned as is, not copied.
    """
    width, height = size or (cfg.image_size, cfg.image_size)
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"expected an H×W×3 or H×W image, got shape {image.shape}")
    if image.shape[0] == height and image.shape[1] == width:
        return image
    if cfg.image_resize == "pil_bicubic":
        pil = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))
        # np.asarray on a PIL image is read-only; callers may want to write (overlays).
        return np.array(pil.resize((width, height), Image.Resampling.BICUBIC))
    try:
        interpolation = _CV2_FILTERS[cfg.image_resize]
    except KeyError:
        raise ValueError(f"unknown image_resize {cfg.image_resize!r}") from None
    return cv2.resize(image, (width, height), interpolation=interpolation)


def _stats(cfg: PreprocessConfig, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """cfg.mean and cfg.std as float32 arrays broadcasting over (..., 3, S, S)."""
    shape = (3,) + (1,) * (ndim - 1)
    mean = np.asarray(cfg.mean, dtype=np.float32).reshape(shape)
    std = np.asarray(cfg.std, dtype=np.float32).reshape(shape)
    return mean, std


def normalize_frame(rgb: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """uint8 (..., S, S, 3) → float32 (..., 3, S, S): ``(rgb / 255 - mean) / std``.

    rgb: one frame (S×S×3) or a batch (N×S×S×3) of already resized RGB frames.
    The operations run in float32 in the order torchvision's ToTensor + Normalize use,
    so the values are those the released PyTorch pipelines produced.
    """
    if rgb.ndim < 3 or rgb.shape[-1] != 3:
        raise ValueError(f"expected (..., H, W, 3) RGB frames, got shape {rgb.shape}")
    out = np.empty(rgb.shape[:-3] + (3,) + rgb.shape[-3:-1], dtype=np.float32)
    # One allocation: the HWC → CHW transpose happens in the uint8 → float32 copy.
    out[...] = np.moveaxis(rgb, -1, -3)
    mean, std = _stats(cfg, 3)
    out /= np.float32(255.0)
    out -= mean
    out /= std
    return out


def frame_input(rgb: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """One RGB uint8 frame of any size → float32 3×S×S model input (resize + normalise)."""
    return normalize_frame(resize_frame(rgb, cfg), cfg)


def denormalize_frame(x: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Inverse of :func:`normalize_frame`: float (..., 3, S, S) → uint8 (..., S, S, 3).

    Used to draw overlays on exactly what the model saw. Values are rounded and
    saturated to 0..255; a normalised uint8 frame comes back unchanged.
    """
    if x.ndim < 3 or x.shape[-3] != 3:
        raise ValueError(f"expected (..., 3, H, W) input, got shape {x.shape}")
    mean, std = _stats(cfg, 3)
    y = np.asarray(x, dtype=np.float32) * std
    y += mean
    y *= np.float32(255.0)
    np.rint(y, out=y)
    np.clip(y, 0, 255, out=y)
    return np.moveaxis(y, -3, -1).astype(np.uint8, order="C")


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 H×W×3 → grayscale uint8 H×W (OpenCV's BT.601 weights).

    A 2-D (already grayscale) image is returned as is.
    """
    if rgb.ndim == 2:
        return rgb
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
