"""``hearflow export``: a checkpoint → ONNX graphs (and TensorRT engines) usable without it.

    export_model("runs/htf/best", "exports/htf")                       # ONNX (onnxruntime)
    export_model("runs/htf/best", "exports/htf", format="tensorrt", fp16=True)

The folder is loaded with :func:`hearflow.engine.backends.load_backend`. Modules:
:mod:`~hearflow.export.manifest` (what the folder holds), :mod:`~hearflow.export.onnx`
(the exporter), :mod:`~hearflow.export.tensorrt` (engines), :mod:`~hearflow.export.bench`
(speed).
"""

from __future__ import annotations

import os
from pathlib import Path

from hearflow.export.manifest import ExportError, Manifest, UnsupportedModel, read_manifest, read_onnx_metadata

FORMATS = ("onnx", "tensorrt")


def export_model(
    checkpoint,
    out,
    format: str = "onnx",
    fp16: bool = False,
    opset: int | None = None,
    opt_batch: int = 1,
    max_batch: int = 32,
    check: bool = True,
    device: str = "cuda",
) -> dict:
    """Export ``checkpoint`` to folder ``out``; returns the manifest dict.

    checkpoint: hearflow checkpoint folder (or its model.safetensors).
    out: export folder (created; a previous export in it is replaced).
    format: 'onnx' (audio.onnx + visual.onnx, default backend onnxruntime) or 'tensorrt'
        (the same, plus one engine per graph built on this machine's GPU).
    fp16: FP16 engines (tensorrt only).
    opset: ONNX opset; None = :data:`hearflow.export.onnx.OPSET` (18).
    opt_batch / max_batch: TensorRT optimisation profile (batch sizes 1..max_batch,
        tuned for opt_batch).
    check: compare ONNX Runtime with PyTorch on random inputs after exporting.
    device: CUDA device the engines are built for (tensorrt only).
    """
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r} (known: {', '.join(FORMATS)})")
    if fp16 and format != "tensorrt":
        raise ExportError("--fp16 applies to TensorRT engines: add --format tensorrt")
    settings = None
    if format == "tensorrt":
        from hearflow.export import tensorrt

        # fail before the (slow) ONNX export when TensorRT cannot run here
        tensorrt.import_tensorrt()
        tensorrt.require_cuda(device)
        settings = tensorrt.BuildSettings(fp16=fp16, opt_batch=opt_batch, max_batch=max_batch)
        if fp16:
            tensorrt._converter_version()
    from hearflow.export.onnx import OPSET, export_onnx

    data = export_onnx(checkpoint, out, opset=opset or OPSET, check=check)
    if settings is not None:
        checked = data.get("check_max_diff")
        data = tensorrt.build_tensorrt(out, settings, device=device)
        if checked is not None:
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
        lines.append(f"  {g['file']:<12} {size:6.1f} MB  {ins} → {output['name']} {tuple(output['shape'])}")
    trt = data.get("tensorrt")
    if trt:
        prec = "FP16" if trt["fp16"] else "FP32"
        built = trt["built_with"]
        lines.append(f"  TensorRT {built['tensorrt']} {prec} engines for {built['gpu']}: "
                     f"{', '.join(trt['engines'].values())} "
                     f"(batch 1..{trt['max_batch']}, tuned for {trt['opt_batch']})")
    if "check_max_diff" in data:
        lines.append(f"  check: ONNX Runtime vs PyTorch max abs difference {data['check_max_diff']:.1e}")
    lines.append(f"  default backend: {data['default_backend']} (load with load_backend('{out}'))")
    return "\n".join(lines)


__all__ = [
    "export_model", "format_export", "ExportError", "UnsupportedModel", "Manifest", "read_manifest",
    "read_onnx_metadata", "FORMATS",
]
