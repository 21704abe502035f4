"""``hearflow check DATA``: what a dataset folder holds against its annotations, before preparing it.

Reads container and stream headers only (PyAV opens each file; nothing is decoded), in
worker processes with a progress bar, so a 200,000-clip folder takes minutes, not hours.
Reports:

1. clips found per split (``splits/*.txt``, else the annotation's ``split``, else train),
   read as ``hearflow prepare`` reads the folder (:func:`~hearflow.trainer.clip_cache.find_clips`);
2. annotated clips with no video, and videos with no annotation;
3. files in the video folder that are not videos (by extension), and unreadable videos
   with the decoder's reason (also: no video stream);
4. the distribution of duration, frame rate, resolution, audio rate and channels (and
   codecs), and the videos without an audio track.

For the Flickr layout (``frames/`` + ``audio/``) the audio files are probed the same
way and the frames' sizes are read from their headers.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections import Counter
from pathlib import Path

import numpy as np

from hearflow.errors import HearflowError
from hearflow.trainer.clip_cache import IMAGE_EXTS, VIDEO_EXTS, find_clips

SHOW = 5
"""How many examples of each problem the terminal table names (the JSON lists all)."""


def probe_headers(path: str) -> dict:
    """One file's header facts, or ``{"error": reason}``; runs in a worker."""
    from hearflow.media.decode import probe

    try:
        info = probe(path, decode=False)
    except HearflowError as exc:
        return {"error": str(exc).removeprefix(f"{path}: ")}
    except Exception as exc:  # the decoder may raise anything on a hostile file: report, go on
        return {"error": f"{type(exc).__name__}: {exc}"}
    v, a = info.video, info.audio
    out = {"format": info.format, "duration": info.duration}
    if v is not None:
        out.update(video_codec=v.codec, width=v.width, height=v.height, fps=v.fps,
                   duration=info.duration if info.duration is not None else v.duration)
    if a is not None:
        out.update(audio_codec=a.codec, audio_rate=a.sample_rate, channels=a.channels)
    return out


def image_headers(path: str) -> dict:
    """A still frame's size from its header (PIL reads no pixels until asked)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return {"width": im.width, "height": im.height, "format": im.format}
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def _run(fn, paths: list[str], workers: int, progress: bool, desc: str) -> list[dict]:
    """fn over paths, in order, in a process pool (spawned: no inherited decoder threads)."""
    from tqdm import tqdm

    out = []
    with tqdm(total=len(paths), unit="file", desc=desc, disable=None if progress else True) as bar:
        if workers <= 1 or len(paths) < 64:
            for p in paths:
                out.append(fn(p))
                bar.update()
        else:
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(workers) as pool:
                for r in pool.imap(fn, paths, chunksize=64):
                    out.append(r)
                    bar.update()
    return out


def _numeric(values) -> dict:
    v = np.asarray([x for x in values if x is not None], np.float64)
    if v.size == 0:
        return {"n": 0}
    p = np.percentile(v, [0, 10, 50, 90, 100])
    return {"n": int(v.size), "min": round(float(p[0]), 3), "p10": round(float(p[1]), 3),
            "median": round(float(p[2]), 3), "p90": round(float(p[3]), 3), "max": round(float(p[4]), 3),
            "mean": round(float(v.mean()), 3)}


def _counts(values) -> dict:
    return {str(k): n for k, n in Counter(v for v in values if v is not None).most_common()}


def _stats(facts: list[dict]) -> dict:
    ok = [f for f in facts if "error" not in f]
    return {
        "duration_s": _numeric(f.get("duration") for f in ok),
        "fps": _numeric(f.get("fps") for f in ok),
        "resolution": _counts(f"{f['width']}x{f['height']}" if "width" in f else None for f in ok),
        "audio_rate": _counts(f.get("audio_rate") for f in ok),
        "channels": _counts(f.get("channels") for f in ok),
        "video_codec": _counts(f.get("video_codec") for f in ok),
        "audio_codec": _counts(f.get("audio_codec") for f in ok),
    }


def _annotation_ids(annotations) -> tuple[dict, Path | None]:
    from hearflow.media.annotations import read_vggss

    if annotations is None:
        return {}, None
    return {Path(str(r["file"])).stem: r for r in read_vggss(annotations)}, Path(annotations)


def check_dataset(data, annotations=None, layout: str = "auto", workers: int | None = None,
                  progress: bool = True) -> dict:
    """The report described in the module docstring, as a JSON-ready dict."""
    t0 = time.perf_counter()
    data = Path(data)
    if annotations is not None and not Path(annotations).is_file():
        raise HearflowError(f"{annotations}: annotation file not found")
    found = find_clips(data, annotations, layout)
    workers = workers or os.cpu_count() or 1
    if annotations is None and found.layout == "videos":
        annotations = next((data / n for n in ("annotations.json", "vggss.json") if (data / n).is_file()), None)
    report = {"source": str(data), "layout": found.layout, "why": found.why,
              "annotations": str(annotations) if annotations else None,
              "clips": len(found.clips), "splits": dict(sorted(Counter(c.split for c in found.clips).items())),
              "with_boxes": sum(1 for c in found.clips if c.boxes)}
    if found.layout == "videos":
        report.update(_check_videos(found, annotations, workers, progress))
    else:
        report.update(_check_flickr(found, workers, progress))
    report["seconds"] = round(time.perf_counter() - t0, 2)
    return report


def _check_videos(found, annotations, workers: int, progress: bool) -> dict:
    records, _ = _annotation_ids(annotations)
    ids = {c.id for c in found.clips}
    folder = Path(found.clips[0].video).parent
    other = sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() not in VIDEO_EXTS
                   and not p.name.startswith("."))
    facts = _run(probe_headers, [c.video for c in found.clips], workers, progress, "check")
    unreadable = [{"file": Path(c.video).name, "reason": f["error"]} for c, f in zip(found.clips, facts) if "error" in f]
    unreadable += [{"file": Path(c.video).name, "reason": "no video stream"}
                   for c, f in zip(found.clips, facts) if "error" not in f and "width" not in f]
    return {
        "annotated": len(records),
        "annotated_without_video": sorted(set(records) - ids),
        "videos_without_annotation": sorted(ids - set(records)) if records else [],
        "other_files": other,
        "unreadable": unreadable,
        "without_audio": [c.id for c, f in zip(found.clips, facts) if "error" not in f and "audio_rate" not in f],
        "stats": _stats(facts),
    }


def _check_flickr(found, workers: int, progress: bool) -> dict:
    with_audio = [c for c in found.clips if c.audio]
    facts = _run(probe_headers, [c.audio for c in with_audio], workers, progress, "check audio")
    frames = _run(image_headers, [c.image for c in found.clips], 1, progress, "check frames")
    unreadable = [{"file": Path(c.audio).name, "reason": f["error"]} for c, f in zip(with_audio, facts) if "error" in f]
    unreadable += [{"file": Path(c.image).name, "reason": f["error"]} for c, f in zip(found.clips, frames) if "error" in f]
    stats = _stats(facts)
    stats["resolution"] = _counts(f"{f['width']}x{f['height']}" for f in frames if "error" not in f)
    return {
        "annotated": sum(1 for c in found.clips if c.boxes),
        "annotated_without_video": [],
        "videos_without_annotation": [],
        "frames_without_audio": [c.id for c in found.clips if not c.audio],
        "other_files": [],
        "unreadable": unreadable,
        "without_audio": [c.id for c in found.clips if not c.audio],
        "stats": stats,
        "note": f"{IMAGE_EXTS} frames and their audio files (the Flickr layout has no video)",
    }


def _examples(items: list, key=None) -> str:
    shown = [str(key(x) if key else x) for x in items[:SHOW]]
    more = f", … ({len(items) - SHOW} more)" if len(items) > SHOW else ""
    return ", ".join(shown) + more


def format_report(r: dict) -> str:
    """The terminal table."""
    lines = [f"{r['source']}: {r['clips']} clips ({r['layout']} layout: {r['why']}), "
             f"{r['with_boxes']} with boxes; checked in {r['seconds']:.1f} s",
             "  splits: " + (", ".join(f"{k} {v}" for k, v in r["splits"].items()) or "none")]
    problems = [
        ("annotated clips with no video", r["annotated_without_video"], None),
        ("videos with no annotation", r["videos_without_annotation"], None),
        ("files that are not videos", r["other_files"], None),
        ("unreadable files", r["unreadable"], lambda u: f"{u['file']} ({u['reason']})"),
        ("clips without audio", r["without_audio"], None),
    ]
    lines.append(f"  {'problem':<32} {'count':>7}  examples")
    for name, items, key in problems:
        lines.append(f"  {name:<32} {len(items):>7}  {_examples(items, key)}")
    s = r["stats"]
    lines.append(f"  {'quantity':<14} {'n':>7} {'min':>9} {'p10':>9} {'median':>9} {'p90':>9} {'max':>9}")
    for name in ("duration_s", "fps"):
        d = s[name]
        if d.get("n"):
            lines.append(f"  {name:<14} {d['n']:>7} " + " ".join(f"{d[k]:>9.3f}" for k in ("min", "p10", "median", "p90", "max")))
    for name in ("resolution", "audio_rate", "channels", "video_codec", "audio_codec"):
        counts = s.get(name) or {}
        if counts:
            top = list(counts.items())
            text = ", ".join(f"{k}: {v}" for k, v in top[:SHOW]) + (f", … ({len(top) - SHOW} more)" if len(top) > SHOW else "")
            lines.append(f"  {name:<14} {text}")
    return "\n".join(lines)


def write_json(report: dict, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n")
    return path
