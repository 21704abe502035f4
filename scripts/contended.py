"""Run a command on a quiet CPU and again beside one busy process; report both and the ratio.

    python scripts/contended.py --json-key fps_out --json-file out/b.json -- \
        hearflow bench engine checkpoints/synth_tiny --no-realtime --seconds 20 --json out/b.json
    python scripts/contended.py --repeat 2 -- hearflow train configs/synth_tiny.yaml train.epochs=1 ...

The competitor is one process spinning in a loop (what a shared workstation or a robot's
other software does to a core). Each configuration runs --repeat times, alternating, and
the wall time of each run is printed; with --json-key KEY the command's JSON output (its
last line that parses as JSON, or --json-file) is read too and KEY reported (e.g. fps_out). Measure on an
otherwise quiet machine: the point is the ratio contended / quiet.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import subprocess
import sys
import time


def spin(stop) -> None:
    while not stop.is_set():
        pass


def run_once(cmd: list[str], key: str | None, json_file: str | None = None) -> tuple[float, float | None]:
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
    value = None
    if key and json_file:
        with open(json_file) as f:
            value = float(_dig(json.load(f), key))
    elif key:
        for line in reversed(proc.stdout.strip().splitlines()):
            try:
                value = float(_dig(json.loads(line), key))
                break
            except (ValueError, KeyError, TypeError):
                continue
    return wall, value


def _dig(obj, key: str):
    for part in key.split("."):
        obj = obj[int(part)] if isinstance(obj, list) else obj[part]
    return obj


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--json-key", help="dotted key of a number in the command's JSON output, e.g. fps")
    ap.add_argument("--json-file", help="read --json-key from this file the command writes instead of its output")
    ap.add_argument("cmd", nargs=argparse.REMAINDER, help="-- COMMAND ...")
    args = ap.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        ap.error("give the command after --")
    results = {"quiet": [], "contended": []}
    for _ in range(args.repeat):
        for mode in ("quiet", "contended"):
            stop = mp.Event()
            competitor = mp.Process(target=spin, args=(stop,)) if mode == "contended" else None
            if competitor:
                competitor.start()
            try:
                wall, value = run_once(cmd, args.json_key, args.json_file)
            finally:
                if competitor:
                    stop.set()
                    competitor.join()
            results[mode].append({"wall_s": round(wall, 2), args.json_key or "value": value})
            print(f"{mode:9s} wall {wall:7.2f} s" + (f"  {args.json_key} {value}" if args.json_key else ""),
                  flush=True)
    summary = {}
    for mode, rows in results.items():
        summary[mode] = {"wall_s": statistics.median(r["wall_s"] for r in rows)}
        if args.json_key:
            summary[mode][args.json_key] = statistics.median(r[args.json_key] for r in rows)
    summary["wall_ratio"] = round(summary["contended"]["wall_s"] / summary["quiet"]["wall_s"], 2)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
