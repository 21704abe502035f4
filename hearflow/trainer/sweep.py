"""``hearflow sweep CONFIG --seeds 0,1,2 --set model.flow=cnn,none``: one training run per cell, and a table.

A cell is one combination of the ``--set`` values and one seed. For each cell:

1. train ``CONFIG`` with the cell's overrides and ``train.seed`` into ``OUT/<cell>/run``
   (continuing with ``--resume`` semantics when a killed sweep left a partial run);
2. evaluate its ``best/`` checkpoint on the test split into ``OUT/<cell>/eval``;
3. write ``OUT/<cell>/result.json`` (the summary and the per-clip scores), atomically:
   a cell is finished exactly when that file exists, so a killed sweep rerun with the
   same command continues where it stopped and never redoes a finished cell.

Then :func:`summarize` writes ``OUT/summary.{json,csv,md}``: per setting (the ``--set``
values) and per motion regime, pointing and adaptive cIoU@0.5 as mean ± standard
deviation over the seeds with the per-seed values, and the paired difference between
the first value of the first ``--set`` key and each other value (e.g. flow − no-flow),
with a bootstrap interval over the test clips (per clip: the mean over seeds).
"""

from __future__ import annotations

import csv
import itertools
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hearflow import config as config_io
from hearflow.errors import HearflowError

RESULT = "result.json"
METRICS = ("pointing", "ciou_adap@0.5")
"""Reported per regime; per clip: ``pointing`` (0/1) and ``ciou_adaptive >= 0.5`` (0/1)."""
BOOTSTRAP = 2000
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class Cell:
    """One run of the sweep: the ``--set`` values (key → value, in --set order) and a seed."""

    values: tuple[tuple[str, str], ...]
    seed: int

    @property
    def setting(self) -> str:
        """The values without the seed, e.g. ``model.flow=cnn``: what is compared."""
        return ",".join(f"{k}={v}" for k, v in self.values) or "base"

    @property
    def name(self) -> str:
        """Folder name: the values and the seed, with characters safe in a path."""
        safe = "_".join(f"{k}={v}" for k, v in self.values).replace("/", "-").replace(" ", "")
        return f"{safe}_seed{self.seed}" if safe else f"seed{self.seed}"

    def overrides(self) -> list[str]:
        return [f"{k}={v}" for k, v in self.values] + [f"train.seed={self.seed}"]


def parse_seeds(text: str) -> list[int]:
    """"0,1,2" → [0, 1, 2]; a range "0-4" is also accepted."""
    seeds = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            if "-" in part[1:]:
                a, b = part.split("-", 1)
                seeds += list(range(int(a), int(b) + 1))
            elif part:
                seeds.append(int(part))
        except ValueError:
            raise HearflowError(f"--seeds: {part!r} is not a seed (give e.g. 0,1,2 or 0-4)") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise HearflowError(f"--seeds {text!r}: give at least one seed, without repeats")
    return seeds


def parse_sets(sets: list[str]) -> list[tuple[str, list[str]]]:
    """["model.flow=cnn,none"] → [("model.flow", ["cnn", "none"])]."""
    out = []
    for item in sets or []:
        key, sep, raw = item.partition("=")
        values = [v.strip() for v in raw.split(",") if v.strip()]
        if not sep or not key.strip() or not values:
            raise HearflowError(f"--set {item!r}: expected KEY=VALUE[,VALUE...], e.g. model.flow=cnn,none")
        if key.strip() in {k for k, _ in out} or key.strip() == "train.seed":
            raise HearflowError(f"--set {item!r}: each key once, and the seed through --seeds")
        out.append((key.strip(), values))
    return out


def make_cells(seeds: list[int], sets: list[tuple[str, list[str]]]) -> list[Cell]:
    """Every combination of the values, each with every seed (seeds innermost)."""
    keys = [k for k, _ in sets]
    combos = itertools.product(*[v for _, v in sets]) if sets else [()]
    return [Cell(tuple(zip(keys, combo)), s) for combo in combos for s in seeds]


def _write_json_atomic(path: Path, data) -> None:
    """Write to a temporary name, flush to disk, then rename: the file is whole or absent."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def run_cell(config_path, cell: Cell, cell_dir: Path, overrides=(), progress: bool = False) -> dict:
    """Train (or finish training) and evaluate one cell; returns and writes its result."""
    from hearflow.trainer.evaluate import EvalOptions, evaluate_model
    from hearflow.trainer.experiment import ExperimentConfig
    from hearflow.trainer.train import STATE, train

    run_dir = cell_dir / "run"
    cfg = config_io.load(ExperimentConfig, config_path, [*overrides, *cell.overrides(), f"train.out={run_dir}"])
    resume = (run_dir / STATE).is_file() and (run_dir / "last" / "model.safetensors").is_file()
    train(cfg, resume=resume, progress=progress)
    best = run_dir / "best" if (run_dir / "best").is_dir() else run_dir / "last"
    opts = EvalOptions(split=cfg.data.test_split, listen=False, progress=progress, announce=False,
                       layout=cfg.data.layout, cache=cfg.data.cache or None)
    summary = evaluate_model(best, cfg.data.path, cell_dir / "eval", opts)
    with open(cell_dir / "eval" / "per_clip.csv") as f:
        clips = [
            {"id": r["id"], "regime": r.get("regime") or "", "pointing": float(r["pointing"]),
             "ciou_adap@0.5": float(r["ciou_adaptive"] != "" and float(r["ciou_adaptive"]) >= 0.5)}
            for r in csv.DictReader(f) if r.get("skipped") not in ("True", "true", "1")
        ]
    result = {"cell": cell.name, "setting": cell.setting, "values": dict(cell.values), "seed": cell.seed,
              "checkpoint": str(best), "summary": {k: summary.get(k) for k in ("n", *METRICS)},
              "by_regime": summary.get("by_regime", {}), "clips": clips}
    _write_json_atomic(cell_dir / RESULT, result)
    return result


def run_sweep(config_path, seeds: list[int], sets: list[tuple[str, list[str]]], out, overrides=(),
              progress: bool = True) -> dict:
    """Run every unfinished cell (see the module docstring), then write and return the summary."""
    from tqdm import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cells = make_cells(seeds, sets)
    _check_plan(out, config_path, seeds, sets, overrides)
    done = [c for c in cells if (out / c.name / RESULT).is_file()]
    todo = [c for c in cells if c not in done]
    bar = tqdm(total=len(cells), initial=len(done), unit="run", desc="sweep", dynamic_ncols=True,
               disable=None if progress else True)
    try:
        for cell in todo:
            bar.set_postfix_str(cell.name)
            (out / cell.name).mkdir(exist_ok=True)
            run_cell(config_path, cell, out / cell.name, overrides, progress=False)
            bar.update()
    finally:
        bar.close()
    results = [json.loads((out / c.name / RESULT).read_text()) for c in cells]
    summary = summarize(results, sets)
    summary.update(skipped=len(done), ran=len(todo))
    write_summary(out, summary)
    return summary


def _check_plan(out: Path, config_path, seeds, sets, overrides) -> None:
    """sweep.json records the plan; a rerun into the same folder must use the same config and overrides."""
    plan = {"config": str(config_path), "overrides": list(overrides),
            "config_text": Path(config_path).read_text() if config_path else ""}
    path = out / "sweep.json"
    if path.is_file():
        old = json.loads(path.read_text())
        if {k: old.get(k) for k in plan} != plan:
            raise HearflowError(f"{out} holds a sweep of another config or overrides; use a new --out")
    _write_json_atomic(path, {**plan, "seeds": list(seeds), "sets": [[k, v] for k, v in sets]})


# --------------------------------------------------------------------------- the table
def _spread(values: list[float]) -> dict:
    v = np.asarray([x for x in values if x is not None], np.float64)
    if v.size == 0:
        return {"mean": None, "std": None, "per_seed": []}
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "per_seed": [round(float(x), 4) for x in v]}


def _regime_value(result: dict, regime: str, metric: str):
    if regime == "all":
        return result["summary"].get(metric)
    return result["by_regime"].get(regime, {}).get(metric)


def paired_difference(a: list[dict], b: list[dict], metric: str, regime: str, seed: int = BOOTSTRAP_SEED) -> dict:
    """mean(a − b) over the test clips both settings scored, with a 95 % bootstrap interval.

    a, b: the results (one per seed) of two settings. Per clip, each setting's value is
    its mean over seeds; clips are resampled with replacement (``BOOTSTRAP`` times).
    """
    def per_clip(results):
        values: dict[str, list[float]] = {}
        for r in results:
            for c in r["clips"]:
                if regime == "all" or c["regime"] == regime:
                    values.setdefault(c["id"], []).append(c[metric])
        return {k: float(np.mean(v)) for k, v in values.items()}

    pa, pb = per_clip(a), per_clip(b)
    ids = sorted(set(pa) & set(pb))
    if not ids:
        return {"n": 0, "diff": None, "low": None, "high": None}
    d = np.array([pa[i] - pb[i] for i in ids])
    rng = np.random.default_rng(seed)
    boot = d[rng.integers(0, len(d), (BOOTSTRAP, len(d)))].mean(axis=1)
    low, high = np.percentile(boot, [2.5, 97.5])
    return {"n": len(ids), "diff": float(d.mean()), "low": float(low), "high": float(high)}


def summarize(results: list[dict], sets: list[tuple[str, list[str]]]) -> dict:
    """Per setting and regime: mean, std and per-seed values; paired differences (see module docstring)."""
    settings = list(dict.fromkeys(r["setting"] for r in results))
    regimes = ["all"] + sorted({c["regime"] for r in results for c in r["clips"] if c["regime"]})
    by_setting = {s: [r for r in results if r["setting"] == s] for s in settings}
    table = {
        s: {reg: {m: _spread([_regime_value(r, reg, m) for r in rs]) for m in METRICS} for reg in regimes}
        for s, rs in by_setting.items()
    }
    for s, rs in by_setting.items():
        for reg in regimes:
            table[s][reg]["n"] = sum(1 for c in rs[0]["clips"] if reg == "all" or c["regime"] == reg)
    return {"settings": settings, "regimes": regimes, "seeds": sorted({r["seed"] for r in results}),
            "table": table, "differences": _differences(by_setting, sets, regimes)}


def _differences(by_setting: dict, sets, regimes) -> list[dict]:
    """First value of the first --set key minus each other value, the other keys held fixed."""
    if not sets or len(sets[0][1]) < 2:
        return []
    key, values = sets[0]
    out = []
    for s in by_setting:
        head = dict(by_setting[s][0]["values"])
        if head.get(key) != values[0]:
            continue
        for other in values[1:]:
            t = ",".join(f"{k}={other if k == key else v}" for k, v in head.items())
            if t not in by_setting:
                continue
            diffs = {reg: {m: paired_difference(by_setting[s], by_setting[t], m, reg) for m in METRICS}
                     for reg in regimes}
            out.append({"a": s, "b": t, "by_regime": diffs})
    return out


def _fmt(v, signed: bool = False) -> str:
    return "n/a" if v is None else (f"{v:+.3f}" if signed else f"{v:.3f}")


def markdown(summary: dict) -> str:
    """One table per metric: regimes as rows, settings (mean ± std, per-seed values) and differences as columns."""
    lines = [f"Seeds: {', '.join(map(str, summary['seeds']))}. Cells: mean ± standard deviation over the "
             "seeds (per-seed values). Differences: mean over test clips of the per-clip difference "
             f"(each setting averaged over seeds), 95 % bootstrap interval over clips ({BOOTSTRAP} resamples)."]
    for m in METRICS:
        diffs = summary["differences"]
        head = ["regime", "n"] + summary["settings"] + [f"{d['a']} − {d['b']}" for d in diffs]
        lines += ["", f"**{m}**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for reg in summary["regimes"]:
            first = summary["table"][summary["settings"][0]][reg]
            row = [reg, str(first["n"])]
            for s in summary["settings"]:
                c = summary["table"][s][reg][m]
                seeds = ", ".join(f"{x:.3f}" for x in c["per_seed"])
                row.append(f"{_fmt(c['mean'])} ± {_fmt(c['std'])} ({seeds})" if c["mean"] is not None else "n/a")
            for d in diffs:
                x = d["by_regime"][reg][m]
                row.append(f"{_fmt(x['diff'], True)} [{_fmt(x['low'], True)}, {_fmt(x['high'], True)}]")
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def write_summary(out: Path, summary: dict) -> None:
    """summary.json, summary.csv (long format: one row per setting/difference, regime and metric), summary.md."""
    _write_json_atomic(out / "summary.json", summary)
    rows = []
    for s in summary["settings"]:
        for reg in summary["regimes"]:
            for m in METRICS:
                c = summary["table"][s][reg][m]
                rows.append({"kind": "setting", "setting": s, "regime": reg, "metric": m, "n": summary["table"][s][reg]["n"],
                             "mean": c["mean"], "std": c["std"], "per_seed": " ".join(map(str, c["per_seed"]))})
    for d in summary["differences"]:
        for reg in summary["regimes"]:
            for m in METRICS:
                x = d["by_regime"][reg][m]
                rows.append({"kind": "difference", "setting": f"{d['a']} - {d['b']}", "regime": reg, "metric": m,
                             "n": x["n"], "mean": x["diff"], "ci_low": x["low"], "ci_high": x["high"]})
    keys = ["kind", "setting", "regime", "metric", "n", "mean", "std", "per_seed", "ci_low", "ci_high"]
    with open(out / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    (out / "summary.md").write_text(markdown(summary))
