"""Evaluation figures written as PNG files: success curves, heatmap overlays, breakdowns.

Figures are built with matplotlib's object API on an Agg canvas (no pyplot, no display, no
global backend switch), so this works on a headless machine and inside a notebook alike.
Every function writes ``path`` and returns it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from hearflow.trainer.metrics import auc, upsample


def _figure(width_in: float, height_in: float, dpi: int) -> Figure:
    """A Figure on an Agg canvas, independent of pyplot's state."""
    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path) -> Path:
    """Write ``fig`` as PNG at its own size (no tight bbox: callers may rely on the size)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=fig.dpi)
    return path


def success_curve_png(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], path,
                      title: str = "Success rate vs cIoU threshold",
                      figsize: tuple[float, float] = (5.0, 4.0), dpi: int = 100) -> Path:
    """Plot success curves s(t) = fraction of clips with cIoU ≥ t, one line per label
    (e.g. ``{"cIoU": (th, s), "adaptive cIoU": (th, s_adap)}`` from ``summarize``);
    the legend gives each curve's AUC."""
    fig = _figure(*figsize, dpi)
    ax = fig.add_subplot()
    for label, (th, s) in curves.items():
        ax.plot(th, s, marker=".", label=f"{label} (AUC {auc(th, s):.3f})")
    ax.axvline(0.5, color="grey", lw=0.8, ls="--")  # the cIoU@0.5 operating point
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="cIoU threshold", ylabel="success rate",
           title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    return _save(fig, path)


def _overlay_panel(ax, item: Mapping, alpha: float) -> None:
    """One overlay: frame, heatmap (jet) upsampled to the frame, GT boxes, peak marker."""
    frame = np.asarray(item["frame"])
    h, w = frame.shape[:2]
    heat = upsample(item["map"], (h, w))
    ax.imshow(frame)
    ax.imshow(heat, cmap="jet", alpha=alpha, vmin=0, vmax=1)
    for x1, y1, x2, y2 in item.get("boxes", ()):
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec="lime", lw=1.5))
    py, px = np.unravel_index(int(np.argmax(heat)), heat.shape)
    ax.plot(px, py, marker="x", color="white", ms=10, mew=2.5)
    ax.set_title(item.get("title", ""), fontsize="small")
    ax.set_axis_off()


def overlay_grid_png(items: Sequence[Mapping], path, cols: int = 4, panel_in: float = 3.0,
                     dpi: int = 100, alpha: float = 0.45) -> Path:
    """A grid of heatmap overlays, ``cols`` per row.

    Each item: ``frame`` (H×W×3 uint8 RGB), ``map`` (m×n, upsampled bicubically to H×W
    and min–max normalised), ``boxes`` (ground-truth ``[x1, y1, x2, y2]`` in that frame's
    pixels; optional), ``title`` (optional). The peak of the map is marked with a cross.
    """
    if not items:
        raise ValueError("overlay_grid_png needs at least one item")
    cols = max(1, min(cols, len(items)))
    rows = math.ceil(len(items) / cols)
    fig = _figure(cols * panel_in, rows * panel_in, dpi)
    for i, item in enumerate(items):
        _overlay_panel(fig.add_subplot(rows, cols, i + 1), item, alpha)
    fig.tight_layout()
    return _save(fig, path)


def bar_breakdown_png(groups: Mapping[str, Mapping[str, float | None]], path,
                      metric: str | Sequence[str], title: str | None = None,
                      figsize: tuple[float, float] = (6.0, 4.0), dpi: int = 100) -> Path:
    """Bars of ``metric`` (one name, or several side by side) per group, e.g. the
    ``by_size`` dict of ``summarize`` or one summary per regime. A missing or None value
    is drawn as an empty slot labelled n/a; a group's ``n``, if present, goes under its name."""
    metrics = [metric] if isinstance(metric, str) else list(metric)
    names = list(groups)
    x = np.arange(len(names))
    width = 0.8 / len(metrics)
    fig = _figure(*figsize, dpi)
    ax = fig.add_subplot()
    for j, m in enumerate(metrics):
        values = [groups[g].get(m) for g in names]
        heights = [0.0 if v is None else v for v in values]
        bars = ax.bar(x + (j - (len(metrics) - 1) / 2) * width, heights, width, label=m)
        ax.bar_label(bars, labels=["n/a" if v is None else f"{v:.3f}" for v in values],
                     fontsize="x-small", padding=2)
    # a group that carries its clip count (summarize's by_size does) shows it under its name
    ax.set_xticks(x, [f"{g}\n(n={groups[g]['n']})" if "n" in groups[g] else g for g in names])
    ax.set_ylabel(metrics[0] if len(metrics) == 1 else "value")
    ax.set_title(title if title is not None else ", ".join(metrics))
    ax.margins(y=0.15)
    if len(metrics) > 1:
        ax.legend(fontsize="small")
    fig.tight_layout()
    return _save(fig, path)
