"""Annotate a recording: every frame with its heatmap, the original sound, and a JSONL log.

    python examples/annotate_video.py checkpoints/synth_tiny recording.mp4 out/annotated.mp4

Same as `hearflow run --model M --video IN --audio same --sink video:OUT,jsonl:OUT.jsonl
--no-realtime`: offline, so every frame is processed however long it takes.
"""

import argparse
import json
import sys
from pathlib import Path

from hearflow.engine.run import RunOptions, exit_code, run_engine


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="checkpoint folder or export folder")
    ap.add_argument("video", help="input video with an audio track")
    ap.add_argument("out", help="annotated mp4 to write (a .jsonl with the same name is written too)")
    args = ap.parse_args()

    out = Path(args.out)
    log = out.with_suffix(".jsonl")
    summary = run_engine(RunOptions(args.model, args.video, audio="same", sink=f"video:{out},jsonl:{log}",
                                    realtime=False, status=False))
    lost = [f"{name}: {sink['error']}" for name, sink in summary["sinks"].items() if sink["failed"]]
    if summary["error"] or lost:
        print(f"error: {summary['error'] or '; '.join(lost)}", file=sys.stderr)
        raise SystemExit(exit_code(summary))  # 1 the run failed, 3 an output was lost
    print(f"{summary['processed']} frames → {out} and {log}")

    # the loudest-looking moments: frames where the model is most sure something sounds
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    for r in sorted(rows, key=lambda r: r["confidence"], reverse=True)[:3]:
        print(f"  t={r['t_media']:.2f} s  peak x={r['peak'][0]:.2f} y={r['peak'][1]:.2f}  "
              f"confidence {r['confidence']:.2f}")


if __name__ == "__main__":
    main()
