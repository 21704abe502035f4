"""``hearflow eval``: score heatmaps exactly as the field reports results.

Two forms:
- ``hearflow eval MODEL DATA``: run a model (checkpoint or export folder, any backend)
  on DATA's test split, prepared with the model's own PreprocessConfig, and score it;
  ``--baseline center`` scores the centre prior instead of a model.
- ``hearflow eval --heatmaps MAPS --annotations ANN``: score maps from any method.

The protocol (median-threshold cIoU@0.5 / AUC as LVS, HTF and EZ-VSL; the adaptive
top-k variant; pointing accuracy; by box size) lives in :mod:`hearflow.trainer.metrics`.
Outputs in ``--out``: summary.json, per_clip.csv, success_curve.png, overlay_grid.png and,
for synthetic data, a breakdown per motion regime (by_regime.png); for a model also the
"does it listen?" check: the same frames scored with silence, white noise and another
clip's audio.
"""

from __future__ import annotations

import csv
import json
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from hearflow.errors import HearflowError
from hearflow.media.annotations import FLICKR_FRAME, read_flickr_xml, read_vggss
from hearflow.media.preprocess import PreprocessConfig
from hearflow.runtime.backends import load_backend
from hearflow.trainer import metrics, plots
from hearflow.trainer.data import CacheIndex, ClipDataset
from hearflow.trainer.clip_cache import ensure_cache

LISTEN_CONDITIONS = ("silence", "noise", "shuffle")


# ------------------------------------------------------------------------- scoring
def gt_of(clip: dict, size: int = metrics.SIZE) -> np.ndarray:
    """Ground-truth map of a clip record (boxes + box_format)."""
    return metrics.gt_map_from_boxes(clip["boxes"], clip["box_format"], size)


def score_maps(maps: dict, clips) -> tuple[list[dict], dict]:
    """Score ``maps`` {key: m×n map} against ``clips[key]`` (records with id, boxes,
    box_format, info). Returns (per-clip rows, summary); the summary gains ``by_regime``
    when clips record a motion regime."""
    rows = []
    for key, heat in maps.items():
        clip = clips[key]
        row = {"id": clip["id"], **metrics.score_clip(heat, gt_of(clip)), "peak": float(np.max(heat))}
        row["regime"] = clip.get("info", {}).get("regime")
        rows.append(row)
    summary = metrics.summarize(rows)
    regimes = sorted({r["regime"] for r in rows if r["regime"]})
    if regimes:
        summary["by_regime"] = {}
        for reg in regimes:
            part = metrics.summarize([r for r in rows if r["regime"] == reg])
            summary["by_regime"][reg] = {k: part[k] for k in ("n", "pointing", "ciou_adap@0.5", "ciou@0.5",
                                                               "mean_ciou_adap")}
    return rows, summary


def write_outputs(out: Path, rows: list[dict], summary: dict, overlays: list[dict], title: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(out / "per_clip.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    if summary.get("n"):
        th = summary["thresholds"]
        plots.success_curve_png(
            {f"{title} (median threshold)": (th, summary["success"]),
             f"{title} (adaptive)": (th, summary["success_adap"])},
            out / "success_curve.png",
        )
    if overlays:
        plots.overlay_grid_png(overlays, out / "overlay_grid.png")
    if summary.get("by_regime"):
        plots.bar_breakdown_png(summary["by_regime"], out / "by_regime.png", metric="pointing")


def format_summary(summary: dict, title: str = "") -> str:
    def f(v):
        return "  n/a" if v is None else f"{v:.3f}"

    lines = [
        f"{title}: {summary['n']} clips scored, {summary['skipped']} skipped (no box)".strip(": "),
        f"  standard  cIoU@0.5 {f(summary['ciou@0.5'])}  AUC {f(summary['auc'])}  mean cIoU {f(summary['mean_ciou'])}"
        f"  (ceiling of cIoU@0.5 for these box sizes: {f(summary['ceiling_ciou@0.5'])})",
        f"  adaptive  cIoU@0.5 {f(summary['ciou_adap@0.5'])}  AUC {f(summary['auc_adap'])}"
        f"  mean cIoU {f(summary['mean_ciou_adap'])}",
        f"  pointing  {f(summary['pointing'])}",
    ]
    for name, part in summary.get("by_size", {}).items():
        if part["n"]:
            lines.append(f"  box {name:<7} n={part['n']:<4} pointing {f(part['pointing'])}"
                         f"  cIoU_adap@0.5 {f(part['ciou_adap@0.5'])}  cIoU@0.5 {f(part['ciou@0.5'])}")
    for name, part in summary.get("by_regime", {}).items():
        lines.append(f"  regime {name:<22} n={part['n']:<4} pointing {f(part['pointing'])}"
                     f"  cIoU_adap@0.5 {f(part['ciou_adap@0.5'])}")
    for cond, part in summary.get("listen", {}).items():
        lines.append(f"  audio={cond:<8} peak similarity {part['peak']:.3f} (true audio {summary['listen_ref_peak']:.3f})"
                     f"  pointing {f(part['pointing'])}  cIoU_adap@0.5 {f(part['ciou_adap@0.5'])}")
    return "\n".join(lines)


# ------------------------------------------------------------------------- running models
def run_backend(backend, dataset, batch_size: int = 32, progress: bool = True) -> dict[int, np.ndarray]:
    """Maps {cache index: m×n} of a backend over a ClipDataset (batched)."""
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    maps = {}
    # disable=None: no bar when not on a terminal
    for b in tqdm(loader, desc="eval", unit="batch", disable=None if progress else True, leave=False):
        emb = backend.embed_audio(b["spec"].numpy())
        flows = b["flow"].numpy() if backend.uses_flow else None
        for i, m in zip(b["index"].tolist(), backend.localize(b["frame"].numpy(), flows, emb)):
            maps[i] = m
    return maps


def _overlay_items(dataset, maps: dict, clips, n: int = 16) -> list[dict]:
    """Overlay panels for the first n clips: stored frame, map, GT boxes in frame pixels."""
    items = []
    frames = np.load(dataset.index.path / "frames.npy", mmap_mode="r")
    size = frames.shape[1]
    for i in list(maps)[:n]:
        clip = clips[i]
        if clip["box_format"] == "flickr":
            boxes = [[v * size / FLICKR_FRAME for v in b] for b in clip["boxes"]]
        else:
            boxes = [[v * size for v in b] for b in clip["boxes"]]
        items.append({"frame": np.asarray(frames[i]), "map": maps[i], "boxes": boxes, "title": clip["id"]})
    return items


@dataclass(frozen=True)
class EvalOptions:
    """How :func:`evaluate_model` runs and scores a model.

    backend: 'torch', 'onnxruntime[-fp32|-int8]' or 'tensorrt'; None = by model type.
    split: the dataset split scored.
    batch_size: clips per backend call.
    save_maps: also write the maps as ``out``/maps.npz.
    listen: also score the same frames with silence, noise and another clip's audio.
    baseline: 'center' or 'whole' to score that prior map instead of a model.
    cache: prepared cache folder; None = the default beside the data.
    workers: processes preparing the data; None = the default.
    device: 'auto', 'cpu', 'cuda' or 'cuda:N'.
    progress: progress bars.
    layout: how the dataset folder is read: 'auto', 'videos' or 'flickr' (see trainer.clip_cache).
    announce: print the dataset's summary line (and a warning when a flow model gets no flow).
    """

    backend: str | None = None
    split: str = "test"
    batch_size: int = 32
    save_maps: bool = False
    listen: bool = True
    baseline: str | None = None
    cache: str | Path | None = None
    workers: int | None = None
    device: str = "auto"
    progress: bool = True
    layout: str = "auto"
    announce: bool = True


def evaluate_model(model, data, out, options: EvalOptions | None = None, **fields) -> dict:
    """Evaluate a model (or a baseline: 'center' / 'whole') on ``data``'s split.

    model: checkpoint or export folder (None with a baseline).
    data: dataset folder or prepared cache. out: output folder.
    options: an :class:`EvalOptions`; ``fields`` (its field names) override it, so
        ``evaluate_model(None, data, out, baseline="center")`` works too.
    """
    opts = replace(options or EvalOptions(), **fields)
    out = Path(out)
    if opts.baseline:
        be, cfg, title = None, PreprocessConfig(flow="none"), f"{opts.baseline} prior"
    else:
        be = load_backend(model, opts.backend, device=opts.device)
        cfg, title = be.preprocess, f"{Path(model).name} ({be.name})"
    flow_user = f"{Path(model).name} uses flow" if be is not None and be.uses_flow else None
    index = CacheIndex(ensure_cache(data, cfg, opts.cache, opts.workers, opts.progress, layout=opts.layout,
                                    flow_user=flow_user, announce=opts.announce))
    indices = index.indices(opts.split)
    if not indices:
        raise HearflowError(f"{data}: no prepared clips in split '{opts.split}' (splits: {index.splits()})")
    scored = [i for i in indices if index.clips[i]["boxes"]]
    dataset = ClipDataset(index, scored)
    if opts.baseline:
        prior = {"center": metrics.center_prior_map(7), "whole": metrics.whole_image_map(7)}[opts.baseline]
        maps = {i: prior for i in scored}
    else:
        maps = run_backend(be, dataset, opts.batch_size, opts.progress)
    rows, summary = score_maps(maps, index.clips)
    summary.update(model=str(model) if model else None, backend=be.name if be else None, baseline=opts.baseline,
                   data=str(data), split=opts.split, clips_without_boxes=len(indices) - len(scored))
    if opts.listen and be is not None:
        summary["listen_ref_peak"] = float(np.mean([r["peak"] for r in rows]))
        summary["listen"] = _listen_check(be, index, scored, opts)
    write_outputs(out, rows, summary, _overlay_items(dataset, maps, index.clips), title)
    if opts.save_maps:
        np.savez_compressed(out / "maps.npz", **{index.clips[i]["id"]: m for i, m in maps.items()})
    return summary


def _listen_check(be, index, scored: list[int], opts: EvalOptions) -> dict:
    """The "does it listen?" scores: the same frames with each of LISTEN_CONDITIONS as audio."""
    listen = {}
    for cond in LISTEN_CONDITIONS:
        alt = run_backend(be, ClipDataset(index, scored, audio_override=cond), opts.batch_size, opts.progress)
        alt_rows, alt_summary = score_maps(alt, index.clips)
        listen[cond] = {
            "peak": float(np.mean([r["peak"] for r in alt_rows])),
            "pointing": alt_summary["pointing"],
            "ciou_adap@0.5": alt_summary["ciou_adap@0.5"],
        }
    return listen


# ------------------------------------------------------------------------- any method's maps
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a file, or an empty archive


def load_maps(path) -> dict[str, np.ndarray]:
    """Heatmaps from a folder of ``<clip id>.npy`` or one ``.npz`` keyed by clip id.

    Every map must be a non-empty 2-D (m×n) array of finite real numbers. Raises
    HearflowError naming the first file (or ``.npz`` entry) that is not.
    """
    path = Path(path)
    if path.is_dir():
        maps = {p.stem: _load_npy(p) for p in sorted(path.glob("*.npy")) if p.is_file()}
    elif path.suffix == ".npz" and path.is_file():
        maps = _load_npz(path)
    else:
        raise HearflowError(f"{path}: heatmaps must be a folder of <clip id>.npy or a .npz file")
    if not maps:
        raise HearflowError(f"{path}: no heatmaps found")
    for key, heat in maps.items():
        problem = _map_problem(heat)
        if problem:
            where = path / f"{key}.npy" if path.is_dir() else f"{path} (entry {key!r})"
            raise HearflowError(f"{where}: {problem}")
    return maps


def _map_problem(heat: np.ndarray) -> str | None:
    """What makes ``heat`` unusable as a heatmap, or None."""
    if heat.ndim != 2:
        return f"maps must be 2-D (m×n), this one has shape {heat.shape}"
    if heat.size == 0:
        return f"the map is empty (shape {heat.shape[0]}×{heat.shape[1]})"
    if heat.dtype.kind not in "biuf":
        return f"the map holds {heat.dtype} values, not numbers"
    bad = int(np.count_nonzero(~np.isfinite(heat)))
    if bad:
        return f"the map holds {bad} NaN or infinite value(s) of {heat.size}"
    return None


def _load_npy(p: Path) -> np.ndarray:
    """One map file; a HearflowError naming it when it is not a plain .npy array."""
    with open(p, "rb") as f:
        head = f.read(len(_NPY_MAGIC))
    if head != _NPY_MAGIC:  # np.load would try it as a pickle and blame "pickled data"
        raise HearflowError(f"{p}: not a NumPy .npy file (no .npy header; write maps with numpy.save)")
    try:
        return np.load(p, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise HearflowError(f"{p}: holds an object array (pickled Python objects); "
                                "save each map as a numeric m×n array") from None
        raise HearflowError(f"{p}: cannot read the .npy file ({exc})") from None
    except (OSError, EOFError) as exc:
        raise HearflowError(f"{p}: cannot read the .npy file ({exc or 'truncated'})") from None


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    """All entries of a .npz; a HearflowError naming the file (and entry) on failure."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head not in _ZIP_MAGIC:
        raise HearflowError(f"{path}: not a NumPy .npz file (not a zip archive; write maps with numpy.savez)")
    key = None
    try:
        with np.load(path, allow_pickle=False) as z:
            maps = {}
            for key in z.files:
                maps[key] = z[key]
            return maps
    except ValueError as exc:
        where = f"{path} (entry {key!r})" if key is not None else str(path)
        if "allow_pickle" in str(exc):
            raise HearflowError(f"{where}: holds an object array (pickled Python objects); "
                                "save each map as a numeric m×n array") from None
        raise HearflowError(f"{where}: cannot read ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise HearflowError(f"{path}: cannot read the .npz file ({exc or 'truncated'})") from None


def load_annotations(path) -> dict[str, dict]:
    """Clip records {id: {id, boxes, box_format, info}} from a Flickr ``Annotations/``
    folder, a VGG-SS style json, or a dataset folder holding either."""
    path = Path(path)
    if path.is_dir() and (path / "annotations.json").is_file():
        path = path / "annotations.json"
    elif path.is_dir() and (path / "Annotations").is_dir():
        path = path / "Annotations"
    if path.is_dir():
        xmls = sorted(path.glob("*.xml"))
        if not xmls:
            raise HearflowError(f"{path}: no annotations (expected <id>.xml files, annotations.json or vggss.json)")
        return {p.stem: {"id": p.stem, "boxes": read_flickr_xml(p), "box_format": "flickr", "info": {}} for p in xmls}
    records = read_vggss(path)
    return {
        Path(str(r["file"])).stem: {
            "id": Path(str(r["file"])).stem, "boxes": r["bbox"], "box_format": "vggss",
            "info": {k: v for k, v in r.items() if k not in ("file", "bbox")},
        }
        for r in records
    }


def evaluate_heatmaps(maps_path, annotations, out, allow_missing: bool = False) -> dict:
    """Score maps from any method against any supported annotation format.

    Every annotated clip with a box needs a map (when the annotations record splits, as
    a synth dataset's do, every such clip of the splits the maps cover): a missing one
    raises HearflowError unless ``allow_missing``, since scoring a subset silently
    changes the numbers. The summary's ``annotated``, ``annotated_without_map`` and
    ``missing_maps`` (first ids) say how many were scored.
    """
    maps = load_maps(maps_path)
    clips = load_annotations(annotations)
    extra = sorted(set(maps) - set(clips))
    used = {k: m for k, m in maps.items() if k in clips}
    if not used:
        raise HearflowError(f"{maps_path}: no heatmap id matches an annotated clip in {annotations}")
    expected = _expected_ids(clips, used)
    missing = [k for k in expected if k not in maps]
    if missing and not allow_missing:
        raise HearflowError(
            f"{maps_path}: no map for {len(missing)} of {len(expected)} annotated clips in {annotations} "
            f"({_first(missing)}); give --allow-missing to score the others only"
        )
    rows, summary = score_maps(used, clips)
    summary.update(heatmaps=str(maps_path), annotations=str(annotations), maps_without_annotation=extra,
                   annotated=len(expected), annotated_without_map=len(missing), missing_maps=missing[:20])
    write_outputs(Path(out), rows, summary, [], Path(maps_path).stem)
    return summary


def _expected_ids(clips: dict[str, dict], used: dict) -> list[str]:
    """Ids of the clips that should have a map: those with a box, in the splits of ``used``
    when the records name their split (maps of the test split need not cover train)."""
    splits = {clips[k].get("info", {}).get("split") for k in used} - {None}
    return sorted(k for k, c in clips.items()
                  if c["boxes"] and (not splits or c.get("info", {}).get("split") in splits))


def _first(ids: list[str], n: int = 5) -> str:
    return ", ".join(ids[:n]) + (f", ... {len(ids) - n} more" if len(ids) > n else "")
