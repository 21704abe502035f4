"""Deployment commands: ``export`` (ONNX, INT8, TensorRT, Triton, the frame graph) and ``bench``.

Each builder adds its arguments and returns the function that runs the command
(see :mod:`hearflow.cli.registry`)."""

from __future__ import annotations

import argparse

from hearflow.cli.registry import command
from hearflow.errors import HearflowError


# --------------------------------------------------------------------------- export
@command(
    "export",
    "export a checkpoint to ONNX (CPU) or TensorRT (NVIDIA GPU)",
    "Write two graphs — audio.onnx (spectrogram → embedding, run every audio hop) and visual.onnx "
    "(frame, flow, embedding → similarity map, run per frame) — with dynamic batch, the PreprocessConfig "
    "and model config in their metadata and a manifest.json, so the folder works without the checkpoint. "
    "--format tensorrt also builds engines (batch 1..32, timing cache, rebuilt when the ONNX file, GPU "
    "or TensorRT version changes). Run the result with `hearflow run --model DIR` or `hearflow eval DIR ...`.",
)
def _export(p):
    p.add_argument("checkpoint", help="hearflow checkpoint folder")
    p.add_argument("--to", required=True, dest="out", help="export folder (created)")
    p.add_argument("--format", choices=["onnx", "tensorrt", "triton"], default="onnx",
                   help="default onnx; triton: also a Triton model repository (docs/deploy.md)")
    p.add_argument("--triton-prefix", default="hearflow", help="triton: model names PREFIX_audio, PREFIX_visual")
    p.add_argument("--fp16", action="store_true", help="FP16 TensorRT engines")
    p.add_argument("--opt-batch", type=int, default=1, help="TensorRT profile's optimal batch (default 1: live)")
    p.add_argument("--max-batch", type=int, default=32, help="TensorRT profile's largest batch (default 32)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 18)")
    p.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime vs PyTorch check after export")
    p.add_argument("--device", default="cuda", help="CUDA device for TensorRT (default cuda)")
    p.add_argument("--int8", action="store_true",
                   help="also write statically quantized int8 graphs for ONNX Runtime on CPU (used by default "
                        "when present; about 3x faster on CPUs with VNNI)")
    p.add_argument("--calibration", default=None,
                   help="dataset folder whose train clips calibrate --int8 (default: synthetic scenes)")
    p.add_argument("--calibration-clips", type=int, default=None, help="clips used to calibrate --int8 (default 64)")
    p.add_argument("--reduce-range", action="store_true", help="7-bit int8 weights, for CPUs without VNNI")
    p.add_argument("--frame-graph", nargs="?", const="640x480", default=None, metavar="WxH",
                   help="also write frame.onnx: two uint8 frames of this size (default 640x480) + audio embedding → "
                        "map, with resize, normalisation and Farneback flow inside the graph")

    def run(args):
        from hearflow.export import ExportOptions, export_model, format_export
        from hearflow.export.frame_graph import parse_frame_size

        options = ExportOptions(format=args.format, fp16=args.fp16, opset=args.opset, opt_batch=args.opt_batch,
                                max_batch=args.max_batch, check=not args.no_check, device=args.device,
                                int8=args.int8, calibration=args.calibration,
                                calibration_clips=args.calibration_clips, reduce_range=args.reduce_range,
                                frame_graph=parse_frame_size(args.frame_graph) if args.frame_graph else None,
                                triton_prefix=args.triton_prefix)
        data = export_model(args.checkpoint, args.out, options)
        print(format_export(data, args.out))

    return run


# --------------------------------------------------------------------------- bench
def _flow_bench_args(p):
    p.add_argument("--provider", default="opencv-farneback,torch-farneback",
                   help="flow: providers, e.g. opencv-dis,opencv-farneback@320,torch-farneback:cuda")
    p.add_argument("--size", default="640x480", help="flow: frame sizes WxH[,WxH...]")
    p.add_argument("--params", default=None, help="flow: Farneback's 7 parameters (default HTF's 0.5,3,15,3,5,1.2,0)")
    p.add_argument("--pairs", type=int, default=5, help="flow: frame pairs per size")


@command(
    "bench",
    "benchmark a model's graphs (bench model) or the whole engine (bench engine)",
    "`hearflow bench model MODEL`: per-call latency (median, p99) of the audio and visual graphs at batch 1 "
    "and throughput at batch 32, per backend (e.g. --backend torch,onnxruntime). `hearflow bench engine "
    "MODEL`: a 640×480 30 fps camera-like clip (or --video) through the engine, paced like a camera "
    "(--realtime, default) or offline, publishing on ZeroMQ: sustained fps, drops, latency p50/p99. "
    "`hearflow bench flow [MODEL]`: time per frame pair of each --provider at each --size and its endpoint "
    "error against the first (with MODEL, a checkpoint or htf-random, also how the map changes).",
)
def _bench(p):
    p.add_argument("what", choices=["model", "engine", "flow"], help="what to measure")
    p.add_argument("model", nargs="?", help="checkpoint folder or export folder (flow: optional, or htf-random)")
    p.add_argument("--backend", default=None, help="model: comma-separated backends; engine: one backend")
    p.add_argument("--batch", default="1,32", help="model: batch sizes (default 1,32)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = runtime default)")
    p.add_argument("--warmup", type=int, default=5, help="model: warm-up calls")
    p.add_argument("--iterations", type=int, default=50, help="model: timed calls per measurement")
    p.add_argument("--budget", type=float, default=20.0, help="model: max seconds per measurement")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (engine: as `hearflow run --device`)")
    p.add_argument("--goal-ms", type=float, default=None, help="model: per-frame goal to check against")
    p.add_argument("--video", default=None, help="engine, flow: source instead of the generated clip")
    p.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=True,
                   help="engine: pace the source like a camera (default) or process it offline")
    p.add_argument("--seconds", type=float, default=10.0, help="engine: length of the generated clip")
    p.add_argument("--fps", type=float, default=None,
                   help="engine: frame rate of the generated clip (default 30; 15 with --streams)")
    p.add_argument("--streams", default=None, metavar="N[,N…]",
                   help="engine: N paced 320×240 camera-like streams through one batched backend, e.g. 1,2,4,8")
    _flow_bench_args(p)
    p.add_argument("--json", default=None, help="also write the results to this JSON file")

    return _bench_command


def _bench_command(args):
    import json

    if args.what != "flow" and not args.model:
        raise HearflowError(f"bench {args.what} needs a MODEL (checkpoint or export folder)")
    if args.what == "flow":
        from hearflow.export.flow_benchmark import bench_flow, format_flow_bench

        result = bench_flow(args.video, args.provider, args.size, args.params, args.pairs, args.threads,
                            args.model)
        print(format_flow_bench(result))
    elif args.what == "model":
        from hearflow.export.model_benchmark import bench_model, format_bench

        backends = args.backend.split(",") if args.backend else None
        batches = tuple(int(b) for b in args.batch.split(","))
        result = bench_model(args.model, backends, batch_sizes=batches, threads=args.threads,
                             warmup=args.warmup, iterations=args.iterations, budget_s=args.budget,
                             device=args.device)
        print(format_bench(result, args.goal_ms))
    elif args.streams:
        from hearflow.engine.benchmark import bench_streams, format_streams_bench

        counts = tuple(int(n) for n in args.streams.split(","))
        result = bench_streams(args.model, counts, args.backend, seconds=args.seconds, fps=args.fps or 15.0,
                               threads=args.threads)
        print(format_streams_bench(result))
    else:
        from hearflow.engine.benchmark import bench_engine, format_engine_bench

        result = bench_engine(args.model, args.video, args.backend, realtime=args.realtime,
                              seconds=args.seconds, fps=args.fps or 30.0, threads=args.threads,
                              device=args.device)
        print(format_engine_bench(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2, default=str)
