"""Object sprites: each class's shape and texture as an image and mask, and how much of it is in frame."""

from __future__ import annotations

import math

import cv2
import numpy as np

from hearflow.media.synth.config import CLASS_STYLES
from hearflow.media.synth.spec import ObjectSpec


def _polygon(shape: str) -> np.ndarray | None:
    """Vertices in the unit square for polygon shapes (None for analytic shapes)."""
    if shape == "triangle":
        return np.array([(0.5, 0.0), (1.0, 1.0), (0.0, 1.0)])
    if shape == "diamond":
        return np.array([(0.5, 0.0), (1.0, 0.5), (0.5, 1.0), (0.0, 0.5)])
    if shape == "hexagon":
        return np.array([(0.25, 0.0), (0.75, 0.0), (1.0, 0.5), (0.75, 1.0), (0.25, 1.0), (0.0, 0.5)])
    if shape == "cross":
        a, b = 0.32, 0.68
        return np.array([(a, 0), (b, 0), (b, a), (1, a), (1, b), (b, b), (b, 1), (a, 1), (a, b), (0, b), (0, a), (a, a)])
    if shape == "star":
        k = np.arange(10)
        r = np.where(k % 2 == 0, 1.0, 0.42)
        ang = -np.pi / 2 + k * np.pi / 5
        pts = np.stack([r * np.cos(ang), r * np.sin(ang)], axis=1)
        return (pts - pts.min(0)) / (pts.max(0) - pts.min(0))  # stretch to fill the box
    return None


def shape_mask(shape: str, w: int, h: int) -> np.ndarray:
    """Boolean (h, w) mask of ``shape`` filling the w×h box: its tight box is the whole array."""
    poly = _polygon(shape)
    if poly is not None:
        mask = np.zeros((h, w), np.uint8)
        pts = np.round(poly * [w - 1, h - 1]).astype(np.int32)
        cv2.fillPoly(mask, [pts], 1)
        return mask.astype(bool)
    if shape == "square":
        return np.ones((h, w), bool)
    # ellipse through the pixel centres of the first/last row and column, so it fills the box
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    rx, ry = max((w - 1) / 2, 0.5), max((h - 1) / 2, 0.5)
    d = ((xx - (w - 1) / 2) / rx) ** 2 + ((yy - (h - 1) / 2) / ry) ** 2
    mask = d <= 1.0 + 1e-9
    if shape == "ring":
        mask &= d >= 0.55**2
    return mask


def make_sprite(obj: ObjectSpec) -> tuple[np.ndarray, np.ndarray]:
    """The object's look: (rgb (h, w, 3) uint8, mask (h, w) bool)."""
    style = CLASS_STYLES[obj.cls]
    h, w = obj.h, obj.w
    mask = shape_mask(style.shape, w, h)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c1 = np.array(obj.colour, np.float32)
    c2 = np.array(obj.colour2, np.float32)
    p = max(obj.pattern, 3.0)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    if style.texture == "stripes":
        u = xx * math.cos(obj.angle) + yy * math.sin(obj.angle)
        t = (np.mod(u / p, 1.0) < 0.5).astype(np.float32)
    elif style.texture == "dots":
        dx = np.mod(xx, p) - p / 2
        dy = np.mod(yy, p) - p / 2
        t = (dx * dx + dy * dy < (0.3 * p) ** 2).astype(np.float32)
    elif style.texture == "checker":
        t = ((np.floor(xx / p) + np.floor(yy / p)) % 2).astype(np.float32)
    elif style.texture == "rings":
        r = np.hypot(xx - cx, yy - cy)
        t = (np.mod(r / p, 1.0) < 0.5).astype(np.float32)
    elif style.texture == "radial":
        r = np.hypot((xx - cx) / max(cx, 1), (yy - cy) / max(cy, 1))
        t = np.clip(r, 0, 1) ** 1.5
    else:  # solid, lit from the top-left so it is not perfectly flat
        t = 0.25 * ((xx / max(w - 1, 1)) + (yy / max(h - 1, 1))) / 2
    rgb = c1 * (1 - t[..., None]) + c2 * t[..., None]
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8), mask


def visible_fraction(mask: np.ndarray, x: int, y: int, width: int, height: int) -> float:
    """Fraction of a sprite mask's pixels inside a width×height frame when drawn at (x, y)."""
    h, w = mask.shape
    x0, x1 = max(0, -x), min(w, width - x)
    y0, y1 = max(0, -y), min(h, height - y)
    if x0 >= x1 or y0 >= y1:
        return 0.0
    return float(mask[y0:y1, x0:x1].sum()) / max(1, int(mask.sum()))


def visible_box(mask: np.ndarray, x: int, y: int, width: int, height: int) -> tuple[int, int, int, int] | None:
    """Tight box [x1, y1, x2, y2) of a sprite mask's pixels inside the frame; None if none."""
    h, w = mask.shape
    x0, x1 = max(0, -x), min(w, width - x)
    y0, y1 = max(0, -y), min(h, height - y)
    if x0 >= x1 or y0 >= y1:
        return None
    m = mask[y0:y1, x0:x1]
    cols = np.flatnonzero(m.any(axis=0))
    rows = np.flatnonzero(m.any(axis=1))
    if cols.size == 0:
        return None
    return (x + x0 + int(cols[0]), y + y0 + int(rows[0]), x + x0 + int(cols[-1]) + 1, y + y0 + int(rows[-1]) + 1)
