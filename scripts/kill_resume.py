"""A training run SIGKILLed mid-epoch and resumed ends where an uninterrupted run ends.

    python scripts/kill_resume.py configs/synth_tiny.yaml --out out/kill_resume train.epochs=4

Trains CONFIG (with the overrides) twice with `hearflow train` in subprocesses: once
straight through, once killed with SIGKILL half-way through epoch --kill-epoch (found from
the epoch times in metrics.csv) and then continued with `--resume`. Prints both runs'
final metrics and the sha256 of their last weights, writes verdict.json and exits 1 when
the weights or any metric differ (the seconds column aside).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def hearflow_train(config: str, out: Path, overrides: list[str], resume: bool = False) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "hearflow.cli", "train", config, f"train.out={out}", *overrides, "--no-progress"]
    return subprocess.Popen(cmd + (["--resume"] if resume else []), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def metrics(run: Path) -> list[dict]:
    path = run / "metrics.csv"
    if not path.is_file():
        return []
    with open(path) as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


def epoch_seconds(run: Path) -> list[float]:
    with open(run / "metrics.csv") as f:
        return [float(row["seconds"]) for row in csv.DictReader(f)]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def finish(proc: subprocess.Popen, what: str) -> None:
    _, err = proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"{what} failed ({proc.returncode}): {err.strip().splitlines()[-1:] if err else ''}")


def kill_mid_epoch(config: str, out: Path, overrides: list[str], kill_epoch: int, epoch_time: float) -> float:
    """Run until half-way through epoch ``kill_epoch`` (1-based), SIGKILL; returns when it was killed."""
    proc = hearflow_train(config, out, overrides)
    while len(metrics(out)) < kill_epoch - 1:  # epochs before the one to kill are done
        if proc.poll() is not None:
            sys.exit(f"the run ended before epoch {kill_epoch}: {proc.stderr.read().strip()[-300:]}")
        time.sleep(0.2)
    time.sleep(epoch_time / 2)
    if proc.poll() is not None:
        sys.exit("the run finished before it could be killed: use a later --kill-epoch or more data")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return epoch_time / 2


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config")
    ap.add_argument("overrides", nargs="*", help="config overrides, e.g. train.epochs=4")
    ap.add_argument("--out", default="out/kill_resume")
    ap.add_argument("--kill-epoch", type=int, default=2, help="the epoch to kill half-way (1-based)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    straight, killed = out / "straight", out / "killed"

    # 1. the reference: straight through (its epoch times say when "half-way" is)
    finish(hearflow_train(args.config, straight, args.overrides), "the uninterrupted run")
    epoch_time = epoch_seconds(straight)[args.kill_epoch - 1]
    # 2. killed half-way through an epoch, then resumed from its last checkpoint
    waited = kill_mid_epoch(args.config, killed, args.overrides, args.kill_epoch, epoch_time)
    epochs_at_kill = len(metrics(killed))
    finish(hearflow_train(args.config, killed, args.overrides, resume=True), "the resumed run")

    verdict = {
        "killed_in_epoch": args.kill_epoch, "seconds_into_epoch": round(waited, 1),
        "epochs_done_at_kill": epochs_at_kill,
        "straight": {"last_sha256": sha256(straight / "last" / "model.safetensors"), "final": metrics(straight)[-1]},
        "resumed": {"last_sha256": sha256(killed / "last" / "model.safetensors"), "final": metrics(killed)[-1]},
    }
    verdict["same"] = (verdict["straight"]["last_sha256"] == verdict["resumed"]["last_sha256"]
                       and metrics(straight) == metrics(killed))
    (out / "verdict.json").write_text(json.dumps(verdict, indent=2))
    print(json.dumps(verdict, indent=2))
    return 0 if verdict["same"] else 1


if __name__ == "__main__":
    sys.exit(main())
