"""Localisation metrics with the field's evaluation protocol (LVS / HTF / EZ-VSL).

A number from here can be put next to a number from those papers. Per clip:

1. **Upsample** the heatmap (any m×n) to 224×224 with ``cv2.resize`` INTER_CUBIC (on
   float32) and min–max normalise it to [0, 1].
2. **Ground truth** at 224×224.
   Flickr-SoundNet: each annotator's box (256-px frame coordinates, scaled to
   ``int(224·v/256)``) is added as ``gt[y1:y2, x1:x2] += 1`` (end-exclusive slice), then
   ``gt = min(gt/2, 1)``: a pixel two annotators agree on weighs 1, one annotator 0.5.
   VGG-SS: binary union of the boxes, coordinates ``int(224·max(v, 0))`` (normalised 0–1).
3. **Binarise** at the median the way the peers do: ``P = heat > sort(heat)[224·224/2]``.
   Adaptive variant (SSLalignment): ``P = heat > sort(heat)[224·224 − k]`` with
   ``k = #{gt > 0}``.
4. **cIoU** = Σ(P·gt) / (Σgt + Σ(P·[gt = 0])).
5. **Pointing**: the argmax of the upsampled map lies where gt > 0.

Over a split: cIoU@0.5 = fraction of clips with cIoU ≥ 0.5; the success curve
s(t) = fraction with cIoU ≥ t for t = 0, 0.05, …, 1; AUC = trapezoid area under s(t)
(what ``sklearn.metrics.auc`` gives); mean cIoU. The same for the adaptive cIoU.

Conventions checked against the peers' logic (30 reference cases) and their published
baseline figures: strict ``>`` at the sorted index (``>=`` differs by up to 3e-5 on ties),
end-exclusive box slices (``+1`` differs by ~1e-2), INTER_CUBIC (linear differs by ~3e-2).
A clip whose ground truth is empty (a degenerate, zero-area box) is **skipped**: it is left
out of every mean and counted in ``skipped`` (the peers would score it cIoU 0; the
reference VGG-SS whole-image figure 0.220 is only reproduced by leaving the 2 such clips out).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import cv2
import numpy as np

SIZE = 224
"""Side of the square frame every metric is computed on."""

FLICKR_FRAME = 256
"""Flickr-SoundNet boxes are pixel coordinates on a 256×256 frame."""

SIZE_BUCKETS: tuple[tuple[str, float, float], ...] = (
    ("small", 0.0, 0.10),
    ("medium", 0.10, 0.30),
    ("large", 0.30, math.inf),
)
"""Box-size buckets: (name, lo, hi) on the ground-truth area fraction, lo ≤ a < hi."""

DEFAULT_THRESHOLDS = np.linspace(0.0, 1.0, 21)
"""cIoU thresholds of the success curve (0, 0.05, …, 1), as the peers use."""


# --- ground truth -----------------------------------------------------------------------


def gt_map_flickr(boxes_256: Iterable[Sequence[float]], size: int = SIZE) -> np.ndarray:
    """Flickr-SoundNet ground truth: annotator boxes summed, halved, clipped at 1.

    ``boxes_256`` holds one ``[x1, y1, x2, y2]`` per annotator in 256×256-frame pixels.
    Each coordinate becomes ``int(size·v/256)``; the box covers ``[y1:y2, x1:x2]``
    (end-exclusive). ``gt = min(Σ boxes / 2, 1)`` takes values 0, 0.5 and 1.
    Returns float32 (size, size).
    """
    gt = np.zeros((size, size), np.float32)
    for box in boxes_256:
        # max(., 0): a negative index would wrap around in numpy (never in the real data)
        x1, y1, x2, y2 = (max(int(size * v / FLICKR_FRAME), 0) for v in box)
        gt[y1:y2, x1:x2] += 1
    return np.minimum(gt / 2, 1).astype(np.float32)


def gt_map_vggss(boxes_norm: Iterable[Sequence[float]], size: int = SIZE) -> np.ndarray:
    """VGG-SS ground truth: binary union of boxes given as normalised ``[x1, y1, x2, y2]``.

    Each coordinate becomes ``int(size·max(v, 0))``; the box covers ``[y1:y2, x1:x2]``
    (end-exclusive, so a zero-width box adds nothing). Returns float32 (size, size).
    """
    gt = np.zeros((size, size), np.float32)
    for box in boxes_norm:
        x1, y1, x2, y2 = (int(size * max(v, 0)) for v in box)
        gt[y1:y2, x1:x2] = 1
    return gt


def gt_map_from_boxes(boxes: Iterable[Sequence[float]], fmt: str, size: int = SIZE) -> np.ndarray:
    """Ground truth for ``fmt`` = ``"flickr"`` (256-px boxes) or ``"vggss"`` (normalised boxes)."""
    if fmt == "flickr":
        return gt_map_flickr(boxes, size)
    if fmt == "vggss":
        return gt_map_vggss(boxes, size)
    raise ValueError(f"unknown box format {fmt!r}: expected 'flickr' or 'vggss'")


# --- prediction -------------------------------------------------------------------------


def normalize(heat: np.ndarray) -> np.ndarray:
    """Min–max normalise to [0, 1]: (h − min) / (max − min); a flat map becomes all zeros."""
    heat = np.asarray(heat, np.float32)
    lo, hi = float(heat.min()), float(heat.max())
    if hi == lo:
        return np.zeros_like(heat)
    return (heat - lo) / (hi - lo)


def upsample(heatmap: np.ndarray, size: int | tuple[int, int] = SIZE) -> np.ndarray:
    """Resize a 2-D map to ``size`` (int: square; or (height, width)) with bicubic
    interpolation on float32 (``cv2.resize`` INTER_CUBIC) and min–max normalise it.
    A flat map gives all zeros (binarised as the whole frame, see :func:`binarize_median`)."""
    heat = np.asarray(heatmap, np.float32)
    if heat.ndim != 2 or heat.size == 0:
        raise ValueError(f"heatmap must be a non-empty 2-D array, got shape {heat.shape}")
    if not np.isfinite(heat).all():
        raise ValueError("heatmap contains NaN or infinite values")
    h, w = (int(size), int(size)) if np.ndim(size) == 0 else (int(size[0]), int(size[1]))
    if heat.min() == heat.max():
        # bicubic resize of a flat map is flat only to ~1e-7; normalising would blow that up
        return np.zeros((h, w), np.float32)
    return normalize(cv2.resize(heat, (w, h), interpolation=cv2.INTER_CUBIC))


def _keep_above_rank(heat: np.ndarray, index: int) -> np.ndarray:
    """1 where heat > the value at ``index`` of the ascending sort, else 0 (float32).

    A flat map (every pixel tied) is read as "anywhere" and kept whole: the peers' code
    divides by zero there, and this is how the whole-image baseline is scored.
    """
    flat = heat.ravel()
    if flat.min() == flat.max():
        return np.ones_like(heat, np.float32)
    threshold = np.partition(flat, index)[index]  # = np.sort(flat)[index], faster
    return (heat > threshold).astype(np.float32)


def binarize_median(heat: np.ndarray) -> np.ndarray:
    """Peers' median rule: keep pixels > sort(heat)[H·W // 2].

    With no ties this keeps H·W − H·W//2 − 1 pixels (25,087 of 50,176 at 224²), i.e. just
    under half the frame; ties at the median keep fewer.
    """
    return _keep_above_rank(heat, heat.size // 2)


def binarize_topk(heat: np.ndarray, k: int) -> np.ndarray:
    """SSLalignment's adaptive rule: keep pixels > sort(heat)[H·W − k] (k − 1 pixels
    without ties; the peers' off-by-one is kept so numbers compare). k ≤ 0 keeps nothing."""
    if k <= 0:
        return np.zeros_like(heat, np.float32)
    return _keep_above_rank(heat, heat.size - min(k, heat.size))


# --- per clip ---------------------------------------------------------------------------


def ciou(pred_binary: np.ndarray, gt: np.ndarray) -> float:
    """Consensus IoU: Σ(P·gt) / (Σgt + Σ(P·[gt = 0])); NaN when both sums are 0."""
    pred = np.asarray(pred_binary, np.float64)
    gt = np.asarray(gt, np.float64)
    den = gt.sum() + (pred * (gt == 0)).sum()
    return float((pred * gt).sum() / den) if den > 0 else math.nan


def median_rule_count(n_pixels: int) -> int:
    """Pixels the median rule keeps on a tie-free map of ``n_pixels``."""
    return n_pixels - n_pixels // 2 - 1


def ciou_ceiling(gt: np.ndarray, n_pred: int | None = None) -> float:
    """Best cIoU any prediction of ``n_pred`` pixels can reach on ``gt``.

    cIoU = I / (G + z), with I the gt weight covered, G = Σgt and z the predicted pixels
    where gt = 0, is maximised by predicting the n_pred highest-weighted gt pixels.
    For binary gt of A pixels this is A / n_pred when A ≤ n_pred (a box under half the
    frame can't pass 0.5 unless it covers a quarter of it) and n_pred / A otherwise.
    ``n_pred`` defaults to what the median rule keeps (tie-free map; a map with a flat
    plateau at the median keeps fewer pixels and can exceed this bound).
    """
    flat = np.asarray(gt, np.float64).ravel()
    if n_pred is None:
        n_pred = median_rule_count(flat.size)
    total = flat.sum()
    if total <= 0:
        return math.nan
    top = -np.partition(-flat, n_pred - 1)[:n_pred]  # the n_pred largest gt values
    covered = top.sum()
    outside = int((top == 0).sum())
    return float(covered / (total + outside))


def score_clip(heatmap: np.ndarray, gt: np.ndarray) -> dict:
    """Score one clip's heatmap (any m×n) against its ground-truth map (size×size).

    Returns ``ciou`` (median rule), ``ciou_adaptive`` (top-k rule), ``pointing`` (1.0 if
    the upsampled map's argmax lies where gt > 0, else 0.0), ``gt_area`` (fraction of the
    frame with gt > 0), ``ceiling`` (:func:`ciou_ceiling`) and ``skipped``. An empty gt
    gives ``skipped=True`` and None for ciou, ciou_adaptive and ceiling (pointing is 0.0).
    """
    gt = np.asarray(gt, np.float32)
    if gt.ndim != 2:
        raise ValueError(f"gt must be 2-D, got shape {gt.shape}")
    heat = upsample(heatmap, gt.shape)
    k = int((gt > 0).sum())
    pointing = float(gt.ravel()[int(np.argmax(heat))] > 0)
    if k == 0:
        return dict(ciou=None, ciou_adaptive=None, pointing=pointing, gt_area=0.0,
                    ceiling=None, skipped=True)
    return dict(
        ciou=ciou(binarize_median(heat), gt),
        ciou_adaptive=ciou(binarize_topk(heat, k), gt),
        pointing=pointing,
        gt_area=k / gt.size,
        ceiling=ciou_ceiling(gt),
        skipped=False,
    )


# --- over a split -----------------------------------------------------------------------


def success_curve(values: Sequence[float], thresholds: Sequence[float]) -> list[float]:
    """s(t) = fraction of ``values`` ≥ t, for each t in ``thresholds``."""
    v = np.asarray(values, np.float64)
    return [float((v >= t).mean()) for t in thresholds]


def auc(x: Sequence[float], y: Sequence[float]) -> float:
    """Trapezoid area Σ (x[i+1] − x[i])·(y[i] + y[i+1]) / 2 (``sklearn.metrics.auc`` for
    increasing x)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))


def _split_metrics(clips: list[dict], thresholds: np.ndarray) -> dict:
    """cIoU@0.5 / AUC / mean for both rules, pointing and the ceiling over ``clips``
    (all non-skipped); None everywhere when there are none."""
    keys = ("ciou@0.5", "auc", "mean_ciou", "ciou_adap@0.5", "auc_adap", "mean_ciou_adap",
            "pointing", "ceiling_ciou@0.5")
    if not clips:
        return dict.fromkeys(keys) | dict(n=0, success=None, success_adap=None)
    c = np.array([d["ciou"] for d in clips], np.float64)
    a = np.array([d["ciou_adaptive"] for d in clips], np.float64)
    s, s_adap = success_curve(c, thresholds), success_curve(a, thresholds)
    return {
        "ciou@0.5": float((c >= 0.5).mean()),
        "auc": auc(thresholds, s),
        "mean_ciou": float(c.mean()),
        "ciou_adap@0.5": float((a >= 0.5).mean()),
        "auc_adap": auc(thresholds, s_adap),
        "mean_ciou_adap": float(a.mean()),
        "pointing": float(np.mean([d["pointing"] for d in clips])),
        "ceiling_ciou@0.5": float(np.mean([d["ceiling"] >= 0.5 for d in clips])),
        "n": len(clips),
        "success": s,
        "success_adap": s_adap,
    }


def summarize(per_clip: Sequence[dict], thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
              buckets: Sequence[tuple[str, float, float]] = SIZE_BUCKETS) -> dict:
    """Aggregate :func:`score_clip` results over a split.

    Returns ``ciou@0.5``, ``auc``, ``mean_ciou``, their adaptive twins ``ciou_adap@0.5``,
    ``auc_adap``, ``mean_ciou_adap``, ``pointing``, ``ceiling_ciou@0.5`` (fraction of clips
    whose :func:`ciou_ceiling` is ≥ 0.5: the best cIoU@0.5 the median rule allows),
    ``n`` (clips scored), ``skipped`` (empty gt, left out of everything), the curves
    ``thresholds`` / ``success`` / ``success_adap`` (lists, for plotting) and ``by_size``:
    ``{bucket: {n, pointing, ciou@0.5, ciou_adap@0.5, ceiling_ciou@0.5, ...}}`` by gt area
    fraction. Metrics over zero clips are None.
    """
    th = np.asarray(thresholds, np.float64)
    used = [d for d in per_clip if not d["skipped"]]
    out = _split_metrics(used, th)
    out["skipped"] = len(per_clip) - len(used)
    out["thresholds"] = th.tolist()
    out["by_size"] = {}
    for name, lo, hi in buckets:
        part = _split_metrics([d for d in used if lo <= d["gt_area"] < hi], th)
        part.pop("success"), part.pop("success_adap")  # curves per bucket: not worth the noise
        out["by_size"][name] = part
    return out


# --- baseline maps ----------------------------------------------------------------------


def center_prior_map(size: int = 7, sigma_frac: float = 60 / SIZE) -> np.ndarray:
    """A centred Gaussian, exp(−r² / 2σ²) with σ = sigma_frac·size, centre at ((size−1)/2,
    (size−1)/2). ``center_prior_map(224)`` is the σ = 60 px reference baseline
    (cIoU@0.5 0.672 / AUC 0.543 on Flickr 250). Returns float32 (size, size)."""
    r = np.arange(size) - (size - 1) / 2
    sigma = sigma_frac * size
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2))
    return g.astype(np.float32)


def whole_image_map(size: int = 7) -> np.ndarray:
    """A flat map: binarised as the whole frame (see :func:`binarize_median`), the
    whole-image baseline. Its pointing is meaningless (argmax of a flat map = pixel 0)."""
    return np.ones((size, size), np.float32)
