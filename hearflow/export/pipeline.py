"""The export steps behind ``hearflow export``: ONNX graphs, then TensorRT engines or INT8 graphs."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from hearflow.export.frame_graph import add_frame_graph, check_flow
from hearflow.export.tensorrt import build_tensorrt
from hearflow.export.onnx import OPSET, export_onnx
from hearflow.export.quantize import CALIBRATION_CLIPS, quantize_export
from hearflow.export.triton import check_prefix, format_triton, remove_triton_models, write_triton_repository
from hearflow.errors import GPUUnavailable, MissingDependency
from hearflow.model.checkpoint import read_meta
from hearflow.runtime import tensorrt as trt_runtime
from hearflow.runtime.manifest import FRAME_GRAPH_FILE, INT8_FILES, TRITON_PREFIX, ExportError

FORMATS = ("onnx", "tensorrt", "triton")


@dataclass(frozen=True)
class ExportOptions:
    """How :func:`export_model` exports a checkpoint.

    format: 'onnx' (audio.onnx + visual.onnx, default backend onnxruntime), 'tensorrt'
        (the same, plus one engine per graph built on this machine's GPU) or 'triton' (the
        ONNX export plus a Triton model repository in the same folder, with TensorRT plan
        models too when this machine has TensorRT and a GPU; see :mod:`hearflow.export.triton`).
    fp16: FP16 engines (tensorrt, and triton's plan models).
    opset: ONNX opset; None = :data:`hearflow.export.onnx.OPSET` (18).
    opt_batch / max_batch: TensorRT optimisation profile (batch sizes 1..max_batch,
        tuned for opt_batch); max_batch is also the Triton models' max_batch_size.
    check: compare ONNX Runtime with PyTorch on random inputs after exporting.
    device: CUDA device the engines are built for (tensorrt only).
    int8: also write statically quantized INT8 graphs (onnx only, for onnxruntime on the
        CPU) and make them the default; see :mod:`hearflow.export.quantize`.
    calibration: dataset folder or prepared cache whose clips calibrate the INT8 graphs;
        None = synthetic scenes (int8 only).
    calibration_clips: clips to calibrate on; None = 64 (int8 only).
    reduce_range: 7-bit INT8 weights, for x86 CPUs without VNNI (int8 only).
    progress: progress bar while a calibration dataset is prepared (int8 only).
    frame_graph: also write frame.onnx (frames → map in one graph, see
        :mod:`hearflow.export.frame_graph`) for frames of this (width, height); None = not.
    triton_prefix: Triton model names are <prefix>_audio and <prefix>_visual (triton only).
    """

    format: str = "onnx"
    fp16: bool = False
    opset: int | None = None
    opt_batch: int = 1
    max_batch: int = 32
    check: bool = True
    device: str = "cuda"
    int8: bool = False
    calibration: str | os.PathLike | None = None
    calibration_clips: int | None = None
    reduce_range: bool = False
    progress: bool = True
    frame_graph: tuple[int, int] | None = None
    triton_prefix: str = TRITON_PREFIX


def _check_options(opts: ExportOptions) -> None:
    """Refuse contradictory options and missing calibration data before the (slow) ONNX export."""
    if opts.format not in FORMATS:
        raise ExportError(f"unknown export format {opts.format!r} (known: {', '.join(FORMATS)})")
    if opts.fp16 and opts.format not in ("tensorrt", "triton"):
        raise ExportError("--fp16 applies to TensorRT engines: add --format tensorrt")
    if opts.int8 and opts.format != "onnx":
        raise ExportError("--int8 makes ONNX Runtime graphs for the CPU; TensorRT engines take --fp16 instead")
    if not opts.int8 and (opts.calibration is not None or opts.calibration_clips is not None or opts.reduce_range):
        raise ExportError("--calibration, --calibration-clips and --reduce-range apply to --int8 exports")
    if opts.calibration is not None and not Path(opts.calibration).exists():
        raise ExportError(f"{opts.calibration}: calibration data not found (give a dataset folder or a prepared cache)")
    if opts.format == "triton":
        check_prefix(opts.triton_prefix)
    if opts.calibration_clips is not None and opts.calibration_clips < 1:
        raise ExportError(f"--calibration-clips must be >= 1, got {opts.calibration_clips}")


def _tensorrt_settings(opts: ExportOptions) -> trt_runtime.BuildSettings:
    """The engine build settings, after checking that TensorRT can run here (before the slow ONNX export)."""
    trt_runtime.import_tensorrt()
    trt_runtime.require_cuda(opts.device)
    settings = trt_runtime.BuildSettings(fp16=opts.fp16, opt_batch=opts.opt_batch, max_batch=opts.max_batch)
    if opts.fp16:
        trt_runtime.fp16_converter_version()
    return settings


def _triton_plan_settings(opts: ExportOptions) -> trt_runtime.BuildSettings | None:
    """Engine settings for Triton's TensorRT plan models when TensorRT and a GPU are here, else None
    (with --fp16 they must be: it asks for FP16 plans)."""
    if opts.fp16:
        return _tensorrt_settings(opts)
    try:
        return _tensorrt_settings(opts)
    except (MissingDependency, GPUUnavailable):
        return None


def export_model(checkpoint, out, options: ExportOptions | None = None, **fields) -> dict:
    """Export ``checkpoint`` to folder ``out``; returns the manifest dict.

    checkpoint: hearflow checkpoint folder (or its model.safetensors).
    out: export folder (created; a previous export in it is replaced).
    options: an :class:`ExportOptions`; ``fields`` (its field names) override it, so
        ``export_model(ck, out, format="tensorrt", fp16=True)`` works too.
    """
    opts = replace(options or ExportOptions(), **fields)
    _check_options(opts)
    settings = None
    if opts.format == "tensorrt":
        settings = _tensorrt_settings(opts)
    elif opts.format == "triton":
        settings = _triton_plan_settings(opts)
    if opts.frame_graph is not None:  # before the slow export: a DIS model cannot have one
        meta = read_meta(checkpoint)
        check_flow(meta.get("model", {}).get("flow", "cnn"), meta.get("preprocess", {}).get("flow", "dis"))
    data = export_onnx(checkpoint, out, opset=opts.opset or OPSET, check=opts.check)
    checked = data.get("check_max_diff")
    remove_triton_models(out)
    if settings is not None:
        data = build_tensorrt(out, settings, device=opts.device)
    if opts.int8:
        data = quantize_export(out, opts.calibration, opts.calibration_clips or CALIBRATION_CLIPS,
                               reduce_range=opts.reduce_range, progress=opts.progress)
    else:  # INT8 graphs of an earlier export in this folder no longer match
        for name in INT8_FILES.values():
            (Path(out) / name).unlink(missing_ok=True)
    if opts.frame_graph is not None:
        data = add_frame_graph(checkpoint, out, data, opts.frame_graph, check=opts.check)
    else:  # a frame graph of an earlier export in this folder no longer matches
        (Path(out) / FRAME_GRAPH_FILE).unlink(missing_ok=True)
    if opts.format == "triton":
        data = write_triton_repository(out, opts.triton_prefix, opts.max_batch)
    if checked is not None:  # the later steps rewrite the manifest dict without it
        data["check_max_diff"] = checked
    return data


def format_export(data: dict, out) -> str:
    """A few lines for the terminal: what was written where."""
    out = Path(out)
    model = data["model"]
    _, m, n = data["graphs"]["visual"]["outputs"][0]["shape"]
    lines = [
        f"exported {data['source']['checkpoint']} (backbone {model['backbone']}, flow {model['flow']}, "
        f"{m}×{n} map) to {out}  [ONNX opset {data['opset']}]",
    ]
    for g in data["graphs"].values():
        size = os.path.getsize(out / g["file"]) / 1e6
        ins = ", ".join(f"{t['name']} {tuple(t['shape'])}" for t in g["inputs"])
        output = g["outputs"][0]
        lines.append(f"  {g['file']:<16} {size:6.1f} MB  {ins} → {output['name']} {tuple(output['shape'])}")
    trt = data.get("tensorrt")
    if trt:
        prec = "FP16" if trt["fp16"] else "FP32"
        built = trt["built_with"]
        lines.append(f"  TensorRT {built['tensorrt']} {prec} engines for {built['gpu']}: "
                     f"{', '.join(trt['engines'].values())} "
                     f"(batch 1..{trt['max_batch']}, tuned for {trt['opt_batch']})")
    q = data.get("int8")
    if q:
        for graph, g in q["graphs"].items():
            size = os.path.getsize(out / g["file"]) / 1e6
            lines.append(f"  {g['file']:<16} {size:6.1f} MB  INT8 ({q['nodes_quantized'][graph]} nodes quantized)")
        cal, check = q["calibration"], q.get("check", {})
        split = f", {cal['split']} split" if cal.get("split") else ""
        lines.append(f"  INT8: calibrated on {cal['clips']} clips of {cal['source']}{split}; vs FP32: map correlation "
                     f"mean {check.get('map_correlation_mean', float('nan')):.3f} "
                     f"(min {check.get('map_correlation_min', float('nan')):.3f}), audio embedding cosine "
                     f"min {check.get('audio_cosine_min', float('nan')):.3f}")
        lines.append(f"  onnxruntime loads the {data.get('precision', 'fp32').upper()} graphs by default")
    lines += format_triton(data, out)
    if "check_max_diff" in data:
        lines.append(f"  check: ONNX Runtime vs PyTorch max abs difference {data['check_max_diff']:.1e}")
    fg = data.get("frame_graph")
    if fg:
        size = os.path.getsize(out / fg["file"]) / 1e6
        w, h = fg["frame_size"]
        lines.append(f"  {fg['file']:<16} {size:6.1f} MB  frames {w}×{h} uint8 → map; vs PyTorch "
                     f"{fg.get('check_max_diff', float('nan')):.1e}")
    lines.append(f"  default backend: {data['default_backend']} (load with load_backend('{out}'))")
    return "\n".join(lines)
