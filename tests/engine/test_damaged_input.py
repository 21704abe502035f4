"""A damaged recording through `hearflow run`: results for what decodes, the damage in the summary."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from damaged_media import N, make_damaged_files, reference_video_frames

MODEL = Path(__file__).resolve().parents[2] / "checkpoints" / "synth_tiny"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return make_damaged_files(tmp_path_factory.mktemp("damaged"))


def run_offline(path, out: Path, audio="same"):
    out.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "hearflow.cli", "run", "--model", str(MODEL), "--video", str(path), "--audio", audio,
         "--no-realtime", "--no-status", "--sink", f"jsonl:{out / 'r.jsonl'}", "--summary", str(out / "s.json")],
        capture_output=True, text=True, timeout=300)
    lines = (out / "r.jsonl").read_text().splitlines() if (out / "r.jsonl").is_file() else []
    summary = json.loads((out / "s.json").read_text()) if (out / "s.json").is_file() else None
    return proc, [json.loads(line) for line in lines], summary


@pytest.mark.slow
@pytest.mark.parametrize("audio", ["same", "none"])
def test_corrupt_packets_leave_results_for_what_decodes(files, tmp_path, audio):
    reference = reference_video_frames(files["corrupt"])
    proc, results, summary = run_offline(files["corrupt"], tmp_path / "run", audio)
    assert proc.returncode == 0, proc.stderr
    assert len(results) >= 0.9 * reference, (len(results), reference)
    [damage] = summary["damaged_media"]
    assert damage["video_frames_lost"] >= 1 and not damage["truncated"]
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:") and "damaged" in line]
    assert len(warnings) == 1 and "corrupt.mp4" in warnings[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_truncated_file_gives_results_up_to_the_cut(files, tmp_path):
    proc, results, summary = run_offline(files["truncated"], tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    assert len(results) >= 0.4 * N
    [damage] = summary["damaged_media"]
    assert damage["truncated"]
    last_t = max(r["t_media"] for r in results)
    assert last_t == pytest.approx(damage["decoded_end"], abs=0.2)
