"""``hearflow prepare``: a folder of videos → a training cache an epoch reads fast.

Per clip the cache holds the annotated (or middle) frame resized to the model size, its
optical flow and the audio window, made by :mod:`hearflow.media.sample` from the
:class:`PreprocessConfig` — so training and evaluation see exactly what the engine will
compute. Layout of a cache folder::

    cache.json      PreprocessConfig, source, layout, every clip's id/split/boxes/...
    frames.npy      (N, S, S, 3) uint8          memory-mapped
    flows.npy       (N, 2, S, S) float16        memory-mapped
    audio.npy       (N, n) int16                audio windows (n at the highest rate)
    done.jsonl      one line per finished clip: index, status, rate, samples, t, note/error
    report.json     summary and the list of bad files with their errors

Preparation runs in worker processes with a progress bar, survives bad files (they are
listed in report.json and skipped), and resumes after an interruption: clips already in
done.jsonl are not redone.

Source layouts:
- ``videos``: a folder of videos (``videos/*.mp4`` or videos directly inside) with an
  optional VGG-SS style ``annotations.json`` / ``vggss.json`` (what ``hearflow synth``
  writes; VGGSound clips) and optional ``splits/<split>.txt``;
- ``flickr``: the Flickr-SoundNet test layout: ``frames/<id>.jpg`` + ``audio/<id>.wav|mp3``
  + ``Annotations/<id>.xml`` (one still frame, so the flow is zeros there).

A folder may hold both (an export often puts the annotated frame and audio beside each
clip). ``auto`` then takes the videos, the richer of the two (flow, boxes for every
annotated clip), and says what it ignored; ``--layout`` / ``data.layout`` chooses. The
layout is part of a cache's identity: the default cache folder is named by it and an
existing cache made from the other layout is refused, never reused.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import time
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from hearflow.errors import HearflowError
from hearflow.media.annotations import read_flickr_xml, read_vggss
from hearflow.media.preprocess import PreprocessConfig

VIDEO_EXTS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v")
AUDIO_EXTS = (".wav", ".mp3", ".flac", ".ogg", ".m4a", ".aac")
IMAGE_EXTS = (".jpg", ".jpeg", ".png")
MAX_NATIVE_RATE = 48000  # audio windows at native rate are stored up to this rate
LAYOUTS = ("auto", "videos", "flickr")
"""What ``--layout`` / ``data.layout`` accept; ``auto`` prefers videos when both are present."""
CACHE_FORMAT = "hearflow-cache/2"
"""Bumped whenever what a cache holds for a given PreprocessConfig changes (old caches are refused)."""


class PrepareError(HearflowError):
    """The source folder or the cache folder cannot be used."""


@dataclass
class Clip:
    id: str
    split: str = "train"
    video: str | None = None
    """Video file (absolute path) for video layouts."""
    image: str | None = None
    """Still frame for the Flickr layout."""
    audio: str | None = None
    """Separate audio file (Flickr layout)."""
    t: float | None = None
    """Annotated frame time in seconds; None = the middle of the video."""
    boxes: list = field(default_factory=list)
    """Ground-truth boxes: normalised [x1,y1,x2,y2] (vggss) or annotators' 256-px boxes (flickr)."""
    box_format: str | None = None
    """'vggss', 'flickr' or None (no ground truth)."""
    info: dict = field(default_factory=dict)
    """Anything else the annotation says (class, regime, negative kind, ...)."""


# --------------------------------------------------------------------------- discovery
def _read_splits(folder: Path) -> dict[str, str]:
    splits = {}
    for f in sorted((folder / "splits").glob("*.txt")) if (folder / "splits").is_dir() else []:
        for line in f.read_text().split():
            splits[line.strip()] = f.stem
    return splits


@dataclass
class Found:
    """The clips of a dataset folder (or a prepared cache) and how its layout was chosen."""

    source: Path
    layout: str
    """'videos' or 'flickr'."""
    clips: list[Clip]
    why: str
    """What the layout was made of and what else was there and left out, for the summary line."""


def _video_folder(source: Path) -> Path | None:
    """``videos/`` or the folder itself, whichever holds video files; None if neither does."""
    for folder in (source / "videos", source):
        if folder.is_dir() and any(p.suffix.lower() in VIDEO_EXTS for p in folder.iterdir()):
            return folder
    return None


def _has_flickr(source: Path) -> bool:
    return (source / "frames").is_dir() and (source / "audio").is_dir()


def find_clips(source, annotations=None, layout: str = "auto") -> Found:
    """Find the clips of a dataset folder in ``layout`` ('auto', 'videos' or 'flickr')."""
    source = Path(source)
    if layout not in LAYOUTS:
        raise PrepareError(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    if not source.is_dir():
        raise PrepareError(f"{source}: dataset folder not found")
    splits = _read_splits(source)
    videos, flickr = _video_folder(source), _has_flickr(source)
    if _choose(layout, videos is not None, flickr) == "flickr":
        if not flickr:
            raise PrepareError(f"{source}: layout flickr needs frames/ and audio/ folders "
                               f"(frames/ {'found' if (source / 'frames').is_dir() else 'missing'}, "
                               f"audio/ {'found' if (source / 'audio').is_dir() else 'missing'})")
        why = "frames/ + audio/" + (" + Annotations/" if (source / "Annotations").is_dir() else ", no Annotations/")
        if videos is not None:
            why += f"; {_name(source, videos)} also present, ignored"
        return Found(source, "flickr", _discover_flickr(source, splits), why)
    if annotations is None:
        annotations = next((source / n for n in ("annotations.json", "vggss.json") if (source / n).is_file()), None)
    clips = _discover_videos(source, splits, annotations)
    why = _name(source, videos) + (f" + {_name(source, Path(annotations))}" if annotations is not None else "")
    if flickr:
        why += "; frames/ + audio/ also present, ignored" + (" — use --layout flickr for them" if layout == "auto" else "")
    return Found(source, "videos", clips, why)


def _choose(layout: str, videos: bool, flickr: bool) -> str:
    """The layout used: as asked, or for 'auto' videos whenever there are any (they give
    flow and every annotated clip's boxes), else the Flickr still frames when present."""
    if layout != "auto":
        return layout
    return "flickr" if flickr and not videos else "videos"


def resolve_layout(source, layout: str = "auto") -> str:
    """The layout ``source`` (a dataset folder or a prepared cache) is read in; 'auto' is
    returned unchanged when the folder is not there (the error comes when it is read)."""
    source = Path(source)
    if layout not in LAYOUTS:
        raise PrepareError(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    if is_cache(source):
        stored = json.loads((source / "cache.json").read_text()).get("layout", "videos")
        _check_layout(source, stored, layout)
        return stored
    if not source.is_dir():
        return layout
    return _choose(layout, _video_folder(source) is not None, _has_flickr(source))


def _check_layout(cache: Path, stored: str, layout: str) -> None:
    if layout not in ("auto", stored):
        raise PrepareError(f"{cache}: this cache was prepared from the {stored} layout, not {layout}; "
                           "point to the dataset folder so it is prepared in that layout")


def _name(source: Path, path: Path | None) -> str:
    """How the summary names a part of the dataset: relative to it where it lies inside."""
    if path is None or path == source:
        return "videos in the folder"
    try:
        rel = path.relative_to(source)
    except ValueError:
        return str(path)
    return f"{rel}/" if path.is_dir() else str(rel)


def discover(source, annotations=None, layout: str = "auto") -> tuple[str, list[Clip]]:
    """Find the clips of a dataset folder. Returns (layout name, clips sorted by id)."""
    found = find_clips(source, annotations, layout)
    return found.layout, found.clips


def _discover_flickr(source: Path, splits: dict) -> list[Clip]:
    audio = {p.stem: p for p in (source / "audio").iterdir() if p.suffix.lower() in AUDIO_EXTS}
    clips = []
    for img in sorted((source / "frames").iterdir()):
        if img.suffix.lower() not in IMAGE_EXTS:
            continue
        cid = img.stem
        xml = source / "Annotations" / f"{cid}.xml"
        clip = Clip(cid, splits.get(cid, "test"), image=str(img), audio=str(audio[cid]) if cid in audio else None)
        if xml.is_file():
            clip.boxes, clip.box_format = read_flickr_xml(xml), "flickr"
        clips.append(clip)
    return clips


def _discover_videos(source: Path, splits: dict, annotations) -> list[Clip]:
    folder = _video_folder(source)
    if folder is None:
        look = source / "videos" if (source / "videos").is_dir() else source
        raise PrepareError(f"{source}: no videos found (looked for {', '.join(VIDEO_EXTS)} in {look})")
    videos = {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in VIDEO_EXTS}
    records = {}
    if annotations is not None:
        for rec in read_vggss(annotations):
            records[Path(str(rec["file"])).stem] = rec
    clips = []
    for cid, path in videos.items():
        rec = records.get(cid, {})
        info = {k: v for k, v in rec.items() if k not in ("file", "bbox", "frame_time", "split")}
        split = splits.get(cid) or rec.get("split") or "train"
        boxes = rec.get("bbox", [])
        clips.append(
            Clip(cid, split, video=str(path), t=rec.get("frame_time"), boxes=boxes,
                 box_format="vggss" if rec else None, info=info)
        )
    return clips


# --------------------------------------------------------------------------- workers
_WORKER = {}


def _init_worker(cfg_dict: dict):
    import cv2

    from hearflow.media.flow import FlowEstimator

    cv2.setNumThreads(1)  # the pool is the parallelism; OpenCV threads would oversubscribe
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    cfg = PreprocessConfig.from_dict(cfg_dict)
    _WORKER.update(cfg=cfg, flow=FlowEstimator(cfg))


def _process(job: tuple[int, dict]):
    """Build one clip's arrays; errors are returned, never raised (one bad file must not stop the run)."""
    from hearflow.media.sample import still_sample, video_sample

    index, clip = job
    cfg = _WORKER["cfg"]
    try:
        if clip["image"]:
            if not clip["audio"]:
                raise HearflowError(f"{clip['image']}: no audio file with the same name in audio/")
            s = still_sample(clip["image"], clip["audio"], cfg)
        else:
            s = video_sample(clip["video"], clip["t"], cfg, _WORKER["flow"])
    except HearflowError as exc:
        return index, None, str(exc)
    except Exception as exc:  # an unexpected decoder failure is still one bad file
        return index, None, f"{clip['video'] or clip['image']}: {type(exc).__name__}: {exc}"
    return index, s, ""


# --------------------------------------------------------------------------- the cache
def _open_arrays(out: Path, n: int, cfg: PreprocessConfig, mode: str) -> dict[str, np.ndarray]:
    size = cfg.image_size
    rate = MAX_NATIVE_RATE if cfg.sample_rate == "native" else int(cfg.sample_rate)
    shapes = {
        "frames": ((n, size, size, 3), np.uint8),
        "flows": ((n, 2, size, size), np.float16),
        "audio": ((n, cfg.window_samples(rate)), np.int16),
    }
    return {
        name: np.lib.format.open_memmap(out / f"{name}.npy", mode=mode, dtype=dtype, shape=shape if mode == "w+" else None)
        for name, (shape, dtype) in shapes.items()
    }


def _read_done(out: Path) -> dict[int, dict]:
    done = {}
    path = out / "done.jsonl"
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash: that clip is simply redone
            done[rec["index"]] = rec
    return done


def prepare(
    source,
    out,
    cfg: PreprocessConfig,
    workers: int | None = None,
    annotations=None,
    progress: bool = True,
    layout: str = "auto",
    announce: bool = False,
) -> dict:
    """Prepare (or finish preparing) the cache of ``source`` in ``out``; returns the report.

    layout: 'auto', 'videos' or 'flickr' (see the module docstring).
    announce: print the dataset's summary line (:func:`summary_line`) before starting.
    """
    found = find_clips(source, annotations, layout)
    if announce:
        _announce(found, cfg)
    return _prepare(found, Path(out), cfg, workers, progress)


def _prepare(found: Found, out: Path, cfg: PreprocessConfig, workers: int | None, progress: bool) -> dict:
    # 1. the clips, and the cache folder they go to (an existing one must match them, the layout and cfg)
    clips, layout = found.clips, found.layout
    arrays = _open_cache(out, _meta(found, cfg), cfg)
    # 2. the clips not done yet, built in worker processes
    done = _read_done(out)
    todo = [(i, asdict(c)) for i, c in enumerate(clips) if i not in done]
    workers = workers or os.cpu_count() or 1
    started = time.time()
    interrupted = False
    if todo:
        interrupted = _prepare_clips(out, clips, todo, arrays, done, cfg, workers, progress)
    # 3. the report, also after Ctrl-C (what is in done.jsonl is kept for the next run)
    report = _report(out, clips, done, layout, time.time() - started, interrupted)
    if interrupted:
        raise KeyboardInterrupt
    return report


def _meta(found: Found, cfg: PreprocessConfig) -> dict:
    """What cache.json records (and what an existing cache must match)."""
    return {
        "format": CACHE_FORMAT,
        "source": str(found.source.resolve()),
        "layout": found.layout,
        "preprocess": cfg.to_dict(),
        "clips": [asdict(c) for c in found.clips],
    }


def _open_cache(out: Path, meta: dict, cfg: PreprocessConfig) -> dict[str, np.ndarray]:
    """The cache's arrays: an existing cache is checked against ``meta`` and reopened, else a new one is made."""
    meta_path = out / "cache.json"
    n = len(meta["clips"])
    if meta_path.is_file():
        _check_cache(out, json.loads(meta_path.read_text()), meta)
        return _open_arrays(out, n, cfg, "r+")
    out.mkdir(parents=True, exist_ok=True)
    arrays = _open_arrays(out, n, cfg, "w+")
    (out / "done.jsonl").unlink(missing_ok=True)
    tmp = out / "cache.json.tmp"
    tmp.write_text(json.dumps(meta))
    tmp.replace(meta_path)
    return arrays


def _check_cache(out: Path, old: dict, meta: dict) -> None:
    """A cache is used only when the same hearflow format, PreprocessConfig, layout and clips made it."""
    if old.get("format") != CACHE_FORMAT:
        raise PrepareError(f"{out}: this cache was made by another hearflow version ({old.get('format')}); "
                           "delete it or use another folder")
    if old.get("preprocess") != meta["preprocess"]:
        raise PrepareError(
            f"{out}: this cache was prepared with a different PreprocessConfig; use another folder or delete it"
        )
    if old.get("layout") != meta["layout"]:  # the same ids can name still frames or videos
        raise PrepareError(f"{out}: this cache was prepared from the {old.get('layout')} layout, this run reads "
                           f"the {meta['layout']} layout; use another folder or delete it")
    if [c["id"] for c in old["clips"]] != [c["id"] for c in meta["clips"]]:
        raise PrepareError(f"{out}: this cache was prepared from a different set of clips; use another folder")


def _prepare_clips(out: Path, clips: list[Clip], todo: list, arrays: dict, done: dict, cfg: PreprocessConfig,
                   workers: int, progress: bool) -> bool:
    """Build ``todo`` in a process pool, storing each clip and its done.jsonl record as it comes;
    ``done`` is updated. Returns whether Ctrl-C interrupted it."""
    log_path = out / "done.jsonl"
    if log_path.is_file() and log_path.stat().st_size and not log_path.read_bytes().endswith(b"\n"):
        with open(log_path, "a") as f:  # a line cut by a crash must not swallow the next record
            f.write("\n")
    interrupted = False
    ctx = mp.get_context("spawn")  # fork after torch/OpenMP threads started can deadlock
    with open(log_path, "a") as log, ctx.Pool(
        min(workers, len(todo)), initializer=_init_worker, initargs=(cfg.to_dict(),)
    ) as pool:
        bar = tqdm(total=len(clips), initial=len(clips) - len(todo), desc="prepare", unit="clip",
                   disable=None if progress else True)  # None: off when not a terminal
        try:
            for index, s, error in pool.imap_unordered(_process, todo, chunksize=2):
                rec = _store(arrays, index, clips[index].id, s, error)
                # arrays first, then the record: a crash in between only redoes this clip
                log.write(json.dumps(rec) + "\n")
                log.flush()
                done[index] = rec
                bar.update()
                if s is None:
                    bar.write(f"skipped: {error}")
        except KeyboardInterrupt:
            interrupted = True
            pool.terminate()
        finally:
            bar.close()
            for a in arrays.values():
                a.flush()
    return interrupted


def _store(arrays: dict, index: int, clip_id: str, s, error: str) -> dict:
    """Write one clip's sample (``s``; None for a bad file) into the arrays; returns its done.jsonl record."""
    rec = {"index": index, "id": clip_id}
    if s is None:
        rec.update(status="bad", error=error)
        return rec
    arrays["frames"][index] = s.frame
    arrays["flows"][index] = s.flow
    n = len(s.audio)
    arrays["audio"][index, :n] = np.round(s.audio * 32767).astype(np.int16)
    rec.update(status="ok", rate=s.rate, samples=n, t=round(s.t, 6), fps=s.fps, note=s.flow_note,
               aspect=round(float(s.aspect), 6))
    return rec


def _report(out: Path, clips, done: dict, layout: str, seconds: float, interrupted: bool) -> dict:
    bad = [done[i] for i in sorted(done) if done[i]["status"] == "bad"]
    ok = [i for i in done if done[i]["status"] == "ok"]
    notes = {}
    for i in ok:
        if done[i].get("note"):
            notes[done[i]["note"]] = notes.get(done[i]["note"], 0) + 1
    splits = {}
    for i in ok:
        splits[clips[i].split] = splits.get(clips[i].split, 0) + 1
    report = {
        "cache": str(out),
        "layout": layout,
        "clips": len(clips),
        "prepared": len(ok),
        "bad": len(bad),
        "pending": len(clips) - len(done),
        "splits": splits,
        "seconds": round(seconds, 1),
        "interrupted": interrupted,
        "notes": notes,
        "bad_files": [{"id": b["id"], "error": b["error"]} for b in bad],
    }
    (out / "report.json").write_text(json.dumps(report, indent=2))
    return report


def format_report(report: dict) -> str:
    lines = [
        f"cache {report['cache']} ({report['layout']} layout): {report['prepared']}/{report['clips']} clips prepared"
        f", {report['bad']} bad, {report['pending']} pending, in {report['seconds']} s",
        "splits: " + ", ".join(f"{k} {v}" for k, v in sorted(report["splits"].items())),
    ]
    for note, count in report["notes"].items():
        lines.append(f"note: {count} clip(s): {note}")
    for b in report["bad_files"][:20]:
        lines.append(f"bad: {b['error']}")
    if len(report["bad_files"]) > 20:
        lines.append(f"... and {len(report['bad_files']) - 20} more bad files (see report.json)")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the summary line
def _no_flow(layout: str, cfg: PreprocessConfig) -> str | None:
    """Why this data gives the model no flow (zeros), or None when it does."""
    if layout == "flickr":
        return "still frames"
    if not cfg.uses_flow:
        return "preprocess.flow is none"
    return None


def summary_line(found: Found, cfg: PreprocessConfig) -> str:
    """One line: layout and why, clips per split, how many have boxes, whether flow is available."""
    counts: dict[str, int] = {}
    for c in found.clips:
        counts[c.split] = counts.get(c.split, 0) + 1
    order = [k for k in ("train", "val", "test") if k in counts] + sorted(set(counts) - {"train", "val", "test"})
    why = _no_flow(found.layout, cfg)
    return (f"dataset {found.source}: layout {found.layout} ({found.why}); "
            f"clips {' / '.join(f'{k} {counts[k]}' for k in order) or 'none'}; "
            f"boxes {sum(1 for c in found.clips if c.boxes)}; flow: {'yes' if why is None else f'no ({why})'}")


def flow_warning(found: Found, cfg: PreprocessConfig, flow_user: str | None) -> str | None:
    """A warning line when a model that uses flow (``flow_user`` says which, e.g. "model.flow is
    cnn") would get zeros from this data; None when it gets flow or does not use it."""
    why = _no_flow(found.layout, cfg)
    if not flow_user or why is None:
        return None
    reason = "the flickr layout has still frames only" if found.layout == "flickr" else why
    hint = ""
    if found.layout == "flickr" and not is_cache(found.source) and _video_folder(found.source) is not None:
        hint = "; use --layout videos for the videos in this folder"
    return f"warning: {flow_user}, but {reason}, so every clip's flow is zero{hint}"


def _announce(found: Found, cfg: PreprocessConfig, flow_user: str | None = None) -> None:
    print(summary_line(found, cfg), flush=True)
    warning = flow_warning(found, cfg, flow_user)
    if warning:
        print(warning, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- finding or making a cache
def default_cache_dir(source, cfg: PreprocessConfig, layout: str = "videos") -> Path:
    """Where a dataset's cache goes unless given: beside the data, keyed by the config and the layout."""
    return Path(source) / ".hearflow-cache" / f"{cfg.fingerprint()}-{layout}-v{CACHE_FORMAT.rsplit('/', 1)[1]}"


def is_cache(path) -> bool:
    return (Path(path) / "cache.json").is_file()


def ensure_cache(source, cfg: PreprocessConfig, cache=None, workers=None, progress=True, layout: str = "auto",
                 flow_user: str | None = None, announce: bool = False) -> Path:
    """A ready cache for ``source`` with preprocessing ``cfg`` (prepared or finished if needed).

    layout: 'auto', 'videos' or 'flickr'; a prepared cache given as ``source`` must be of it
    (or 'auto'), and an existing ``cache`` folder made from another layout is refused.
    flow_user / announce: see :func:`flow_warning`; announce prints the summary line (and
    that warning) before any preparation starts.
    """
    if is_cache(source):
        cache = Path(source)
        meta = json.loads((cache / "cache.json").read_text())
        if meta["preprocess"] != cfg.to_dict():
            raise PrepareError(
                f"{source}: this cache was prepared with a different PreprocessConfig than the model/config "
                "asks for; point to the raw dataset folder instead so it can be prepared again"
            )
        _check_layout(cache, meta["layout"], layout)
        found = Found(cache, meta["layout"], [Clip(**c) for c in meta["clips"]], f"prepared cache of {meta['source']}")
        if announce:
            _announce(found, cfg, flow_user)
        if len(_read_done(cache)) < len(meta["clips"]):
            prepare(meta["source"], cache, cfg, workers, progress=progress, layout=meta["layout"])
        return cache
    found = find_clips(source, None, layout)
    if announce:
        _announce(found, cfg, flow_user)
    cache = Path(cache) if cache else default_cache_dir(source, cfg, found.layout)
    if is_cache(cache):  # also when complete: a finished cache of another layout must not be reused
        _check_cache(cache, json.loads((cache / "cache.json").read_text()), _meta(found, cfg))
    done = _read_done(cache) if is_cache(cache) else {}
    n = len(found.clips) if is_cache(cache) else -1
    if len(done) != n:
        report = _prepare(found, cache, cfg, workers, progress)
        if progress:
            print(format_report(report))
    return cache
