"""Drawing a localization result on its frame (the overlay window, the annotated video).

The map's *shape* comes from its min–max normalisation (so a weak but clear peak is
visible), its *strength* from the confidence: the heatmap is blended with weight
``alpha × confidence``, so silence (confidence ≈ 0) leaves the frame untouched instead
of painting a confident-looking blob on a quiet scene. Pass ``confidence=None`` for a
constant blend weight.

Everything runs on uint8 images with OpenCV (the m×n map is normalised first and only
then upsampled): about 1.4 ms per 640×480 frame on one core (0.1 ms at confidence 0).
"""

from __future__ import annotations

import cv2
import numpy as np

# JET as a lookup table, in both channel orders: cv2.applyColorMap takes a user table,
# so colouring an RGB frame needs no conversion round trip.
_JET_BGR = cv2.applyColorMap(np.arange(256, dtype=np.uint8).reshape(256, 1), cv2.COLORMAP_JET)
_JET_RGB = np.ascontiguousarray(_JET_BGR[..., ::-1])

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def normalize_map(heat_map: np.ndarray) -> np.ndarray:
    """Min–max normalise a map to uint8 0..255 (a flat map becomes all zeros)."""
    m = np.asarray(heat_map, dtype=np.float32)
    m = np.nan_to_num(m, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(m.min()), float(m.max())
    if hi - lo < 1e-6:
        return np.zeros(m.shape, np.uint8)
    return ((m - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def colorize(heat_map: np.ndarray, size: tuple[int, int], order: str = "rgb") -> np.ndarray:
    """The map min–max normalised, upsampled bicubically to size (w, h) and JET-coloured.

    order: channel order of the result, 'rgb' or 'bgr'.
    """
    u8 = cv2.resize(normalize_map(heat_map), size, interpolation=cv2.INTER_CUBIC)
    return cv2.applyColorMap(u8, _JET_RGB if order == "rgb" else _JET_BGR)


def overlay(
    rgb: np.ndarray,
    heat_map: np.ndarray,
    peak: tuple[float, float] | None,
    text_lines: list[str] | tuple[str, ...] = (),
    alpha: float = 0.45,
    confidence: float | None = None,
    order: str = "rgb",
) -> np.ndarray:
    """Blend the heatmap onto the frame, mark the peak and write text; returns a new image.

    rgb: H×W×3 uint8 frame (not modified), in channel order ``order``.
    heat_map: m×n map (any float range; only its shape is shown, see the module doc).
    peak: (x, y) normalised to [0, 1] of the frame, or None for no marker.
    text_lines: lines written top-left (fps, latency, confidence, ...).
    alpha: blend weight of the heatmap at full confidence.
    confidence: in [0, 1], scales the blend weight; None = constant ``alpha``.
    order: 'rgb' or 'bgr', the channel order of ``rgb`` and of the result.
    """
    h, w = rgb.shape[:2]
    weight = alpha if confidence is None else alpha * float(np.clip(np.nan_to_num(confidence), 0.0, 1.0))
    if weight > 0.0:
        heat = colorize(heat_map, (w, h), order)
        out = cv2.addWeighted(rgb, 1.0 - weight, heat, weight, 0.0)
    else:
        out = rgb.copy()
    scale = max(h, w) / 640.0  # marker and text grow with the frame
    if peak is not None and all(np.isfinite(peak)):
        px, py = int(round(peak[0] * w)), int(round(peak[1] * h))
        r = max(4, int(12 * scale))
        # black under white: visible on any background, same in RGB and BGR
        cv2.drawMarker(out, (px, py), (0, 0, 0), cv2.MARKER_CROSS, 2 * r + 4, max(3, int(4 * scale)), cv2.LINE_AA)
        cv2.circle(out, (px, py), r, (0, 0, 0), max(3, int(4 * scale)), cv2.LINE_AA)
        cv2.drawMarker(out, (px, py), (255, 255, 255), cv2.MARKER_CROSS, 2 * r + 4, max(1, int(2 * scale)), cv2.LINE_AA)
        cv2.circle(out, (px, py), r, (255, 255, 255), max(1, int(2 * scale)), cv2.LINE_AA)
    font_scale = 0.5 * max(scale, 0.7)  # stays legible on small frames
    line_h = int(22 * max(scale, 0.7))
    lines = [str(t) for t in text_lines if t]
    if lines:
        # white on a solid dark box: readable on any frame (an outline drawn with a
        # thicker stroke does not line up: OpenCV 5's advance depends on thickness)
        text_w = max(cv2.getTextSize(t, _FONT, font_scale, 1)[0][0] for t in lines)
        cv2.rectangle(out, (2, 2), (14 + text_w, 8 + line_h * len(lines)), (0, 0, 0), cv2.FILLED)
        for i, line in enumerate(lines):
            org = (8, 4 + line_h * (i + 1) - line_h // 4)
            cv2.putText(out, line, org, _FONT, font_scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def status_lines(result, fps: float | None = None, latency_ms: float | None = None) -> list[str]:
    """The usual text for a Result: rate, latency, confidence, peak (and warming up)."""
    parts = []
    if fps is not None:
        parts.append(f"{fps:5.1f} fps")
    if latency_ms is not None:
        parts.append(f"latency {latency_ms:4.0f} ms")
    lines = ["  ".join(parts)] if parts else []
    lines.append(f"conf {result.confidence:.2f}  peak {result.peak_value:+.2f}  t {result.t_media:7.2f} s")
    if result.warming_up:
        lines.append("warming up (audio window incomplete)")
    return lines


def overlay_jpeg(rgb: np.ndarray, heat_map: np.ndarray, peak, alpha: float = 0.45,
                 confidence: float | None = None, quality: int = 80) -> bytes:
    """The overlay (no text: viewers show the numbers themselves) as JPEG bytes, what the
    ZeroMQ, MCAP, page and Foxglove sinks send. Raises ValueError if encoding fails."""
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    img = overlay(bgr, np.asarray(heat_map), peak, (), alpha, confidence, order="bgr")
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()
