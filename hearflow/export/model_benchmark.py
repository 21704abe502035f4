"""``hearflow bench model``: per-call latency and throughput of a model's two graphs.

Times what a caller pays: :meth:`Backend.embed_audio` and :meth:`Backend.localize` on
numpy inputs of the model's own sizes (input conversion and copies included), after
warm-up calls. For each backend, graph and batch size it reports the median, p99 and
minimum latency and items per second, plus the per-frame cost of a live engine: one
visual call per frame and one audio call every ``audio_every`` frames.

A checkpoint runs on ``torch`` and, when onnxruntime/tensorrt are asked for, is exported
to a temporary folder first, so the runtimes can be compared side by side on one model.
``onnxruntime-int8`` / ``onnxruntime-fp32`` name one precision of onnxruntime (plain
``onnxruntime``: the export's default); a temporary export gets INT8 graphs calibrated
on a few synthetic scenes (speed does not depend on the calibration), an export folder
must have them already (``hearflow export --int8``).
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hearflow.config import from_dict
from hearflow.errors import HearflowError
from hearflow.export.onnx import example_inputs, export_onnx
from hearflow.export.quantize import quantize_export
from hearflow.media.preprocess import PreprocessConfig
from hearflow.model.checkpoint import read_meta
from hearflow.model.htf import ModelConfig
from hearflow.runtime.backends import is_export_dir, load_backend, physical_cores
from hearflow.runtime.manifest import read_manifest, time_range

DEFAULT_BATCHES = (1, 32)
BENCH_CALIBRATION_CLIPS = 8
"""Synthetic calibration clips for the INT8 graphs of a temporary export (timing only)."""
AUDIO_EVERY = 3
"""Frames per audio call assumed for the per-frame cost (the engine embeds audio once per hop)."""


def machine_info() -> dict:
    """CPU model and core counts (and the GPU when torch sees one), for the record."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "physical_cores": physical_cores(), "logical_cpus": os.cpu_count()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def _inputs(backend, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs of ``batch`` items at the backend's PreprocessConfig sizes."""
    cfg = from_dict(ModelConfig, backend.model_config, "model config")
    return example_inputs(cfg, backend.preprocess, batch=batch, seed=seed)


def _time_calls(fn, warmup: int, iterations: int, budget_s: float) -> np.ndarray:
    """Seconds of each timed call of ``fn`` (at least 3 calls, then up to ``iterations``
    within ``budget_s``)."""
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < iterations and (len(times) < 3 or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return np.asarray(times)


def bench_backend(backend, batch_sizes=DEFAULT_BATCHES, warmup: int = 5, iterations: int = 50,
                  budget_s: float = 20.0, audio_every: int = AUDIO_EVERY) -> dict:
    """Time a loaded backend's two graphs at each batch size (see :func:`bench_model`)."""
    rows = []
    for batch in batch_sizes:
        x = _inputs(backend, batch)
        emb = backend.embed_audio(x["spectrogram"])
        calls = {
            "audio": lambda: backend.embed_audio(x["spectrogram"]),
            "visual": lambda: backend.localize(x["frame"], x.get("flow"), emb),
        }
        for graph, fn in calls.items():
            t = _time_calls(fn, warmup, iterations, budget_s) * 1e3
            rows.append({
                "graph": graph, "batch": batch, "n": len(t),
                "median_ms": float(np.median(t)), "p99_ms": float(np.percentile(t, 99)),
                "min_ms": float(t.min()), "items_per_s": float(batch * 1e3 / np.median(t)),
            })
    precision = getattr(backend, "precision", "fp32")
    run = {
        # onnxruntime-int8 when the backend runs quantized graphs, so runs stay distinguishable
        "backend": backend.name + ("" if precision == "fp32" else f"-{precision}"),
        "precision": precision, "device": str(backend.device),
        "threads": getattr(backend, "threads", None) or _torch_threads(backend), "rows": rows,
    }
    one = {r["graph"]: r["median_ms"] for r in rows if r["batch"] == 1}
    if len(one) == 2:
        run["per_frame_ms"] = one["visual"] + one["audio"] / audio_every
    return run


def _torch_threads(backend):
    if backend.name == "torch":
        return backend.torch.get_num_threads()
    return None


def bench_model(
    model_path,
    backend: str | list[str] | None = None,
    batch_sizes=DEFAULT_BATCHES,
    threads: int = 0,
    warmup: int = 5,
    iterations: int = 50,
    budget_s: float = 20.0,
    device: str = "auto",
    audio_every: int = AUDIO_EVERY,
) -> dict:
    """Benchmark a model on one or several backends.

    model_path: checkpoint folder (torch; exported to a temporary folder for
        onnxruntime/tensorrt) or export folder (onnxruntime/tensorrt).
    backend: a name, a comma-separated string or a list ('torch', 'onnxruntime',
        'onnxruntime-fp32', 'onnxruntime-int8', 'tensorrt'); None = the model's default backend.
    batch_sizes: batch sizes to time (batch 1: live latency; 32: offline throughput).
    threads: CPU threads for torch / onnxruntime (0 = their default: physical cores).
    warmup: untimed calls first (allocations, kernel selection, caches).
    iterations: timed calls per graph and batch size at most...
    budget_s: ...and no more seconds than this once 3 calls are done (large models at
        batch 32 would otherwise run for minutes).
    device: 'auto', 'cpu' or 'cuda'.
    audio_every: frames per audio call in the per-frame cost.
    Returns {model, model_config, preprocess sizes, machine, settings, runs: [...]}.
    """
    model_path = Path(model_path)
    if isinstance(backend, str):
        backend = [b.strip() for b in backend.split(",") if b.strip()]
    runs = []
    torch_threads = torch.get_num_threads()  # TorchBackend(threads=N) changes it process-wide
    try:
        # one temporary export of a checkpoint serves every onnxruntime/tensorrt run
        with tempfile.TemporaryDirectory(prefix="hearflow-bench-") as temp:
            for name in backend or [None]:
                be = load_backend(_folder_for(model_path, name, Path(temp)), name, device=device, threads=threads)
                runs.append(bench_backend(be, batch_sizes, warmup, iterations, budget_s, audio_every))
                del be
    finally:
        torch.set_num_threads(torch_threads)
    if not runs:
        raise HearflowError("nothing to benchmark")
    be_cfg = _describe_model(model_path)
    return {"model": str(model_path), **be_cfg, "machine": machine_info(),
            "settings": {"warmup": warmup, "iterations": iterations, "budget_s": budget_s,
                         "audio_every": audio_every, "threads": threads},
            "runs": runs}


def _folder_for(model_path: Path, name: str | None, temp: Path) -> Path:
    """What backend ``name`` loads: ``model_path`` itself, or for onnxruntime/tensorrt on a
    checkpoint its export in ``temp`` (made on first use; INT8 graphs added when asked for)."""
    base, _, precision = (name or "").partition("-")
    if name is not None and base == "onnxruntime" and precision not in ("", "fp32", "int8"):
        raise HearflowError(f"unknown backend {name!r} (onnxruntime-fp32 or onnxruntime-int8)")
    if base not in ("onnxruntime", "tensorrt") or is_export_dir(model_path):
        return model_path
    if not is_export_dir(temp):
        export_onnx(model_path, temp, check=False)
    if precision == "int8" and "int8" not in read_manifest(temp).precisions:
        quantize_export(temp, clips=BENCH_CALIBRATION_CLIPS, default=False, progress=False)
    return temp


def _describe_model(path: Path) -> dict:
    """Model config and input sizes, from the manifest or the checkpoint header."""
    if is_export_dir(path):
        m = read_manifest(path)
        model, pre = m.model_config, m.preprocess
    else:
        meta = read_meta(path)
        model, pre = meta["model"], PreprocessConfig.from_dict(meta["preprocess"])
    return {"model_config": model, "image_size": pre.image_size,
            "spectrogram": [pre.spectrogram_bins, time_range(pre)[1]]}


def format_bench(result: dict, goal_ms: float | None = None) -> str:
    """A table of the runs; with ``goal_ms``, whether each per-frame cost meets it."""
    cfg = result["model_config"]
    mach = result["machine"]
    lines = [
        f"model {result['model']}: backbone {cfg['backbone']}, flow {cfg['flow']}, "
        f"frame {result['image_size']}², spectrogram {result['spectrogram'][0]}×{result['spectrogram'][1]}",
        f"machine: {mach['cpu']}, {mach['physical_cores']} physical cores"
        + (f", GPU {mach['gpu']}" if mach.get("gpu") else ""),
        f"{'backend':<16} {'device':<7} {'thr':>3}  {'graph':<7} {'batch':>5}  {'median ms':>10} "
        f"{'p99 ms':>9} {'min ms':>9} {'items/s':>9}  {'n':>3}",
    ]
    for run in result["runs"]:
        for r in run["rows"]:
            lines.append(
                f"{run['backend']:<16} {run['device']:<7} {run['threads'] or '-':>3}  {r['graph']:<7} {r['batch']:>5}  "
                f"{r['median_ms']:>10.2f} {r['p99_ms']:>9.2f} {r['min_ms']:>9.2f} {r['items_per_s']:>9.1f}  {r['n']:>3}"
            )
    every = result["settings"]["audio_every"]
    for run in result["runs"]:
        if "per_frame_ms" in run:
            verdict = ""
            if goal_ms is not None:
                verdict = f"  (goal ≤ {goal_ms:g} ms: {'met' if run['per_frame_ms'] <= goal_ms else 'NOT met'})"
            lines.append(f"per frame on {run['backend']} (visual@1 + audio@1 / {every}): "
                         f"{run['per_frame_ms']:.1f} ms{verdict}")
    return "\n".join(lines)
