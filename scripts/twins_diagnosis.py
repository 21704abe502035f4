"""Does a flow model use motion to pick the sounding one of identical twins?

For every test clip of a twins regime (``hearflow synth --config configs/synth_twins.yaml``),
from the prepared cache (the inputs the evaluator gives the model):

1. the flow magnitude the model sees inside the sounding twin's box and inside the silent
   twins' boxes (the model's flow input units);
2. the map's mean inside those boxes, with the clip's flow and with zero flow (the model
   shown no motion);
3. how often the sounding twin's box has the highest map of all twins, both ways;
4. and on every test clip, all regimes: pointing and adaptive cIoU@0.5 with the clip's
   flow and with zero flow (does the model's score come from motion at all?).

If (1) differs between the twins but (2)/(3) do not follow it, the input carries the
cue and the model does not use it. The script also prints what the training loss (HTF,
defaults) says of two ideal maps: one lighting both twins, one lighting only the sounding
one; equal losses mean training gives no reason to prefer either.

    python scripts/twins_diagnosis.py CHECKPOINT [CHECKPOINT ...] --data DATA [--json OUT]

DATA: the dataset folder (its annotations.json lists every object with ``sounding`` and
``moving``); its cache is made with each checkpoint's own preprocessing if missing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hearflow.media.flow import zero_flow
from hearflow.runtime.backends import load_backend
from hearflow.trainer.clip_cache import ensure_cache
from hearflow.trainer.data import CacheIndex, ClipDataset
from hearflow.trainer.evaluate import score_maps
from hearflow.trainer.losses import LossConfig, htf_loss

FIELDS = ("flow_sounding", "flow_silent", "map_sounding", "map_silent", "map0_sounding", "map0_silent",
          "picks_sounding", "picks_sounding0")


def box_mean(a: np.ndarray, box) -> float:
    """Mean of an H×W array inside a normalised (x0, y0, x1, y1) box (at least one cell)."""
    h, w = a.shape
    x0, y0, x1, y1 = box
    r0, c0 = min(int(y0 * h), h - 1), min(int(x0 * w), w - 1)
    return float(a[r0:max(r0 + 1, int(np.ceil(y1 * h))), c0:max(c0 + 1, int(np.ceil(x1 * w)))].mean())


def maps_both_ways(backend, dataset: ClipDataset) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """{cache index: (flow magnitude S×S, map with the clip's flow, map with zero flow)}."""
    zero = zero_flow(backend.preprocess)[None]
    out = {}
    for k in range(len(dataset)):
        sample = dataset[k]
        emb = backend.embed_audio(sample["spec"].numpy()[None])
        frame, flow = sample["frame"].numpy()[None], sample["flow"].numpy()
        out[sample["index"]] = (np.hypot(*flow), backend.localize(frame, flow[None], emb)[0],
                                backend.localize(frame, zero, emb)[0])
    return out


def measure(magnitude: np.ndarray, maps: dict[str, np.ndarray], objects: list[dict]) -> dict:
    """One twins clip's row (see the module docstring); maps: {"": with flow, "0": zero flow}."""
    sounding = next(o["bbox"] for o in objects if o["sounding"])
    silent = [o["bbox"] for o in objects if not o["sounding"]]
    row = {"flow_sounding": box_mean(magnitude, sounding),
           "flow_silent": float(np.mean([box_mean(magnitude, b) for b in silent]))}
    for tag, m in maps.items():
        row[f"map{tag}_sounding"] = box_mean(m, sounding)
        row[f"map{tag}_silent"] = float(np.mean([box_mean(m, b) for b in silent]))
        row[f"picks_sounding{tag}"] = float(box_mean(m, sounding) > max(box_mean(m, b) for b in silent))
    return row


def diagnose(checkpoint: Path, data: Path, annotations: dict) -> dict:
    """For one checkpoint: {"twins": {regime: {field: mean over its test clips, "n"}},
    "without_flow": {regime: {metric: (with the clip's flow, with zero flow)}}}."""
    backend = load_backend(checkpoint, "torch", device="cpu")
    if not backend.uses_flow:
        raise SystemExit(f"error: {checkpoint} does not use flow")
    index = CacheIndex(ensure_cache(data, backend.preprocess, None, None, False))
    computed = maps_both_ways(backend, ClipDataset(index, [i for i in index.indices("test") if index.clips[i]["boxes"]]))
    rows: dict[str, list[dict]] = {}
    for i, (magnitude, with_flow, zero) in computed.items():
        clip = annotations.get(index.clips[i]["id"], {})
        if clip.get("regime", "").startswith("twins"):
            rows.setdefault(clip["regime"], []).append(measure(magnitude, {"": with_flow, "0": zero}, clip["objects"]))
    if not rows:
        raise SystemExit(f"error: {data}: no test clips of a twins regime")
    twins = {regime: {"n": len(rs), **{f: float(np.mean([r[f] for r in rs])) for f in FIELDS}}
             for regime, rs in sorted(rows.items())}
    flow, zero = (score_maps({i: c[k] for i, c in computed.items()}, index.clips)[1]["by_regime"] for k in (1, 2))
    without = {reg: {m: (flow[reg][m], zero[reg][m]) for m in ("pointing", "ciou_adap@0.5")} for reg in flow}
    return {"twins": twins, "without_flow": without}


def markdown(results: dict[str, dict]) -> str:
    lines = ["| checkpoint | regime | n | flow, sounding / silent | map, sounding / silent | "
             "map with zero flow, sounding / silent | sounding twin highest: flow / zero flow |",
             "|---|---|---:|---|---|---|---|"]
    for name, result in results.items():
        for regime, r in result["twins"].items():
            lines.append(f"| {name} | {regime} | {r['n']} | {r['flow_sounding']:.3f} / {r['flow_silent']:.3f} | "
                         f"{r['map_sounding']:.3f} / {r['map_silent']:.3f} | "
                         f"{r['map0_sounding']:.3f} / {r['map0_silent']:.3f} | "
                         f"{r['picks_sounding']:.2f} / {r['picks_sounding0']:.2f} |")
    lines += ["", "| checkpoint | regime | pointing: flow / zero flow | cIoU_adap@0.5: flow / zero flow |",
              "|---|---|---|---|"]
    for name, result in results.items():
        for regime, r in result["without_flow"].items():
            lines.append(f"| {name} | {regime} | {r['pointing'][0]:.3f} / {r['pointing'][1]:.3f} | "
                         f"{r['ciou_adap@0.5'][0]:.3f} / {r['ciou_adap@0.5'][1]:.3f} |")
    return "\n".join(lines)


def loss_of_ideal_maps(batch: int = 16, classes: int = 4, dim: int = 64, size: int = 14, seed: int = 0) -> dict:
    """The HTF loss of a batch whose clips share ``classes`` sound classes: each clip's
    sounding twin shows its class's look (class direction + noise) and its audio is the
    class direction + other noise; ``both``: a silent twin with the same look is also on
    screen, ``sounding_only``: that twin's cells are background instead."""
    gen = torch.Generator().manual_seed(seed)

    def near(base, spread):
        return F.normalize(base + spread * F.normalize(torch.randn(batch, dim, generator=gen), dim=1), dim=1)

    cls = F.normalize(torch.randn(classes, dim, generator=gen), dim=1)[torch.arange(batch) % classes]
    audio, look = near(cls, 0.5), near(cls, 0.3)
    background = near(torch.zeros(batch, dim), 1.0)
    out = {}
    for name, twins in (("both", 2), ("sounding_only", 1)):
        visual = background[:, :, None, None].expand(batch, dim, size, size).clone()
        for k in range(twins):  # twin k covers a 4×4 block of its own
            at = slice(2 + 6 * k, 6 + 6 * k)
            visual[:, :, at, at] = look[:, :, None, None]
        out[name] = float(htf_loss(visual, audio, LossConfig()))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoints", nargs="+", type=Path, help="checkpoints of flow models")
    p.add_argument("--data", type=Path, required=True, help="dataset folder with the twins regimes")
    p.add_argument("--json", type=Path, help="also write the numbers here")
    args = p.parse_args()
    annotations = {a["file"]: a for a in json.loads((args.data / "annotations.json").read_text())}
    results = {str(c): diagnose(c, args.data, annotations) for c in args.checkpoints}
    print(markdown(results))
    loss = loss_of_ideal_maps()
    print(f"\nHTF loss of ideal maps: both twins lit {loss['both']:.3g}, only the sounding twin {loss['sounding_only']:.3g}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**results, "loss_of_ideal_maps": loss}, indent=1))


if __name__ == "__main__":
    main()
