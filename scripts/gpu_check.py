"""One command for whoever has an NVIDIA GPU: every GPU test, then the GPU benchmarks.

    make gpu-check          # installs .[gpu,dev,audio] into .venv, then runs this script

Steps (each a real subprocess with its own time limit; the whole check stays under
8 minutes on an H100/H200):

1. the machine: GPU name, driver and memory (nvidia-smi), torch/CUDA and TensorRT versions;
2. every GPU test (TensorRT build and parity, FP16, torch flow and preprocessing on CUDA
   against OpenCV/numpy on the CPU, the engine with --device cuda); a GPU test that is
   *skipped* on a GPU machine counts as a failure: it means something is not installed;
3. ``hearflow bench model`` (HTF-R18, random weights) on torch and TensorRT FP32/FP16;
4. ``hearflow bench flow``: OpenCV Farneback on the CPU against torch Farneback on CUDA;
5. ``hearflow bench engine --device cuda`` on a 640×480 30 fps synthetic source with an
   imported-HTF-style model (htf_compat preprocessing, random weights);
6. ``hearflow bench engine --streams 1,4,16`` with HTF-R18 on TensorRT, 30 fps per stream.

Writes one JSON report (default out/gpu_check.json) with every step's output and the
issue's targets (met / missed). Exit status 0 when every step ran and passed, 1 when any
failed (a missed speed target is reported, not a failure), 2 when there is no GPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GPU_TESTS = ["tests/export/test_tensorrt.py", "tests/export/test_frame_graph.py", "tests/media/test_flow_torch.py",
             "tests/media/test_preprocess_torch.py", "tests/runtime/test_device_frames.py",
             "tests/engine/test_engine_device.py"]
# The targets on an H100/H200 (ms).
TARGETS = {"farneback_640x480_ms": 2.0, "flow_plus_visual_ms": 5.0, "engine_p99_ms": 25.0,
           "streams16_fps_per_stream_min": 30.0}


def run(cmd: list[str], timeout: float) -> dict:
    """Run one step; never raises: the report says what happened."""
    start = time.monotonic()
    try:
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        rc, out = p.returncode, (p.stdout + p.stderr)
    except subprocess.TimeoutExpired as e:
        rc, out = 124, f"timed out after {timeout:.0f} s\n{(e.stdout or b'')[-4000:]!r}"
    step = {"cmd": " ".join(cmd), "rc": rc, "seconds": round(time.monotonic() - start, 1), "tail": out[-4000:]}
    print(f"  [{'ok' if rc == 0 else 'FAILED'}] {step['cmd']} ({step['seconds']} s)", flush=True)
    return step


def fail(message: str):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def machine() -> dict:
    """GPU, driver and library versions; raises SystemExit(2) without a usable GPU."""
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        fail(f"no NVIDIA GPU here (nvidia-smi: {e})")
    if smi.returncode != 0:
        fail(f"no NVIDIA GPU here (nvidia-smi: {smi.stderr.strip() or smi.returncode})")
    import torch

    if not torch.cuda.is_available():
        fail("nvidia-smi sees a GPU but torch.cuda.is_available() is False (driver/CUDA mismatch?)")
    name, driver, memory = [s.strip() for s in smi.stdout.splitlines()[0].split(",")]
    try:
        import tensorrt

        trt = tensorrt.__version__
    except ImportError:
        trt = None
    return {"gpu": name, "driver": driver, "memory": memory, "torch": torch.__version__,
            "cuda": torch.version.cuda, "tensorrt": trt, "cpu": platform.processor() or platform.machine(),
            "python": platform.python_version()}


def make_models(tmp: Path) -> dict:
    """Random-weight checkpoints: HTF-R18 (hearflow preprocessing) and an imported-HTF-style one."""
    from hearflow.media.preprocess import PreprocessConfig
    from hearflow.model import ModelConfig, create_model
    from hearflow.model.checkpoint import save_checkpoint

    models = {"r18": save_checkpoint(tmp / "r18", create_model(ModelConfig()), PreprocessConfig())}
    import dataclasses

    htf = dataclasses.replace(PreprocessConfig.PRESETS["htf_compat"](), flow="torch_farneback")  # flow on the GPU
    models["htf"] = save_checkpoint(tmp / "htf", create_model(ModelConfig()), htf)
    return {k: str(v) for k, v in models.items()}


def gpu_tests(tmp: Path) -> dict:
    files = [f for f in GPU_TESTS if (ROOT / f).exists()]
    junit = tmp / "junit.xml"
    step = run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", f"--junitxml={junit}",
                *files], timeout=240)
    suite = ET.parse(junit).getroot().iter("testsuite") if junit.exists() else []
    counts = {k: sum(int(s.get(k, 0)) for s in suite) for k in ("tests", "failures", "errors", "skipped")}
    step.update(counts, files=files)
    # The CPU-only guard test skips itself on a GPU machine on purpose; any other skip is a failure.
    if step["rc"] == 0 and counts["skipped"] > 1:
        step["rc"] = 1
        step["why"] = f"{counts['skipped']} GPU tests were skipped on a GPU machine (see tail)"
    return step


def benches(tmp: Path, models: dict) -> dict:
    hf = [sys.executable, "-m", "hearflow"]
    j = {k: tmp / f"{k}.json" for k in ("model", "flow", "engine", "streams")}
    steps = {
        "export": run([*hf, "export", models["htf"], "--to", str(tmp / "htf_trt"), "--format", "tensorrt"], 180),
        "bench_model": run([*hf, "bench", "model", models["r18"], "--backend", "torch,tensorrt", "--batch", "1,32",
                            "--budget", "10", "--json", str(j["model"])], 150),
        "bench_flow": run([*hf, "bench", "flow", "--provider", "opencv-farneback,torch-farneback:cuda",
                           "--size", "640x480,224x224", "--json", str(j["flow"])], 90),
        "bench_engine": run([*hf, "bench", "engine", str(tmp / "htf_trt"), "--device", "cuda", "--fps", "30",
                             "--seconds", "10", "--json", str(j["engine"])], 90),
        "export_r18": run([*hf, "export", models["r18"], "--to", str(tmp / "r18_trt"), "--format", "tensorrt",
                           "--max-batch", "16"], 150),
        "bench_streams": run([*hf, "bench", "engine", str(tmp / "r18_trt"), "--streams", "1,4,16", "--fps", "30",
                              "--seconds", "5", "--json", str(j["streams"])], 120),
    }
    for k, path in j.items():
        step = steps[f"bench_{k}"]
        step["result"] = json.loads(path.read_text()) if path.exists() else None
    return steps


def targets(steps: dict) -> dict:
    """The issue's targets, read from the benchmark JSONs (None where a step did not report)."""
    found = dict.fromkeys(TARGETS)
    flow = steps["bench_flow"].get("result") or {}
    for row in flow.get("runs", []):
        if (row.get("provider") == "torch-farneback" and str(row.get("device")).startswith("cuda")
                and row.get("size") == "640x480" and not row.get("max_side")):
            found["farneback_640x480_ms"] = row.get("median_ms")
    model = steps["bench_model"].get("result") or {}
    visual = [r["median_ms"] for run in model.get("runs", []) if run.get("backend") == "tensorrt"
              for r in run.get("rows", []) if r.get("graph") == "visual" and r.get("batch") == 1]
    if visual and found["farneback_640x480_ms"] is not None:
        found["flow_plus_visual_ms"] = round(found["farneback_640x480_ms"] + visual[0], 2)
    engine = steps["bench_engine"].get("result") or {}
    found["engine_p99_ms"] = (engine.get("latency_ms") or {}).get("capture_to_published_p99")
    streams = steps["bench_streams"].get("result") or {}
    for row in streams.get("runs", []):
        if row.get("streams") == 16:  # every frame at 30 fps: the slowest stream within 5 % of it
            found["streams16_fps_per_stream_min"] = row.get("fps_per_stream_min")
    at_least = {"streams16_fps_per_stream_min": 0.95}
    return {k: {"value": v, "target": TARGETS[k],
                "met": None if v is None else (v >= TARGETS[k] * at_least[k] if k in at_least else v <= TARGETS[k])}
            for k, v in found.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="out/gpu_check.json", help="report file (default out/gpu_check.json)")
    args = ap.parse_args()
    start = time.monotonic()
    report = {"machine": machine(), "steps": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print("GPU tests:", flush=True)
        report["steps"]["tests"] = gpu_tests(tmp)
        print("benchmarks:", flush=True)
        report["steps"].update(benches(tmp, make_models(tmp)))
    report["targets"] = targets(report["steps"])
    report["seconds"] = round(time.monotonic() - start, 1)
    failed = [k for k, s in report["steps"].items() if s["rc"] != 0]
    report["passed"] = not failed
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2, default=str))
    for k, t in report["targets"].items():
        print(f"  target {k}: {t['value']} (≤ {t['target']}) {'met' if t['met'] else 'missed' if t['met'] is False else 'not measured'}")
    print(f"{'PASSED' if not failed else 'FAILED: ' + ', '.join(failed)} in {report['seconds']} s; report: {args.out}")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
