"""The scripts in examples/ run as users run them (subprocesses, the committed tiny model)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import av
import cv2

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "checkpoints" / "synth_tiny"


def run_example(name, *args):
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / name), *map(str, args)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.slow
def test_localize_one_frame_points_into_the_sounding_box(synth_dir, tmp_path):
    records = {r["file"]: r for r in json.loads((synth_dir / "annotations.json").read_text())}
    clips = [c for c in sorted(records) if c.startswith("test_") and records[c]["bbox"]][:3]
    inside = 0
    for clip in clips:
        rec = records[clip]
        out = tmp_path / f"{clip}.png"
        text = run_example("localize_one_frame.py", MODEL, synth_dir / "videos" / f"{clip}.mp4",
                           "--t", rec["frame_time"], "--out", out)
        m = re.search(r"t=([\d.]+) s: sound at x=([\d.]+), y=([\d.]+)", text)
        assert m, text
        assert abs(float(m.group(1)) - rec["frame_time"]) < 0.05  # the nearest frame to --t
        x, y = float(m.group(2)), float(m.group(3))
        x0, y0, x1, y1 = rec["bbox"][0]
        inside += x0 - 0.05 <= x <= x1 + 0.05 and y0 - 0.05 <= y <= y1 + 0.05
        image = cv2.imread(str(out))
        assert image is not None and image.shape[0] == image.shape[1]  # the model-size frame
    assert inside >= 2, f"peak in the sounding box for {inside} of {len(clips)} clips"


@pytest.mark.slow
def test_annotate_video_writes_every_frame_and_the_sound(synth_dir, tmp_path):
    src = synth_dir / "videos" / "test_00000.mp4"
    out = tmp_path / "annotated.mp4"
    text = run_example("annotate_video.py", MODEL, src, out)
    with av.open(str(src)) as c:
        n_in = sum(1 for _ in c.decode(video=0))
    with av.open(str(out)) as c:
        assert c.streams.audio and c.streams.video
        n_out = sum(1 for _ in c.decode(video=0))
    assert n_out == n_in and f"{n_in} frames" in text
    rows = out.with_suffix(".jsonl").read_text().splitlines()
    assert len(rows) == n_in
    assert len(re.findall(r"t=[\d.]+ s  peak x=", text)) == 3


@pytest.mark.slow
def test_the_streams_example_runs_both_streams():
    proc = subprocess.run([sys.executable, "-m", "hearflow", "run", "--model", str(MODEL), "--streams",
                           str(ROOT / "examples" / "streams.yaml"), "--duration", "2", "--no-status"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert sorted(summary["streams"]) == ["back", "front"]
    for s in summary["streams"].values():
        assert s["processed"] > 0 and s["error"] is None and s["camera"] is not None
