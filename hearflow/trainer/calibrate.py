"""Calibrating the engine's ``sounding`` confidence on clips with and without a visible source.

The confidence is an audio energy gate times a similarity factor (see
:func:`hearflow.runtime.confidence.confidence`). Its two thresholds are set from data: the
peak similarity and the window level of positive clips (the sounding object is on
screen) against negatives (silence, noise, or a sound whose object is off screen), as
``hearflow synth ... negative_fraction=0.5`` writes them. The thresholds that separate
them best are printed as EngineConfig overrides for ``hearflow run``.
"""

from __future__ import annotations

import numpy as np

from hearflow.runtime.confidence import rms_db


def clip_scores(model, data, split: str = "test", backend: str | None = None, progress: bool = True) -> list[dict]:
    """Per clip: negative kind (None for positives), peak similarity and audio level (dBFS)."""
    from hearflow.runtime.backends import load_backend
    from hearflow.trainer.data import CacheIndex, ClipDataset
    from hearflow.trainer.evaluate import run_backend
    from hearflow.trainer.clip_cache import ensure_cache

    be = load_backend(model, backend)
    index = CacheIndex(ensure_cache(data, be.preprocess, progress=progress))
    indices = index.indices(split)
    dataset = ClipDataset(index, indices)
    maps = run_backend(be, dataset, progress=progress)
    rows = []
    for i in indices:
        audio, _ = dataset.audio_of(i)
        rows.append({"id": index.clips[i]["id"], "negative": index.clips[i]["info"].get("negative"),
                     "peak": float(np.max(maps[i])), "level_db": rms_db(audio)})
    return rows


def best_threshold(pos: np.ndarray, neg: np.ndarray) -> tuple[float, float]:
    """The threshold maximising balanced accuracy (pos above, neg below), and that accuracy."""
    candidates = np.unique(np.concatenate([pos, neg]))
    best = (float(candidates[0]), 0.0)
    for c in candidates:
        acc = 0.5 * (np.mean(pos >= c) + np.mean(neg < c))
        if acc > best[1]:
            best = (float(c), float(acc))
    return best


def calibrate(rows: list[dict]) -> dict:
    """Thresholds: the level gate from silent vs positive clips, the similarity threshold
    from noise / off-screen vs positive clips (the gate cannot tell those apart)."""
    pos = [r for r in rows if r["negative"] is None]
    silent = [r for r in rows if r["negative"] == "silence"]
    loud_neg = [r for r in rows if r["negative"] in ("noise", "offscreen")]
    if not pos or not (silent or loud_neg):
        raise ValueError("calibration needs positive and negative clips (synth negative_fraction > 0)")
    out = {"n_positive": len(pos), "n_silence": len(silent), "n_noise_offscreen": len(loud_neg)}
    if silent:
        level, acc = best_threshold(np.array([r["level_db"] for r in pos]), np.array([r["level_db"] for r in silent]))
        out.update(energy_gate_db=round(level - 3.0, 1), gate_accuracy=round(acc, 3))  # 3 dB margin below positives
    if loud_neg:
        sim, acc = best_threshold(np.array([r["peak"] for r in pos]), np.array([r["peak"] for r in loud_neg]))
        out.update(similarity_threshold=round(sim, 3), similarity_accuracy=round(acc, 3))
    for name, group in (("positive", pos), ("silence", silent), ("noise/offscreen", loud_neg)):
        if group:
            out[f"peak_{name}"] = round(float(np.median([r["peak"] for r in group])), 3)
            out[f"level_db_{name}"] = round(float(np.median([r["level_db"] for r in group])), 1)
    return out
