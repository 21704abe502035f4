"""Writing an export folder's description: manifest.json and the metadata of each graph file.

The layout and the reader live in :mod:`hearflow.runtime.manifest`.
"""

from __future__ import annotations

import json
from pathlib import Path

from hearflow.runtime.manifest import FORMAT, MANIFEST, META_PREFIX, ExportError


class UnsupportedModel(ExportError):
    """The checkpoint's model config has a field or value the exporter does not know."""


def tensor_spec(name: str, shape) -> dict:
    """One input/output description: name, shape (ints, or 'batch' / 'time'), dtype."""
    return {"name": name, "shape": list(shape), "dtype": "float32"}


def write_manifest(folder, data: dict) -> Path:
    """Write manifest.json atomically (a temporary name, then a rename)."""
    path = Path(folder) / MANIFEST
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
    return path


def onnx_metadata(data: dict, graph: str, precision: str = "fp32", spec: dict | None = None) -> dict[str, str]:
    """The ``metadata_props`` of one graph file: the manifest's description of the model,
    its preprocessing and this graph's inputs/outputs, as strings (JSON where structured);
    quantized files also carry ``precision`` (absent = fp32). ``spec``: the graph's entry
    when it is not under ``graphs`` (the frame graph)."""
    g = spec or data["graphs"][graph]
    fields = {
        "format": FORMAT,
        "graph": graph,
        "version": data["hearflow_version"],
        "source_sha256": data["source"]["weights_sha256"],
        "model": json.dumps(data["model"], sort_keys=True),
        "preprocess": json.dumps(data["preprocess"], sort_keys=True),
        "inputs": json.dumps(g["inputs"]),
        "outputs": json.dumps(g["outputs"]),
    }
    if precision != "fp32":
        fields["precision"] = precision
    return {META_PREFIX + k: v for k, v in fields.items()}
