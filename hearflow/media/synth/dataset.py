"""Dataset writing: annotation records, and :func:`generate`, which renders and encodes clips with a process pool."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from hearflow.errors import HearflowError
from hearflow.media.synth.config import SPLIT_CODE, SPLITS, SynthConfig
from hearflow.media.synth.render import SynthScene, render_clip
from hearflow.media.synth.sampling import clip_rng, regime_cycle, sample_spec
from hearflow.media.synth.spec import ClipSpec


def _norm(box, W: int, H: int) -> list[float]:
    x1, y1, x2, y2 = box
    return [round(x1 / W, 6), round(y1 / H, 6), round(x2 / W, 6), round(y2 / H, 6)]


def annotation_record(spec: ClipSpec, scene: SynthScene | None = None) -> dict:
    """The clip's annotations.json record (VGG-SS keys plus hearflow's extras)."""
    scene = scene or SynthScene(spec)
    i = spec.annotate_frame
    W, H = spec.width, spec.height
    boxes = scene.boxes(i)
    src = boxes[spec.source_index]
    objects = [
        {
            "class": o.cls,
            "bbox": None if b is None else _norm(b, W, H),
            "sounding": spec.negative is None and k == spec.source_index,
            "moving": o.motion.moves,
        }
        for k, (o, b) in enumerate(zip(spec.objects, boxes))
    ]
    return {
        "file": spec.clip_id,
        "class": spec.sound_class,
        "bbox": [_norm(src, W, H)] if spec.negative is None and src is not None else [],
        "frame_time": round(i / spec.fps, 6),
        "frame_index": i,
        "regime": spec.regime,
        "split": spec.split,
        "negative": spec.negative,
        "objects": objects,
        "sound_onset": round(spec.sound_onset, 6),
    }


def flickr_boxes(record: dict, cfg: SynthConfig, rng: np.random.Generator) -> list[list[int]]:
    """2–3 "annotators'" boxes (256×256 pixels): the true box, each coordinate jittered."""
    from hearflow.media.annotations import FLICKR_FRAME

    if not record["bbox"]:
        return []
    x1, y1, x2, y2 = (v * FLICKR_FRAME for v in record["bbox"][0])
    n = int(rng.integers(cfg.flickr_annotators[0], cfg.flickr_annotators[1] + 1))
    out = []
    for _ in range(n):
        j = rng.integers(-cfg.flickr_jitter, cfg.flickr_jitter + 1, 4)
        a = int(np.clip(round(x1) + j[0], 0, FLICKR_FRAME - 1))
        b = int(np.clip(round(y1) + j[1], 0, FLICKR_FRAME - 1))
        c = int(np.clip(round(x2) + j[2], a + 1, FLICKR_FRAME))
        d = int(np.clip(round(y2) + j[3], b + 1, FLICKR_FRAME))
        out.append([a, b, c, d])
    return out


def _init_worker():
    cv2.setNumThreads(1)  # the pool already uses every core


def _make_clip(task) -> tuple[dict, bool, int]:
    """Worker: sample, render and encode one clip (unless its mp4 exists); return its record."""
    from hearflow.media import annotations
    from hearflow.media.encode import write_clip

    cfg, seed, split, index, regime, out = task
    clip_id = f"{split}_{index:05d}"
    spec = sample_spec(cfg, clip_rng(seed, split, index), clip_id=clip_id, split=split, regime=regime)
    scene = SynthScene(spec)
    mp4 = Path(out) / "videos" / f"{clip_id}.mp4"
    written = False
    if not mp4.exists():
        frames, audio, _ = render_clip(spec, scene)
        part = mp4.with_name(f".{clip_id}.part.mp4")  # renamed when complete: resume-safe
        write_clip(
            part,
            frames,
            fps=cfg.fps,
            audio=audio,
            sample_rate=cfg.sample_rate,
            video_options={"preset": cfg.preset, "crf": cfg.crf},
            audio_bit_rate=cfg.audio_bit_rate,
            threads=1,
        )
        os.replace(part, mp4)
        written = True
    record = annotation_record(spec, scene)
    if split == "test":
        rng = np.random.default_rng([int(seed), SPLIT_CODE[split], int(index), 99])
        annotations.write_flickr_xml(
            Path(out) / "Annotations" / f"{clip_id}.xml", clip_id, flickr_boxes(record, cfg, rng), record["class"]
        )
    return record, written, mp4.stat().st_size


def _check_out(out: Path, cfg: SynthConfig, seed: int) -> None:
    """Refuse a non-empty folder made with another config or seed (or not by synth)."""
    from hearflow import config as config_mod

    if out.exists() and not out.is_dir():
        raise HearflowError(f"{out} exists and is not a folder")
    if not out.exists() or not any(out.iterdir()):
        return
    yaml_path, summary_path = out / "synth.yaml", out / "summary.json"
    if not yaml_path.is_file() or not summary_path.is_file():
        raise HearflowError(
            f"{out} is not empty and was not made by 'hearflow synth' (no synth.yaml/summary.json); "
            "choose a new or empty folder"
        )
    try:
        old_cfg = config_mod.load(SynthConfig, yaml_path)
        old_seed = json.loads(summary_path.read_text()).get("seed")
    except (HearflowError, ValueError) as exc:
        raise HearflowError(f"{out}: cannot read the previous synth.yaml/summary.json ({exc})") from None
    if old_seed != seed:
        raise HearflowError(
            f"{out} was made with seed {old_seed}, not {seed}; use that seed to resume or choose another folder"
        )
    if old_cfg != cfg:
        a, b = config_mod.to_dict(old_cfg), config_mod.to_dict(cfg)
        diff = [k for k in a if a[k] != b.get(k)]
        raise HearflowError(
            f"{out} was made with a different config (differs in: {', '.join(diff)}); "
            "use the same config to resume or choose another folder"
        )


def _percentiles(values) -> dict:
    if not values:
        return {}
    v = np.asarray(values, np.float64)
    return {
        "p10": round(float(np.percentile(v, 10)), 4),
        "p50": round(float(np.percentile(v, 50)), 4),
        "p90": round(float(np.percentile(v, 90)), 4),
        "mean": round(float(v.mean()), 4),
    }


def generate(
    out,
    cfg: SynthConfig | None = None,
    train: int = 800,
    val: int = 80,
    test: int = 200,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
) -> dict:
    """Write a synthetic dataset to ``out`` and return its summary.

    out: output folder, created. Written: ``videos/<id>.mp4`` (H.264 + AAC),
    ``annotations.json`` (VGG-SS records plus frame_time, frame_index, regime, split,
    negative, objects, sound_onset), ``Annotations/<id>.xml`` (Flickr-style, test clips),
    ``splits/{train,val,test}.txt``, ``synth.yaml`` (cfg) and ``summary.json``.
    cfg: the SynthConfig (defaults when None).
    train / val / test: number of clips per split; ids are ``<split>_<index:05d>``.
    seed: clip ``index`` of ``split`` is drawn from (seed, split, index) alone, so the
    output does not depend on ``workers``, and a larger count extends a smaller one.
    workers: processes (default: CPU count); 1 runs in this process.
    progress: show a tqdm progress bar.

    A non-empty ``out`` made with the same config and seed is resumed (clips whose mp4
    exists are not rendered again; other clip counts extend or trim the splits, and
    videos beyond a smaller count stay on disk unlisted); one made with another config or
    seed, or not by this function, raises :class:`~hearflow.errors.HearflowError`.
    """
    cfg = cfg or SynthConfig()
    out = Path(out)
    counts = {"train": int(train), "val": int(val), "test": int(test)}
    if min(counts.values()) < 0:
        raise HearflowError(f"clip counts must be >= 0, got {counts}")
    _check_out(out, cfg, seed)
    t_start = time.perf_counter()
    _start_output(out, cfg, seed, counts)
    tasks = []
    for split, n in counts.items():
        regimes = regime_cycle(cfg.regime_weights, n) if cfg.regime_order == "cycle" else [None] * n
        tasks += [(cfg, seed, split, i, regimes[i], str(out)) for i in range(n)]
    results = _run_tasks(tasks, workers or os.cpu_count() or 1, progress)
    _write_index(out, [r for r, _, _ in results])
    summary = _summary(out, seed, counts, results)
    summary["seconds"] = round(time.perf_counter() - t_start, 2)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _start_output(out: Path, cfg: SynthConfig, seed: int, counts: dict) -> None:
    """Create the folders; write the seed and config first, so an interrupted run can be resumed (and checked)."""
    from hearflow import config as config_mod

    (out / "videos").mkdir(parents=True, exist_ok=True)
    (out / "splits").mkdir(exist_ok=True)
    (out / "summary.json").write_text(json.dumps({"seed": seed, "complete": False, "clips": counts}, indent=2) + "\n")
    config_mod.save(cfg, out / "synth.yaml")


def _run_tasks(tasks: list, workers: int, progress: bool) -> list[tuple[dict, bool, int]]:
    """Run :func:`_make_clip` on every task, in this process or a pool; results in task order."""
    results = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(tasks), unit="clip", desc="synth", dynamic_ncols=True, disable=None)  # off when not a terminal
    try:
        if workers <= 1 or len(tasks) <= 1:
            for task in tasks:
                results.append(_make_clip(task))
                if bar is not None:
                    bar.update()
        else:
            # spawn, not fork: a child forked from a process whose OpenCV (or OpenMP) thread
            # pool is running waits forever on threads that were not copied. The children
            # import _init_worker and _make_clip from this module by name.
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(min(workers, len(tasks)), initializer=_init_worker) as pool:
                for res in pool.imap(_make_clip, tasks, chunksize=1):
                    results.append(res)
                    if bar is not None:
                        bar.update()
    finally:
        if bar is not None:
            bar.close()
    return results


def _write_index(out: Path, records: list[dict]) -> None:
    """annotations.json and splits/{train,val,test}.txt."""
    from hearflow.media import annotations

    annotations.write_vggss(out / "annotations.json", records)
    for split in SPLITS:
        ids = [r["file"] for r in records if r["split"] == split]
        (out / "splits" / f"{split}.txt").write_text("".join(i + "\n" for i in ids))


def _summary(out: Path, seed: int, counts: dict, results: list[tuple[dict, bool, int]]) -> dict:
    """The summary.json contents, but for "seconds" (which the caller adds)."""
    records = [r for r, _, _ in results]
    areas = [
        (b[2] - b[0]) * (b[3] - b[1]) for r in records if r["bbox"] for b in r["bbox"][:1]
    ]
    return {
        "seed": seed,
        "complete": True,
        "out": str(out),
        "clips": counts,
        "total": len(records),
        "written": sum(1 for _, w, _ in results if w),
        "skipped": sum(1 for _, w, _ in results if not w),
        "regimes": {s: dict(Counter(r["regime"] for r in records if r["split"] == s)) for s in SPLITS},
        "classes": dict(sorted(Counter(r["class"] for r in records if r["negative"] is None).items())),
        "negatives": dict(Counter(r["negative"] for r in records if r["negative"] is not None)),
        "box_area": _percentiles(areas),
        "objects_per_clip": _percentiles([len(r["objects"]) for r in records]),
        "video_bytes": int(sum(n for _, _, n in results)),
    }


def format_summary(summary: dict) -> str:
    """Human-readable lines describing a :func:`generate` summary."""
    c = summary["clips"]
    lines = [
        f"wrote {summary['out']}: {summary['total']} clips "
        f"(train {c['train']}, val {c['val']}, test {c['test']}; "
        f"{summary['written']} rendered, {summary['skipped']} already there) "
        f"in {summary['seconds']:.1f} s, {summary['video_bytes'] / 1e6:.1f} MB of video",
    ]
    for split in SPLITS:
        reg = summary["regimes"].get(split) or {}
        if reg:
            lines.append(f"  {split:5s} regimes: " + ", ".join(f"{k} {v}" for k, v in sorted(reg.items())))
    if summary["classes"]:
        lines.append("  sounding classes: " + ", ".join(f"{k} {v}" for k, v in summary["classes"].items()))
    if summary["negatives"]:
        lines.append("  negatives: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["negatives"].items())))
    a = summary.get("box_area") or {}
    if a:
        lines.append(
            f"  sounding box area (fraction of frame): p10 {a['p10']:.2f}, median {a['p50']:.2f}, "
            f"p90 {a['p90']:.2f}, mean {a['mean']:.2f}"
        )
    return "\n".join(lines)
