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
    args = parser.parse_args(argv)
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
