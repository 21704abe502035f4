"""Live commands: ``run`` (the engine, one stream or several) and ``listen`` (the reference subscriber).

Each builder adds its arguments and returns the function that runs the command
(see :mod:`hearflow.cli.registry`)."""

from __future__ import annotations

import argparse
import sys

from hearflow.cli.registry import RUN_EXIT_STATUS, command
from hearflow.errors import HearflowError


# --------------------------------------------------------------------------- run
@command(
    "run",
    "run the real-time engine: video + audio → heatmaps → overlay / video / ZeroMQ / JSONL / MCAP",
    "Run a model on live or recorded input. Threads: capture per source, inference, one per sink, "
    "with bounded hand-offs (newest frame wins; slow sinks drop their oldest results). "
    "--realtime paces files like a camera (frames drop when inference is slower); --no-realtime "
    "processes every frame of a file as fast as possible. Prints a status line while running and a "
    "JSON summary at the end. Example: hearflow run --model checkpoints/synth_tiny --video 0 "
    "--audio mic --sink overlay,zmq:tcp://127.0.0.1:5555",
    exit_status=RUN_EXIT_STATUS,
)
def _run(p):
    from hearflow.engine.sinks import SINK_HELP

    p.add_argument("--model", required=True, help="checkpoint folder or export folder (its manifest picks the backend)")
    p.add_argument("--video", default=None,
                   help="camera index (0), file, rtsp://… / http://… URL, gst:<pipeline … ! appsink>, or synth")
    p.add_argument("--streams", default=None, metavar="FILE",
                   help="several streams, one model: a YAML file listing each stream's name, video, audio, sink "
                        "and camera (docs/deploy.md); instead of --video/--audio/--sink")
    p.add_argument("--audio", default="same",
                   help="same (the video's own track), mic or mic:<device>, an audio file, gst:<pipeline>, synth, "
                        "or none (default same)")
    p.add_argument("--sink", default="overlay", help=f"where results go: {SINK_HELP} (default overlay)")
    p.add_argument("--backend", default=None, help="torch, onnxruntime[-fp32|-int8], tensorrt or "
                   "triton:grpc://HOST:PORT[/PREFIX] (default: torch for a checkpoint, the manifest's for an export)")
    p.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=None,
                   help="pace files like a live source (default: on for cameras/mics/URLs, off for files)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds of input (> 0)")
    p.add_argument("--summary", default=None, help="also write the JSON summary to this file")
    p.add_argument("--zmq-overlay", action="store_true", help="also publish JPEG overlays on topic hearflow.overlay (an mcap sink records them too)")
    p.add_argument("--frame-id", default="camera", help="frame_id in ZeroMQ headers (default camera)")
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads for inference (0 = physical cores minus one, left for capture and flow)")
    p.add_argument("--device", default="auto",
                   help="auto (default: model on a GPU when there is one, inputs made on the host), or cpu, cuda, "
                        "cuda:N: model and input preprocessing (resize, flow, spectrogram) there, in torch")
    p.add_argument("--no-status", action="store_true", help="no status line")
    p.add_argument("--camera-fov", default=None, metavar="HFOV[,VFOV]",
                   help="camera field of view in degrees (ideal centred pinhole; without VFOV square pixels): "
                        "headers then carry the peaks' bearing, azimuth and elevation")
    p.add_argument("--camera-info", default=None, metavar="FILE",
                   help="ROS camera_info YAML (camera_calibration's output) instead of --camera-fov: calibrated "
                        "intrinsics, peaks undistorted; scaled with a warning when the frames' size differs")
    p.add_argument("overrides", nargs="*", help="EngineConfig overrides, e.g. audio_hop=0.2 energy_gate_db=-45 "
                                                "peaks_k=3 peaks_threshold=0.5 track_gate=0.2")

    return _run_command


def _run_command(args):
    import json

    from hearflow import config
    from hearflow.engine.pipeline import EngineConfig
    from hearflow.engine.run import RunOptions, exit_code, run_engine
    from hearflow.engine.sources import default_realtime
    from hearflow.engine.streams import load_streams, run_streams, streams_exit_code

    cfg = config.apply_overrides(EngineConfig(), args.overrides)
    if (args.video is None) == (args.streams is None):
        raise HearflowError("give --video (one stream) or --streams FILE (several), not both" if args.video
                            else "--video is required (or --streams FILE for several streams)")
    streams = load_streams(args.streams) if args.streams else None
    realtime = args.realtime
    if realtime is None and not streams:  # files are processed offline unless asked; devices are live
        realtime = default_realtime(args.video)
    options = RunOptions(
        args.model, args.video or "", args.audio, args.sink, backend=args.backend, realtime=realtime,
        duration=args.duration, summary_path=args.summary, engine=cfg, zmq_overlay=args.zmq_overlay,
        frame_id=args.frame_id, threads=args.threads, device=args.device, status=not args.no_status,
        camera_fov=args.camera_fov, camera_info=args.camera_info,
    )
    summary = run_streams(options, streams) if streams else run_engine(options)
    print(json.dumps(summary, indent=2))
    code = streams_exit_code(summary) if streams else exit_code(summary)
    if code:
        raise SystemExit(code)


# --------------------------------------------------------------------------- listen
@command(
    "listen",
    "subscribe to a hearflow ZeroMQ stream and print a line per heatmap",
    "The reference subscriber: connects to ENDPOINT, prints one line per message (seq, stamp, peak, "
    "azimuth/elevation, confidence, latency, map shape, tracked peaks; and the engine's status messages) "
    "and can save maps as .npy. The wire format is in docs/wire_format.md.",
)
def _listen(p):
    p.add_argument("endpoint", nargs="?", default="tcp://127.0.0.1:5555", help="default tcp://127.0.0.1:5555")
    p.add_argument("--count", type=int, default=None, help="stop after this many messages")
    p.add_argument("--timeout", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--save", default=None, help="folder to save maps (<seq>.npy) and overlays (<seq>.jpg)")
    p.add_argument("--overlay", action="store_true", help="also subscribe to hearflow.overlay JPEGs")
    p.add_argument("--newest-only", action="store_true", help="drain the socket and keep only the newest message")

    def run(args):
        from hearflow.engine import wire

        topics = (wire.HEATMAP_TOPIC, wire.STATUS_TOPIC) + ((wire.OVERLAY_TOPIC,) if args.overlay else ())
        stats = {}
        n = wire.listen(args.endpoint, count=args.count, save_dir=args.save, topics=topics, timeout=args.timeout,
                        out=lambda line: print(line, flush=True), newest_only=args.newest_only,
                        status=lambda line: print(line, file=sys.stderr, flush=True), stats=stats)
        extra = [f"{stats[k]} {k}" for k in ("status", "rejected", "missed") if stats.get(k)]
        print(f"{n} messages" + (f" ({', '.join(extra)})" if extra else ""))

    return run
