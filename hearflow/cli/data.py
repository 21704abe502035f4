"""Dataset commands: ``synth``, ``probe``, ``prepare``, ``check``.

Each builder adds its arguments and returns the function that runs the command
(see :mod:`hearflow.cli.registry`)."""

from __future__ import annotations

import sys

from hearflow.cli.registry import command
from hearflow.errors import HearflowError


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
def layout_option(p, default: str | None = "auto", extra: str = "") -> None:
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
    layout_option(p)
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
    layout_option(p)

    def run(args):
        from hearflow.trainer import dataset_check

        report = dataset_check.check_dataset(args.data, args.annotations, args.layout, args.workers)
        print(dataset_check.format_report(report))
        if args.json:
            print(f"full report in {dataset_check.write_json(report, args.json)}")

    return run
