"""``hearflow bench engine``: a source through the whole engine, measured.

A camera-like clip (synthetic scene, 640×480 at 30 fps by default, with its audio) is
written once, then played through the engine paced like a live camera (``realtime``) or
as fast as possible (offline), into a ZeroMQ publisher on loopback — the robot use case.
Reported: sustained fps, drops, latency capture→result and capture→published.
"""

from __future__ import annotations

import platform
import tempfile
from pathlib import Path


def camera_clip(path, width: int = 640, height: int = 480, fps: float = 30.0, seconds: float = 10.0,
                seed: int = 0) -> Path:
    """Write a synthetic camera-like clip (H.264 + AAC) for the benchmark."""
    import numpy as np

    from hearflow.media.encode import AVWriter
    from hearflow.media.synth import SynthConfig, SynthScene, sample_spec

    cfg = SynthConfig(width=width, height=height, fps=fps, duration=seconds)
    scene = SynthScene(sample_spec(cfg, np.random.default_rng(seed), negative=None))
    with AVWriter(path, fps=fps, size=(width, height), sample_rate=cfg.sample_rate) as w:
        for i in range(int(round(seconds * fps))):
            w.write_frame(scene.frame(i))
        w.write_audio(scene.audio(0, int(round(seconds * cfg.sample_rate))))
    return Path(path)


def bench_engine(model, video: str | None = None, backend: str | None = None, realtime: bool = True,
                 seconds: float = 10.0, fps: float = 30.0, size=(640, 480), threads: int = 0,
                 device: str = "auto") -> dict:
    """Run the engine on ``video`` (default: a generated camera-like clip) and return its summary.

    device: as ``hearflow run --device`` (auto: inputs on the host; cpu/cuda: built there in torch).
    """
    from hearflow.engine.run import RunOptions, run_engine

    with tempfile.TemporaryDirectory() as tmp:
        if video is None:
            video = str(camera_clip(Path(tmp) / "camera.mp4", size[0], size[1], fps, seconds))
        summary = run_engine(RunOptions(model, video, "same", "zmq:tcp://127.0.0.1:*", backend=backend,
                                        realtime=realtime, threads=threads, status=False, device=device))
    summary["machine"] = {"cpu": platform.processor() or platform.machine(), "python": platform.python_version()}
    summary["source"] = {"video": video if video else "synthetic", "fps": fps, "size": list(size),
                         "seconds": seconds}
    return summary


def format_engine_bench(s: dict) -> str:
    lat = s["latency_ms"]
    dropped = s["dropped"]["before_inference"] + sum(s["dropped"]["sinks"].values())
    return "\n".join([
        f"engine: {s['model']} on {s['backend']} ({s.get('precision', 'fp32')}, {s.get('threads', '?')} threads), "
        f"{'realtime (paced)' if s['realtime'] else 'offline'}, inputs on "
        f"{'the host (numpy)' if s.get('device', 'auto') == 'auto' else s['device'] + ' (torch)'}",
        f"  frames: captured {s['captured']}, processed {s['processed']}, dropped {dropped}"
        f" ({s['dropped']['before_inference']} before inference)",
        f"  sustained {s['fps_out']:.1f} fps out of {s['fps_in']:.1f} fps in over {s['seconds']:.1f} s",
        f"  latency capture→result p50 {lat['capture_to_result_p50']} ms, p99 {lat['capture_to_result_p99']} ms",
        f"  latency capture→published p50 {lat['capture_to_published_p50']} ms,"
        f" p99 {lat['capture_to_published_p99']} ms",
    ])


def bench_streams(model, counts=(1, 2, 4, 8), backend: str | None = None, seconds: float = 10.0,
                  fps: float = 15.0, size=(320, 240), threads: int = 0, max_wait_ms: float = 4.0) -> dict:
    """N camera-like streams (the same generated clip, each paced like a live camera) through
    one process and one batched backend, for each N in ``counts``.

    Per N: total throughput, each stream's fps and p99 capture→published latency, frames
    captured and processed (every frame processed, or how many were dropped), and the
    visual graph's cost per frame at the batch sizes the batcher formed (the gain batching
    gives on this backend: ms per frame at batch N against batch 1).
    """
    from hearflow.engine.run import RunOptions
    from hearflow.engine.streams import StreamSpec, StreamsConfig, run_streams

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        video = str(camera_clip(Path(tmp) / "camera.mp4", size[0], size[1], fps, seconds))
        for n in counts:
            specs = tuple(StreamSpec(name=f"cam{i}", video=video, audio="same", sink="zmq:tcp://127.0.0.1:*")
                          for i in range(n))
            s = run_streams(RunOptions(model, "", backend=backend, realtime=True, threads=threads, status=False),
                            StreamsConfig(streams=specs, max_wait_ms=max_wait_ms))
            rows.append(_streams_row(n, s))
    return {"model": str(model), "backend": rows[0]["backend"] if rows else backend, "runs": rows,
            "source": {"fps": fps, "size": list(size), "seconds": seconds},
            "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version()}}


def _streams_row(n: int, s: dict) -> dict:
    per = list(s["streams"].values())
    visual = s["batching"].get("visual", {})
    return {
        "streams": n, "backend": s["backend"],
        "fps_total": round(sum(p.get("fps_out", 0.0) for p in per), 2),
        "fps_per_stream_min": min(p.get("fps_out", 0.0) for p in per),
        "captured": sum(p.get("captured", 0) for p in per), "processed": sum(p.get("processed", 0) for p in per),
        "p99_ms_max": max((p.get("latency_ms") or {}).get("capture_to_published_p99") or 0.0 for p in per),
        "errors": [p["error"] for p in per if p.get("error")],
        "visual_ms_per_frame": {b: v["ms_per_item"] for b, v in visual.items()},
        "visual_calls": {b: v["calls"] for b, v in visual.items()},
    }


def format_streams_bench(r: dict) -> str:
    lines = [f"streams: {r['model']} on {r['backend']}, {r['source']['size'][0]}×{r['source']['size'][1]} "
             f"at {r['source']['fps']:g} fps per stream, paced like cameras",
             "  streams  fps total  fps/stream (min)  processed/captured  p99 ms (worst)  visual ms/frame by batch"]
    for row in r["runs"]:
        cost = ", ".join(f"b{b}: {ms:.1f}" for b, ms in sorted(row["visual_ms_per_frame"].items(), key=lambda kv: int(kv[0])))
        lines.append(f"  {row['streams']:7d}  {row['fps_total']:9.1f}  {row['fps_per_stream_min']:16.1f}  "
                     f"{row['processed']:8d}/{row['captured']:<9d}  {row['p99_ms_max']:14.1f}  {cost}")
    return "\n".join(lines)
