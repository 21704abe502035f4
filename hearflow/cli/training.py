"""Model commands: ``train``, ``sweep``, ``eval``, ``import``, ``calibrate``.

Each builder adds its arguments and returns the function that runs the command
(see :mod:`hearflow.cli.registry`)."""

from __future__ import annotations

from hearflow.cli.registry import command, overrides_help
from hearflow.cli.data import layout_option
from hearflow.errors import HearflowError


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
    p.add_argument("overrides", nargs="*", help=overrides_help())
    layout_option(p, None, " (default: data.layout of CONFIG, auto)")
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
    p.add_argument("overrides", nargs="*", help=overrides_help() + " (applied to every cell)")
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
    layout_option(p)

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
