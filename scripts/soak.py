"""Soak test: a realtime `hearflow run` for a long time, its resources sampled, judged flat or not.

    python scripts/soak.py --minutes 30 --out out/soak

Runs the engine on the synthetic live source (640×480, 30 fps, with audio) into ZeroMQ,
JSONL and the annotated video at once, with a deliberately slow ZeroMQ subscriber (it
sleeps between messages, so the publisher's queue stays full). Every --every seconds it
samples the engine process (the soak's clock starts at the first result, once the
model is loaded): resident memory (RSS), threads and open file descriptors,
from /proc (Linux). Writes samples.csv, soak.png and verdict.json under --out and exits 1
when any of them grew: after the first --warmup seconds, the last fifth of the samples
may exceed the first fifth by at most --rss-growth-mb (RSS) and not at all (threads,
descriptors).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sample(pid: int) -> dict:
    """RSS (MiB), threads and open descriptors of a live process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {
        "rss_mb": int(fields["VmRSS"].split()[0]) / 1024,
        "threads": int(fields["Threads"]),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
    }


SLOW_SUBSCRIBER = """
import sys, time, zmq
sock = zmq.Context().socket(zmq.SUB)
sock.setsockopt(zmq.RCVHWM, 4)
sock.connect(sys.argv[1])
sock.setsockopt(zmq.SUBSCRIBE, b"hearflow")
n = 0
while True:
    sock.recv_multipart()
    n += 1
    time.sleep(0.2)  # 5 messages/s against 30 published: the publisher must drop, not grow
"""


def judge(rows: list[dict], warmup: float, rss_growth_mb: float) -> dict:
    running = [r["t"] for r in rows if r["running"]]
    steady = [r for r in rows if running and r["t"] >= running[0] + warmup]
    if len(steady) < 10:
        return {"ok": False, "reason": f"only {len(steady)} samples after the warm-up"}
    fifth = max(2, len(steady) // 5)
    first, last = steady[:fifth], steady[-fifth:]
    verdict = {"samples": len(rows), "ok": True}
    for key, allowed in (("rss_mb", rss_growth_mb), ("threads", 0), ("fds", 0)):
        a = sum(r[key] for r in first) / len(first)
        b = sum(r[key] for r in last) / len(last)
        verdict[key] = {"first_fifth": round(a, 1), "last_fifth": round(b, 1), "max": max(r[key] for r in rows)}
        if b - a > allowed:
            verdict["ok"] = False
    return verdict


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    t = [r["t"] / 60 for r in rows]
    for ax, key, label in zip(axes, ("rss_mb", "threads", "fds"), ("RSS (MiB)", "threads", "open descriptors")):
        ax.plot(t, [r[key] for r in rows])
        ax.set_xlabel("minutes"), ax.set_title(label)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--warmup", type=float, default=60.0,
                    help="seconds after the first result that are not judged (caches, pools filling)")
    ap.add_argument("--rss-growth-mb", type=float, default=20.0)
    ap.add_argument("--model", default=str(ROOT / "checkpoints" / "synth_tiny"))
    ap.add_argument("--out", default="out/soak")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    seconds = args.minutes * 60
    engine = subprocess.Popen(
        [sys.executable, "-m", "hearflow.cli", "run", "--model", args.model, "--video", "synth", "--audio", "synth",
         "--sink", f"zmq:{endpoint},jsonl:{out / 'soak.jsonl'},video:{out / 'soak.mp4'}", "--no-status",
         "--duration", str(seconds + 600), "--summary", str(out / "summary.json")],
        stdout=subprocess.DEVNULL, stderr=open(out / "engine.log", "w"))
    subscriber = subprocess.Popen([sys.executable, "-c", SLOW_SUBSCRIBER, endpoint])
    rows, t0, running_at = [], time.monotonic(), None
    results = out / "soak.jsonl"
    try:
        while engine.poll() is None and (running_at is None or time.monotonic() - running_at < seconds):
            if running_at is None and results.is_file() and results.stat().st_size > 0:
                running_at = time.monotonic()  # the model is loaded and frames flow: the soak starts
            rows.append({"t": round(time.monotonic() - t0, 1), "running": running_at is not None,
                         **sample(engine.pid)})
            print(f"\r{rows[-1]}", end="", file=sys.stderr, flush=True)
            time.sleep(args.every)
    finally:
        print(file=sys.stderr)
        if engine.poll() is None:
            engine.send_signal(signal.SIGINT)  # a clean stop: the video is finalised
        engine.wait(timeout=120)
        subscriber.kill()
    with open(out / "samples.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    plot(rows, out / "soak.png")
    verdict = judge(rows, args.warmup, args.rss_growth_mb)
    verdict.update(minutes=args.minutes, engine_exit=engine.returncode)
    (out / "verdict.json").write_text(json.dumps(verdict, indent=2))
    print(json.dumps(verdict, indent=2))
    return 0 if verdict["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
