"""``hearflow export``: a checkpoint → ONNX graphs (and TensorRT engines) usable without it.

    export_model("runs/htf/best", "exports/htf")                       # ONNX (onnxruntime)
    export_model("runs/htf/best", "exports/htf", format="tensorrt", fp16=True)
    export_model("runs/htf/best", "exports/htf", ExportOptions(int8=True, calibration="data/synth"))

The folder is loaded with :func:`hearflow.runtime.backends.load_backend`. Modules:
:mod:`~hearflow.export.pipeline` (the export steps), :mod:`~hearflow.export.onnx` (the
exporter), :mod:`~hearflow.export.manifest` (writing the folder's description),
:mod:`~hearflow.export.tensorrt` (engines), :mod:`~hearflow.export.quantize` (INT8 graphs
for the CPU), :mod:`~hearflow.export.model_benchmark` (speed).
"""

from hearflow.export.manifest import UnsupportedModel
from hearflow.export.pipeline import FORMATS, ExportOptions, export_model, format_export
from hearflow.runtime.manifest import PRECISIONS, ExportError, Manifest, read_manifest, read_onnx_metadata

__all__ = [
    "export_model", "format_export", "ExportOptions", "ExportError", "UnsupportedModel", "Manifest",
    "read_manifest", "read_onnx_metadata", "FORMATS", "PRECISIONS",
]
