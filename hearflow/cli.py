"""The ``hearflow`` command: thin glue over the library, one subcommand per job.

Each subcommand's work lives in a library module; this file only parses arguments,
calls it and turns expected failures (:class:`~hearflow.errors.HearflowError`) into a
one-line ``error: ...`` message with exit status 2 instead of a traceback.
"""

from __future__ import annotations

import argparse
import sys

from hearflow import __version__
from hearflow.errors import HearflowError

COMMANDS = {}


def command(name: str, help: str, description: str | None = None):
    """Register ``fn(parser)`` as the argument builder of subcommand ``name``."""

    def register(build):
        COMMANDS[name] = (help, description or help, build)
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
    "splits/{train,val,test}.txt, synth.yaml (the config used). Deterministic for a seed.",
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
@command(
    "prepare",
    "turn a folder of videos into a training cache (frames, flow, audio windows)",
    "Prepare a dataset for training/evaluation: per clip the annotated (or middle) frame, its "
    "optical flow and the audio window, made with the PreprocessConfig and stored in memory-"
    "mappable arrays. Runs in several processes with a progress bar, skips and reports bad files "
    "(report.json), and resumes after an interruption. SOURCE: a folder of videos (optionally with "
    "annotations.json / vggss.json and splits/*.txt; what `hearflow synth` writes) or the "
    "Flickr-SoundNet layout (frames/, audio/, Annotations/).",
)
def _prepare(p):
    p.add_argument("source", help="dataset folder")
    p.add_argument("out", help="cache folder to write (resumed if it exists)")
    p.add_argument("--preprocess", default="default",
                   help="preset name (default, htf_compat, ezvsl_compat) or a YAML file of PreprocessConfig fields")
    p.add_argument("--annotations", default=None, help="VGG-SS style json to use instead of SOURCE/annotations.json")
    p.add_argument("--workers", type=int, default=None, help="processes (default: CPU count)")
    p.add_argument("overrides", nargs="*", help="PreprocessConfig overrides, e.g. flow=farneback image_size=160")

    def run(args):
        from hearflow import config
        from hearflow.media.preprocess import PreprocessConfig
        from hearflow.trainer.prepare import format_report, prepare

        if args.preprocess in PreprocessConfig.PRESETS:
            cfg = config.apply_overrides(PreprocessConfig.PRESETS[args.preprocess](), args.overrides)
        else:
            cfg = config.load(PreprocessConfig, args.preprocess, args.overrides)
        print(format_report(prepare(args.source, args.out, cfg, args.workers, args.annotations)))

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
    p.add_argument("--resume", action="store_true", help="continue the run in train.out from its last checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")

    def run(args):
        from hearflow import config
        from hearflow.trainer.config import ExperimentConfig
        from hearflow.trainer.train import train

        cfg = config.load(ExperimentConfig, args.config, args.overrides)
        out = train(cfg, resume=args.resume, progress=not args.no_progress)
        print(f"done: checkpoints in {out}/best and {out}/last")

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
    p.add_argument("--backend", default=None, help="torch, onnxruntime or tensorrt (default: by model type)")
    p.add_argument("--split", default="test", help="split to score (default test)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--save-maps", action="store_true", help="also write the maps as OUT/maps.npz")
    p.add_argument("--no-listen", action="store_true", help="skip the silence/noise/other-audio check")
    p.add_argument("--baseline", choices=["center", "whole"], help="score a baseline map instead of a model")
    p.add_argument("--heatmaps", help="score these maps instead of running a model")
    p.add_argument("--annotations", help="annotations for --heatmaps")
    p.add_argument("--workers", type=int, default=None, help="processes for preparing the data")

    def run(args):
        from hearflow.trainer import evaluate

        if args.heatmaps:
            if not args.annotations:
                raise HearflowError("--heatmaps needs --annotations")
            summary = evaluate.evaluate_heatmaps(args.heatmaps, args.annotations, args.out)
            title = args.heatmaps
        else:
            if args.baseline:
                data = args.data or args.model
                model = None
            else:
                model, data = args.model, args.data
            if not data or (not model and not args.baseline):
                raise HearflowError("give MODEL and DATA, or --baseline with DATA, or --heatmaps with --annotations")
            summary = evaluate.evaluate_model(
                model, data, args.out, backend=args.backend, split=args.split, batch_size=args.batch_size,
                save_maps=args.save_maps, listen=not args.no_listen, baseline=args.baseline, workers=args.workers,
            )
            title = args.baseline or model
        print(evaluate.format_summary(summary, str(title)))
        print(f"outputs in {args.out}")

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hearflow",
        description="Real-time visual sound source localization (Hear The Flow): "
        "train, evaluate, export and run models that show where a sound comes from in video.",
    )
    parser.add_argument("--version", action="version", version=f"hearflow {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help, description, build) in COMMANDS.items():
        p = sub.add_parser(name, help=help, description=description)
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
        return 1
    try:
        args._run(args)
    except HearflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
