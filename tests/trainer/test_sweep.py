"""hearflow sweep: cells, the table with spreads and paired bootstrap intervals, resuming a killed sweep."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hearflow.errors import HearflowError
from hearflow.trainer import sweep

REPO = Path(__file__).resolve().parents[2]


def fake_result(setting_value: str, seed: int, per_clip: dict) -> dict:
    """A result.json as run_cell writes it, from {clip id: (regime, pointing, ciou_hit)}."""
    clips = [{"id": k, "regime": r, "pointing": p, "ciou_adap@0.5": c} for k, (r, p, c) in per_clip.items()]

    def mean(rows, key):
        return float(np.mean([x[key] for x in rows])) if rows else None

    by_regime = {}
    for reg in sorted({c["regime"] for c in clips}):
        rows = [c for c in clips if c["regime"] == reg]
        by_regime[reg] = {"n": len(rows), "pointing": mean(rows, "pointing"), "ciou_adap@0.5": mean(rows, "ciou_adap@0.5")}
    return {"cell": f"x_{seed}", "setting": f"model.flow={setting_value}", "values": {"model.flow": setting_value},
            "seed": seed, "summary": {"n": len(clips), "pointing": mean(clips, "pointing"),
                                      "ciou_adap@0.5": mean(clips, "ciou_adap@0.5")},
            "by_regime": by_regime, "clips": clips}


def test_parsing_and_cells():
    assert sweep.parse_seeds("0,1,2") == [0, 1, 2] and sweep.parse_seeds("3-5") == [3, 4, 5]
    with pytest.raises(HearflowError, match="seeds"):
        sweep.parse_seeds("0,0")
    sets = sweep.parse_sets(["model.flow=cnn,none", "loss.name=htf"])
    assert sets == [("model.flow", ["cnn", "none"]), ("loss.name", ["htf"])]
    with pytest.raises(HearflowError, match="KEY=VALUE"):
        sweep.parse_sets(["model.flow"])
    with pytest.raises(HearflowError, match="seed"):
        sweep.parse_sets(["train.seed=1,2"])
    cells = sweep.make_cells([0, 1], sets)
    assert [c.name for c in cells] == ["model.flow=cnn_loss.name=htf_seed0", "model.flow=cnn_loss.name=htf_seed1",
                                       "model.flow=none_loss.name=htf_seed0", "model.flow=none_loss.name=htf_seed1"]
    assert cells[3].overrides() == ["model.flow=none", "loss.name=htf", "train.seed=1"]


def test_summary_spread_and_paired_difference():
    # 40 clips in two regimes; "cnn" points right on every "move" clip, "none" on half of them
    ids = [f"c{i}" for i in range(40)]
    reg = {k: ("move" if i < 20 else "still") for i, k in enumerate(ids)}
    results = []
    for seed in (0, 1, 2):
        results.append(fake_result("cnn", seed, {k: (reg[k], 1.0 if reg[k] == "move" else float(i % 2 == seed % 2), 1.0)
                                                 for i, k in enumerate(ids)}))
        results.append(fake_result("none", seed, {k: (reg[k], float(i % 2 == 0), 0.0) for i, k in enumerate(ids)}))
    s = sweep.summarize(results, [("model.flow", ["cnn", "none"])])
    assert s["regimes"] == ["all", "move", "still"] and s["seeds"] == [0, 1, 2]
    move = s["table"]["model.flow=cnn"]["move"]["pointing"]
    assert move["mean"] == 1.0 and move["std"] == 0.0 and move["per_seed"] == [1.0, 1.0, 1.0]
    still = s["table"]["model.flow=cnn"]["still"]["pointing"]
    assert still["per_seed"] == [0.5, 0.5, 0.5]
    (d,) = s["differences"]
    assert (d["a"], d["b"]) == ("model.flow=cnn", "model.flow=none")
    m = d["by_regime"]["move"]["pointing"]
    assert m["n"] == 20 and m["diff"] == pytest.approx(0.5) and m["low"] < 0.5 < m["high"] and m["low"] > 0
    c = d["by_regime"]["all"]["ciou_adap@0.5"]
    assert c["diff"] == 1.0 and c["low"] == c["high"] == 1.0  # no variation over clips: a point interval
    # seeded: the same numbers twice
    assert sweep.summarize(results, [("model.flow", ["cnn", "none"])]) == s
    text = sweep.markdown(s)
    assert "| move | 20 | 1.000 ± 0.000 (1.000, 1.000, 1.000)" in text and "+0.500 [" in text


@pytest.mark.slow
def test_a_killed_sweep_continues_where_it_stopped(synth_dir, tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(f"data:\n  path: {synth_dir}\n  workers: 0\npreprocess:\n  image_size: 64\n"
                   "model:\n  backbone: resnet18_w16\ntrain:\n  epochs: 1\n  batch_size: 8\n  threads: 2\n")
    out = tmp_path / "sweep"
    args = [str(cfg), "--seeds", "0,1", "--set", "model.flow=cnn,none", "--out", str(out), "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "hearflow.cli", "sweep", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = out / "model.flow=cnn_seed0" / sweep.RESULT
    deadline = time.time() + 240
    while not first.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert first.is_file()
    finished = {p.parent.name for p in out.glob(f"*/{sweep.RESULT}")}
    assert len(finished) < 4
    stamp = first.stat().st_mtime_ns
    # the rerun (same command) skips the finished cells and does the rest
    from hearflow.cli import main

    assert main(["sweep", *args]) == 0
    assert first.stat().st_mtime_ns == stamp
    summary = json.loads((out / "summary.json").read_text())
    assert summary["skipped"] == len(finished) and summary["ran"] == 4 - len(finished)
    assert summary["settings"] == ["model.flow=cnn", "model.flow=none"]
    assert len(summary["table"]["model.flow=none"]["all"]["pointing"]["per_seed"]) == 2
    assert (out / "summary.md").read_text().count("model.flow=cnn − model.flow=none") == 2
    assert "difference" in (out / "summary.csv").read_text()
    # another config into the same folder is refused
    cfg.write_text(cfg.read_text().replace("epochs: 1", "epochs: 2"))
    with pytest.raises(HearflowError, match="another config"):
        sweep.run_sweep(cfg, [0], [], out, progress=False)
