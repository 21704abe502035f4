"""The ``hearflow`` command: thin glue over the library, one subcommand per job.

Each subcommand's work lives in a library module; this file only parses arguments,
calls it and turns expected failures (:class:`~hearflow.errors.HearflowError`) into a
one-line ``error: ...`` message with exit status 2 instead of a traceback. The exit
codes (hearflow.errors.EXIT_*) are listed in every command's --help.
"""

from __future__ import annotations

import argparse
import sys

from hearflow import __version__
from hearflow.errors import EXIT_SIGINT, EXIT_USAGE, HearflowError

COMMANDS = {}

EXIT_STATUS = ("exit status: 0 done; 1 a runtime failure; 2 bad usage or input (one 'error:' line); "
               "130 interrupted by Ctrl-C.")

RUN_EXIT_STATUS = (
    "exit status: 0 everything requested was delivered (also when stopped by SIGTERM: a requested stop); "
    "1 a runtime failure (a source or the inference failed); 2 bad usage or input, reported before the "
    "model loads where it can be; 3 a sink lost output (a write or the final file failed, e.g. a full "
    "disk: its error is in the summary); 130 stopped by Ctrl-C/SIGINT, after every file was finished. "
    "The summary's stopped_by says which signal stopped the run. When several apply: 1, then 3, then 130."
)


def command(name: str, help: str, description: str | None = None, exit_status: str = EXIT_STATUS):
    """Register ``fn(parser)`` as the argument builder of subcommand ``name``."""

    def register(build):
        COMMANDS[name] = (help, description or help, exit_status, build)
        return build

    return register


def _overrides_help() -> str:
    return "dotted config overrides, e.g. model.backbone=resnet18 train.epochs=5"


# --------------------------------------------------------------------------- synth
@command(
    "synth",
    "write a synthetic audio-visual dataset (mp4 + AAC clips with boxes)",
    "Write short clips in which several objects are visible and exactly one makes the sound. "
    "Output: videos/<id>.mp4 (H.264 + AAC), annotations.json (VGG-SS format plus frame time "
    "and motion regime), Annotations/<id>.xml (Flickr-SoundNet style, test clips), "
    "splits/{train,val,test}.txt, synth.yaml (the config used). Deterministic for a seed. "
    "Motion regimes (regime_weights.NAME=W; recorded per clip in annotations.json): source_moves, "
    "all_move, distractor_moves, static, and, off by default, twins_source_moves, "
    "twins_distractor_moves, twins_all_move: 2+ identical objects (one class and look), one "
    "sounding, so only motion can tell which (in twins_all_move every twin's speed swells and "
    "ebbs, the sounding one's with its sound's loudness); configs/synth_twins.yaml mixes all seven.",
)
def _synth(p):
    p.add_argument("out", help="output folder (created)")
    p.add_argument("--train", type=int, default=800, help="number of training clips (default 800)")
    p.add_argument("--val", type=int, default=None, help="number of validation clips (default: 10%% of --train)")
    p.add_argument("--test", type=int, default=200, help="number of test clips (default 200)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--config", default=None, help="YAML file with SynthConfig fields (see configs/synth.yaml)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: CPU count)")
    p.add_argument("overrides", nargs="*", help="SynthConfig overrides, e.g. duration=6 negatives=0.1")

    def run(args):
        from hearflow import config
        from hearflow.media import synth

        cfg = config.load(synth.SynthConfig, args.config, args.overrides)
        val = args.val if args.val is not None else max(1, args.train // 10) if args.train else 0
        summary = synth.generate(
            args.out, cfg, train=args.train, val=val, test=args.test, seed=args.seed, workers=args.workers
        )
        print(synth.format_summary(summary))

    return run


# --------------------------------------------------------------------------- probe
@command(
    "probe",
    "print what hearflow finds in a media file (streams, rates, duration)",
    "Open a media file with PyAV and print its container, duration and streams, then decode "
    "it fully as hearflow would (video frames with timestamps; audio downmixed to mono and "
    "resampled). A file hearflow cannot use gives a one-line error saying why.",
)
def _probe(p):
    p.add_argument("files", nargs="+", help="media files (mp4, mkv, webm, avi, mov, wav, mp3, ...)")
    p.add_argument("--no-decode", action="store_true", help="read headers only, do not decode the streams")
    p.add_argument("--sample-rate", type=int, default=22050, help="audio rate to resample to (default 22050)")

    def run(args):
        from hearflow.media import decode

        failed = 0
        for path in args.files:
            try:
                info = decode.probe(path, decode=not args.no_decode, sample_rate=args.sample_rate)
            except HearflowError as exc:
                print(f"error: {exc}", file=sys.stderr)
                failed += 1
                continue
            print(info.describe())
        if failed:
            raise SystemExit(2)

    return run


# --------------------------------------------------------------------------- prepare
def _layout_option(p, default: str | None = "auto", extra: str = "") -> None:
    p.add_argument("--layout", choices=["auto", "videos", "flickr"], default=default,
                   help="how the dataset folder is read: videos (videos/ + annotations.json), flickr (frames/ + "
                        "audio/ + Annotations/: still frames, no flow) or auto = videos whenever there are any"
                        + extra)


@command(
    "prepare",
    "turn a folder of videos into a training cache (frames, flow, audio windows)",
    "Prepare a dataset for training/evaluation: per clip the annotated (or middle) frame, its "
    "optical flow and the audio window, made with the PreprocessConfig and stored in memory-"
    "mappable arrays. Runs in several processes with a progress bar, skips and reports bad files "
    "(report.json), and resumes after an interruption. SOURCE: a folder of videos (optionally with "
    "annotations.json / vggss.json and splits/*.txt; what `hearflow synth` writes) or the "
    "Flickr-SoundNet layout (frames/, audio/, Annotations/). A folder holding both is read as videos "
    "unless --layout flickr; the first line says which layout was used, the clips per split, how many "
    "have boxes and whether flow is available.",
)
def _prepare(p):
    p.add_argument("source", help="dataset folder")
    p.add_argument("out", help="cache folder to write (resumed if it exists)")
    p.add_argument("--preprocess", default="default",
                   help="preset name (default, htf_compat, ezvsl_compat) or a YAML file of PreprocessConfig fields")
    p.add_argument("--annotations", default=None, help="VGG-SS style json to use instead of SOURCE/annotations.json")
    _layout_option(p)
    p.add_argument("--workers", type=int, default=None, help="processes (default: CPU count)")
    p.add_argument("overrides", nargs="*", help="PreprocessConfig overrides, e.g. flow=farneback image_size=160")

    def run(args):
        from hearflow import config
        from hearflow.media.preprocess import PreprocessConfig
        from hearflow.trainer.clip_cache import format_report, prepare

        if args.preprocess in PreprocessConfig.PRESETS:
            cfg = config.apply_overrides(PreprocessConfig.PRESETS[args.preprocess](), args.overrides)
        else:
            cfg = config.load(PreprocessConfig, args.preprocess, args.overrides)
        print(format_report(prepare(args.source, args.out, cfg, args.workers, args.annotations,
                                    layout=args.layout, announce=True)))

    return run


# --------------------------------------------------------------------------- train
@command(
    "train",
    "train a model self-supervised (no boxes needed) from a YAML config",
    "Train the HTF model on a dataset folder (prepared automatically) as CONFIG says, with dotted "
    "overrides. Writes the run folder (train.out): config.yaml, metrics.csv, curves.png, TensorBoard "
    "logs, checkpoints last/ (every epoch) and best/ (by the validation split, never the test split). "
    "--resume continues an interrupted run exactly. Multi-GPU: torchrun --nproc_per_node N -m hearflow.cli train ...",
)
def _train(p):
    p.add_argument("config", help="experiment YAML (see configs/)")
    p.add_argument("overrides", nargs="*", help=_overrides_help())
    _layout_option(p, None, " (default: data.layout of CONFIG, auto)")
    p.add_argument("--resume", action="store_true", help="continue the run in train.out from its last checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")

    def run(args):
        from hearflow import config
        from hearflow.trainer.experiment import ExperimentConfig
        from hearflow.trainer.train import train

        overrides = list(args.overrides) + ([f"data.layout={args.layout}"] if args.layout else [])
        cfg = config.load(ExperimentConfig, args.config, overrides)
        out = train(cfg, resume=args.resume, progress=not args.no_progress)
        print(f"done: checkpoints in {out}/best and {out}/last")

    return run


# --------------------------------------------------------------------------- check
@command(
    "check",
    "report what a dataset folder holds against its annotations (headers only, before preparing)",
    "Clips found per split, annotated clips with no video, videos with no annotation, files that are "
    "not videos, unreadable files (with the decoder's reason), and the distribution of duration, frame "
    "rate, resolution, audio rate and channels. Reads container headers only, in parallel, with a "
    "progress bar. Prints a table; --json also writes everything (every file named) as JSON.",
)
def _check(p):
    p.add_argument("data", help="dataset folder (videos/ + annotations.json, or the Flickr layout)")
    p.add_argument("--annotations", default=None, help="VGG-SS style JSON (default: DATA/annotations.json or vggss.json)")
    p.add_argument("--json", default=None, metavar="OUT", help="write the full report to this JSON file")
    p.add_argument("--workers", type=int, default=None, help="processes (default: CPU count)")
    _layout_option(p)

    def run(args):
        from hearflow.trainer import dataset_check

        report = dataset_check.check_dataset(args.data, args.annotations, args.layout, args.workers)
        print(dataset_check.format_report(report))
        if args.json:
            print(f"full report in {dataset_check.write_json(report, args.json)}")

    return run


# --------------------------------------------------------------------------- sweep
@command(
    "sweep",
    "train and evaluate CONFIG over seeds and option values; a table with intervals",
    "One run per cell (each --set value combination × each seed) in OUT/<cell>/: train, evaluate "
    "best/ on the test split, result.json. A killed sweep rerun with the same command continues "
    "where it stopped. Writes OUT/summary.{md,csv,json}: per setting and motion regime, pointing and "
    "adaptive cIoU@0.5 as mean ± std over seeds with per-seed values, and the paired difference "
    "first value − each other value of the first --set key with a 95% bootstrap interval over test clips.",
)
def _sweep(p):
    p.add_argument("config", help="experiment YAML (see configs/)")
    p.add_argument("overrides", nargs="*", help=_overrides_help() + " (applied to every cell)")
    p.add_argument("--seeds", default="0,1,2", help="training seeds, e.g. 0,1,2 (default) or 0-4")
    p.add_argument("--set", action="append", default=[], metavar="KEY=V1,V2",
                   help="a config key and the values to sweep, e.g. model.flow=cnn,none (repeatable)")
    p.add_argument("--out", default="runs/sweep", help="sweep folder (default runs/sweep)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    def run(args):
        from hearflow.trainer import sweep

        summary = sweep.run_sweep(args.config, sweep.parse_seeds(args.seeds), sweep.parse_sets(args.set),
                                  args.out, args.overrides, progress=not args.no_progress)
        print(sweep.markdown(summary))
        print(f"{summary['ran']} run(s) done, {summary['skipped']} already finished; summary in {args.out}/summary.md")

    return run


# --------------------------------------------------------------------------- eval
@command(
    "eval",
    "score a model (or any method's heatmaps) with the field's protocol",
    "Evaluate as LVS/HTF/EZ-VSL report results (cIoU@0.5 and AUC with the median threshold), plus "
    "the adaptive cIoU, pointing accuracy and a breakdown by box size (and motion regime on synthetic "
    "data). Forms: `hearflow eval MODEL DATA --out DIR` (MODEL: checkpoint or export folder), "
    "`hearflow eval --baseline center DATA --out DIR`, and "
    "`hearflow eval --heatmaps MAPS --annotations ANN --out DIR` for maps from any method "
    "(MAPS: folder of <id>.npy or one .npz; ANN: Flickr Annotations/ folder, VGG-SS json or a dataset folder).",
)
def _eval(p):
    p.add_argument("model", nargs="?", help="checkpoint folder or export folder")
    p.add_argument("data", nargs="?", help="dataset folder (prepared with the model's preprocessing) or cache")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--backend", default=None, help="torch, onnxruntime[-fp32|-int8], tensorrt or "
                   "triton:grpc://HOST:PORT[/PREFIX] (default: by model type)")
    p.add_argument("--split", default="test", help="split to score (default test)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--save-maps", action="store_true", help="also write the maps as OUT/maps.npz")
    p.add_argument("--no-listen", action="store_true", help="skip the silence/noise/other-audio check")
    p.add_argument("--baseline", choices=["center", "whole"], help="score a baseline map instead of a model")
    p.add_argument("--heatmaps", help="score these maps instead of running a model")
    p.add_argument("--annotations", help="annotations for --heatmaps")
    p.add_argument("--allow-missing", action="store_true",
                   help="with --heatmaps: score the clips that have a map when some annotated clips have none "
                        "(default: an error)")
    p.add_argument("--workers", type=int, default=None, help="processes for preparing the data")
    _layout_option(p)

    def run(args):
        from hearflow.trainer import evaluate

        if args.heatmaps:
            if not args.annotations:
                raise HearflowError("--heatmaps needs --annotations")
            summary = evaluate.evaluate_heatmaps(args.heatmaps, args.annotations, args.out,
                                                 allow_missing=args.allow_missing)
            title = args.heatmaps
            if summary["annotated_without_map"]:
                n_ann = summary["annotated"]
                print(f"scored {n_ann - summary['annotated_without_map']} of {n_ann} annotated clips "
                      f"({summary['annotated_without_map']} without a map, e.g. "
                      f"{', '.join(summary['missing_maps'][:5])})")
        else:
            if args.baseline:
                data = args.data or args.model
                model = None
            else:
                model, data = args.model, args.data
            if not data or (not model and not args.baseline):
                raise HearflowError("give MODEL and DATA, or --baseline with DATA, or --heatmaps with --annotations")
            options = evaluate.EvalOptions(
                backend=args.backend, split=args.split, batch_size=args.batch_size, save_maps=args.save_maps,
                listen=not args.no_listen, baseline=args.baseline, workers=args.workers, layout=args.layout,
            )
            summary = evaluate.evaluate_model(model, data, args.out, options)
            title = args.baseline or model
        print(evaluate.format_summary(summary, str(title)))
        print(f"outputs in {args.out}")

    return run


# --------------------------------------------------------------------------- import
@command(
    "import",
    "convert a released HTF or EZ-VSL checkpoint into a hearflow checkpoint",
    "Read the authors' released checkpoint (weights only; nothing is unpickled) and write a normal "
    "hearflow checkpoint whose model config and PreprocessConfig (htf_compat / ezvsl_compat) reproduce "
    "the source method's inference. Unknown, missing or mis-shaped keys are listed. See docs/pretrained.md.",
)
def _import(p):
    p.add_argument("kind", choices=["htf", "ezvsl"], help="which method the checkpoint comes from")
    p.add_argument("src", help="the released .pth / .ckpt file")
    p.add_argument("out", help="output checkpoint folder")
    p.add_argument("--force", action="store_true", help="overwrite an existing checkpoint in OUT")

    def run(args):
        from hearflow.model.importers import import_checkpoint, import_summary

        out = import_checkpoint(args.kind, args.src, args.out, overwrite=args.force)
        print(import_summary(out))

    return run


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


# --------------------------------------------------------------------------- calibrate
@command(
    "calibrate",
    "set the engine's 'sounding' confidence thresholds from clips with and without a visible source",
    "Run MODEL on DATA's clips (make them with `hearflow synth DIR --train 0 --val 0 --test 200 "
    "negative_fraction=0.5`: silence, noise and off-screen sounds among normal clips) and print the energy "
    "gate and similarity threshold that separate positives from negatives, as overrides for `hearflow run`.",
)
def _calibrate(p):
    p.add_argument("model", help="checkpoint or export folder")
    p.add_argument("data", help="dataset folder with negative clips")
    p.add_argument("--split", default="test")
    p.add_argument("--backend", default=None)

    def run(args):
        import json

        from hearflow.trainer.calibrate import calibrate, clip_scores

        result = calibrate(clip_scores(args.model, args.data, args.split, args.backend))
        print(json.dumps(result, indent=2))
        keys = [k for k in ("energy_gate_db", "similarity_threshold") if k in result]
        print("use: hearflow run ... " + " ".join(f"{k}={result[k]}" for k in keys))

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hearflow",
        description="Real-time visual sound source localization (Hear The Flow): "
        "train, evaluate, export and run models that show where a sound comes from in video.",
    )
    parser.add_argument("--version", action="version", version=f"hearflow {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help, description, exit_status, build) in COMMANDS.items():
        p = sub.add_parser(name, help=help, description=description, epilog=exit_status)
        p.set_defaults(_run=build(p))
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    # dotted overrides may come after options too (`synth OUT --train 8 duration=2`)
    args, extra = parser.parse_known_args(argv)
    if extra:
        if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = list(args.overrides or []) + extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "_run", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        args._run(args)
    except HearflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        # hearflow run stopped while loading: SIGTERM is a requested stop, Ctrl-C an interruption
        if getattr(exc, "signal_name", None) == "SIGTERM":
            print("stopped by SIGTERM before the run started", file=sys.stderr)
            return 0
        print("interrupted", file=sys.stderr)
        return EXIT_SIGINT
    return 0


if __name__ == "__main__":
    sys.exit(main())
