"""``make demo``: the engine on a synthetic clip with the committed tiny checkpoint.

Writes ``out/demo_input.mp4`` (a synthetic scene whose sound starts after 2 s, made once),
then runs

    hearflow run --model checkpoints/synth_tiny --video out/demo_input.mp4 --audio same \\
        --sink video:out/demo.mp4,jsonl:out/demo.jsonl --no-realtime --summary out/demo_summary.json

and prints the summary: ``out/demo.mp4`` is the clip with the heatmap overlaid and its
audio muxed back in; ``out/demo.jsonl`` has one line per frame.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT = ROOT / "checkpoints" / "synth_tiny"
OUT = Path("out")


def demo_clip(path: Path, seed: int = 3) -> Path:
    """A 10 s synthetic clip: three objects, one starts sounding at 2 s and moves."""
    import numpy as np

    from hearflow.media.encode import write_clip
    from hearflow.media.synth import SynthConfig, render_clip, sample_spec

    cfg = SynthConfig(width=320, height=240, duration=10.0, sound_onset=2.0, min_objects=3, max_objects=3)
    spec = sample_spec(cfg, np.random.default_rng(seed), regime="source_moves", negative=None)
    frames, audio, _ = render_clip(spec)
    return write_clip(path, frames, cfg.fps, audio, cfg.sample_rate)


def main(argv=None) -> int:
    from hearflow.cli import main as cli

    OUT.mkdir(exist_ok=True)
    clip = OUT / "demo_input.mp4"
    if not clip.exists():
        print(f"writing a synthetic input clip to {clip}")
        demo_clip(clip)
    print(f"running the engine with {CHECKPOINT.relative_to(ROOT)} on {clip}")
    rc = cli([
        "run", "--model", str(CHECKPOINT), "--video", str(clip), "--audio", "same",
        "--sink", f"video:{OUT / 'demo.mp4'},jsonl:{OUT / 'demo.jsonl'}", "--no-realtime",
        "--summary", str(OUT / "demo_summary.json"),
    ] + list(argv or []))
    if rc == 0:
        print(f"\nwrote {OUT / 'demo.mp4'} (heatmap overlay + audio) and {OUT / 'demo.jsonl'} (one line per frame)")
        print("live: .venv/bin/hearflow run --model checkpoints/synth_tiny --video 0 --audio mic "
              "--sink overlay,zmq:tcp://127.0.0.1:5555")
        print("live without a desktop: .venv/bin/hearflow run --model checkpoints/synth_tiny --video synth "
              "--audio synth --sink zmq,http")
        print("  then open http://127.0.0.1:8080/ (the page; /stream.mjpg is the MJPEG overlay); "
              "--sink foxglove serves ws://127.0.0.1:8765 to Foxglove")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
